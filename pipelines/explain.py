"""Reason codes: the top-k feature contributions behind each score, from CatBoost's own SHAP.

CatBoost computes exact SHAP values for its trees (``get_feature_importance(type="ShapValues")``):
for every row, one contribution per feature plus the expected value, and they add up to the
model's raw prediction (the log-odds of the positive class). A row's reasons are the ``top_k``
features with the largest absolute contribution, each with the value the row had and the
contribution in log-odds (positive pushes towards the positive class).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
from catboost import CatBoostClassifier, Pool

from pipelines.features import MISSING_CATEGORY

REASON_STRUCT = pl.Struct({"feature": pl.String, "value": pl.String, "contribution": pl.Float64})
REASONS_DTYPE = pl.List(REASON_STRUCT)
#: Reasons per scored row unless ``scoring.top_k`` in params.yaml says otherwise.
DEFAULT_TOP_K = 3
#: Rows per CatBoost ShapValues call: its working memory grows with the rows of a call, its
#: speed per row does not (measured on 2 cores: 200k rows in one call peaked 186 MB above the
#: process, in 50k blocks 9 MB, in the same time).
SHAP_BLOCK_ROWS = 50_000


@dataclass(frozen=True)
class Explanation:
    """SHAP contributions of a frame of rows.

    Attributes:
        contributions: ``(rows, features)`` log-odds contributions, columns in feature order.
        expected_value: the model's expected raw prediction (the same for every row).
    """

    contributions: npt.NDArray[np.float64]
    expected_value: float

    @property
    def raw_prediction(self) -> npt.NDArray[np.float64]:
        """Contributions plus expected value: the model's raw (log-odds) prediction per row."""
        return np.asarray(self.contributions.sum(axis=1) + self.expected_value, dtype=np.float64)


def shap_values(
    model: CatBoostClassifier,
    features: pl.DataFrame,
    categorical: Sequence[str],
    *,
    thread_count: int = -1,
) -> Explanation:
    """Exact SHAP values of ``features`` (the output of ``prepare_features``) for ``model``."""
    if features.height == 0:
        return Explanation(np.empty((0, features.width), dtype=np.float64), 0.0)
    values = np.empty((features.height, features.width + 1), dtype=np.float64)
    # In blocks: CatBoost's ShapValues holds working memory proportional to the rows of one call
    # (about 190 MB for 200k rows x 17 features, 10 MB for 50k) at the same speed per row.
    for offset in range(0, features.height, SHAP_BLOCK_ROWS):
        block = features.slice(offset, SHAP_BLOCK_ROWS)
        pool = Pool(block, cat_features=list(categorical))
        part = np.asarray(
            model.get_feature_importance(pool, type="ShapValues", thread_count=thread_count),
            dtype=np.float64,
        )
        if part.ndim != 2 or part.shape != (block.height, features.width + 1):
            raise ValueError(
                f"CatBoost returned SHAP values of shape {part.shape} for {block.height} rows x "
                f"{features.width} features (a multiclass model? scoreloop scores binary models)"
            )
        values[offset : offset + block.height] = part
    expected = float(values[0, -1])
    return Explanation(contributions=values[:, :-1], expected_value=expected)


def value_strings(values: pl.Series) -> pl.Series:
    """Feature values as the strings a reason shows: the category, or the number as text."""
    return values.cast(pl.String).fill_null(MISSING_CATEGORY)


def reason_codes(
    features: pl.DataFrame, contributions: npt.NDArray[np.float64], top_k: int
) -> pl.Series:
    """One list of ``top_k`` reasons per row, ordered by absolute contribution (largest first).

    Ties keep the feature order of the frame. With fewer features than ``top_k`` every feature is
    a reason. The result has dtype :data:`REASONS_DTYPE` and is named ``reasons``.
    """
    rows, width = contributions.shape
    if rows != features.height or width != features.width:
        raise ValueError(
            f"contributions {contributions.shape} do not fit {features.height} rows x "
            f"{features.width} features"
        )
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    k = min(top_k, width)
    if rows == 0:
        return pl.Series("reasons", [], dtype=REASONS_DTYPE)
    # argsort of -|c| with a stable sort keeps feature order among equal contributions.
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(contributions, order, axis=1).ravel()
    feature_of = order.ravel()
    row_of = np.repeat(np.arange(rows), k)
    # Only the picked cells become strings (k per row, not every feature of every row): group
    # them by feature, gather and cast each feature's cells once, then put them back in order.
    by_feature = np.argsort(feature_of, kind="stable")
    bounds = np.searchsorted(feature_of[by_feature], np.arange(width + 1))
    pieces = [
        value_strings(features.to_series(f).gather(row_of[by_feature[bounds[f] : bounds[f + 1]]]))
        for f in range(width)
    ]
    back = np.empty_like(by_feature)
    back[by_feature] = np.arange(by_feature.size)
    picked = pl.concat(pieces, rechunk=True).gather(back)
    flat = pl.DataFrame(
        {
            "feature": pl.Series(features.columns, dtype=pl.String).gather(feature_of),
            "value": picked,
            "contribution": pl.Series(top, dtype=pl.Float64),
        }
    ).to_struct("reasons")
    return flat.reshape((rows, k)).cast(REASONS_DTYPE).alias("reasons")
