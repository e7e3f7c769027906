"""One row's attributions with a model bundle: SHAP (exact, CatBoost's) or LIME, ranked.

The part of explaining an entity that needs no tables or registry, so the CLI
(:mod:`pipelines.explain_entity`, which finds the entity's row and the champion) and the lookup
service (``GET /explain/{entity_id}``, which has both in its snapshot) compute the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from pipelines.explain import shap_values
from pipelines.features import prepare_features
from pipelines.lime import SAMPLES, SEED, explain_lime
from pipelines.model_bundle import ModelBundle
from pipelines.score import predict_positive
from pipelines.spec import DatasetSpec

ExplainMethod = Literal["shap", "lime"]
METHODS: tuple[ExplainMethod, ...] = ("shap", "lime")


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


def explain_row(
    bundle: ModelBundle,
    row: pl.DataFrame,
    spec: DatasetSpec,
    method: ExplainMethod,
    *,
    model_version: str,
    seed: int = SEED,
    samples: int = SAMPLES,
) -> EntityExplanation:
    """Explain ``bundle``'s score of one validated row (the spec's id, ``batch_id``, features)."""
    features = prepare_features(row, spec)
    score = float(predict_positive(bundle.model, features, bundle.metadata.classes)[0])
    attributions = explain_features(bundle, features, spec, method, seed=seed, samples=samples)
    ranked = sorted(
        zip(features.columns, features.row(0), attributions, strict=True), key=lambda t: -abs(t[2])
    )
    return EntityExplanation(
        entity_id=row[spec.id.name][0],
        method=method,
        model_version=model_version,
        batch_id=str(row["batch_id"][0]),
        score=score,
        attributions=[(f, "" if v is None else str(v), a) for f, v, a in ranked],
    )
