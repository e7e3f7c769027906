"""Feature preparation shared by training, batch scoring and on-demand scoring.

One function turns validated rows into the model's input frame, so the same record gets the same
features (and the same score) in training, in a scored batch and in the lookup service.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from pipelines.errors import ScoreloopError
from pipelines.spec import DatasetSpec

#: CatBoost refuses nulls in categorical columns; a missing category is its own level.
MISSING_CATEGORY = "__missing__"


class FeatureMismatchError(ScoreloopError, ValueError):
    """A model's feature list does not match the dataset spec or the data."""


def prepare_features(df: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """Model input: spec features in spec order; categoricals as strings, numerics as Float64."""
    missing = [c for c in spec.feature_names if c not in df.columns]
    if missing:
        raise FeatureMismatchError(f"feature column(s) {missing} are not in the data")
    exprs = []
    for column in spec.features:
        col = pl.col(column.name)
        if column.categorical:
            exprs.append(col.cast(pl.String).fill_null(MISSING_CATEGORY).alias(column.name))
        else:
            exprs.append(col.cast(pl.Float64).alias(column.name))
    return df.select(exprs)


def check_model_features(
    model_features: Sequence[str], model_categorical: Sequence[str], spec: DatasetSpec
) -> None:
    """Raise before any row is scored when a model was trained on other features than the spec's."""
    if list(model_features) != spec.feature_names:
        raise FeatureMismatchError(
            f"model features {list(model_features)} do not match spec {spec.name!r} features "
            f"{spec.feature_names}"
        )
    if sorted(model_categorical) != sorted(spec.categorical_names):
        raise FeatureMismatchError(
            f"model categorical features {sorted(model_categorical)} do not match spec "
            f"categoricals {sorted(spec.categorical_names)}"
        )
