"""Explain one entity on demand with the champion: SHAP (exact, CatBoost's) or LIME.

The entity's features are its newest validated row (the same features its score came from);
LIME samples around it from the champion's reference profile (:mod:`pipelines.lime`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from pipelines.errors import ScoreloopError
from pipelines.explain import shap_values
from pipelines.features import prepare_features
from pipelines.ingest import VALIDATED, validated_schema
from pipelines.lime import SAMPLES, SEED, explain_lime
from pipelines.model_bundle import ModelBundle, load_bundle
from pipelines.registry import resolve_champion
from pipelines.score import predict_positive
from pipelines.settings import Settings, get_settings
from pipelines.spec import DatasetSpec, load_spec
from pipelines.tables import read_table, table_uri

ExplainMethod = Literal["shap", "lime"]


class ExplainError(ScoreloopError, LookupError):
    """The entity cannot be explained (unknown id, no champion); the message says why."""


@dataclass(frozen=True)
class EntityExplanation:
    """One entity's attributions, one per feature, largest absolute first."""

    entity_id: object
    method: ExplainMethod
    model_version: str
    batch_id: str
    score: float
    #: (feature, value as text, attribution): SHAP in log-odds, LIME in probability.
    attributions: list[tuple[str, str, float]]

    def to_dict(self) -> dict[str, object]:
        return {
            "entity_id": self.entity_id,
            "method": self.method,
            "model_version": self.model_version,
            "batch_id": self.batch_id,
            "score": round(self.score, 6),
            "attributions": [
                {"feature": f, "value": v, "attribution": round(a, 6)}
                for f, v, a in self.attributions
            ],
        }


def entity_row(settings: Settings, spec: DatasetSpec, entity_id: object) -> pl.DataFrame:
    """The newest validated row of the entity (batch ids sort in time order).

    Raises:
        ExplainError: no validated row has this id.
    """
    frame = read_table(table_uri(settings.tables, VALIDATED), schema=validated_schema(spec))
    id_type = frame.schema[spec.id.name]
    try:
        wanted = pl.lit(entity_id).cast(id_type, strict=True)
        rows = frame.filter(pl.col(spec.id.name) == wanted)
    except pl.exceptions.PolarsError:
        rows = frame.clear()
    if rows.height == 0:
        raise ExplainError(
            f"entity {entity_id!r} is in no validated batch under {settings.tables}: check the "
            f"id (column {spec.id.name!r}, type {spec.id.dtype})"
        )
    return rows.sort("batch_id").tail(1)


def explain_features(
    bundle: ModelBundle,
    features: pl.DataFrame,
    spec: DatasetSpec,
    method: ExplainMethod,
    *,
    seed: int = SEED,
    samples: int = SAMPLES,
) -> list[float]:
    """Attributions of one prepared row, in feature order."""
    if method == "shap":
        values = shap_values(bundle.model, features, spec.categorical_names, thread_count=1)
        return [float(v) for v in values.contributions[0]]
    classes = bundle.metadata.classes

    def predict(frame: pl.DataFrame) -> npt.NDArray[np.float64]:
        return predict_positive(bundle.model, frame, classes, thread_count=1)

    profile = bundle.metadata.reference_profile
    explanation = explain_lime(features, profile, predict, seed=seed, samples=samples)
    return [float(w) for w in explanation.weights]


def explain_entity(
    entity_id: object,
    method: ExplainMethod = "shap",
    *,
    settings: Settings | None = None,
    seed: int = SEED,
    samples: int = SAMPLES,
) -> EntityExplanation:
    """Explain the champion's score of ``entity_id`` (its newest validated row).

    Raises:
        ExplainError: no champion, or the entity is unknown.
    """
    settings = settings or get_settings()
    spec = load_spec(settings.spec_path)
    champion = resolve_champion(settings)
    if champion is None:
        raise ExplainError("no champion model: train and promote one first (`scoreloop train`)")
    bundle = load_bundle(champion.model_dir)
    row = entity_row(settings, spec, entity_id)
    features = prepare_features(row, spec)
    score = float(predict_positive(bundle.model, features, bundle.metadata.classes)[0])
    attributions = explain_features(bundle, features, spec, method, seed=seed, samples=samples)
    values = features.row(0)
    ranked = sorted(
        zip(features.columns, values, attributions, strict=True), key=lambda t: -abs(t[2])
    )
    return EntityExplanation(
        entity_id=row[spec.id.name][0],
        method=method,
        model_version=champion.version,
        batch_id=str(row["batch_id"][0]),
        score=score,
        attributions=[(f, "" if v is None else str(v), a) for f, v, a in ranked],
    )
