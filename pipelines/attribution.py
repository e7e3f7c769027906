"""One row's attributions with a model bundle: SHAP (exact, CatBoost's) or LIME, ranked.

The part of explaining an entity that needs no tables or registry, so the CLI
(:mod:`pipelines.explain_entity`, which finds the entity's row and the champion) and the lookup
service (``GET /explain/{entity_id}``, which has both in its snapshot) compute the same answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl
from catboost import CatBoostClassifier

from pipelines.explain import DEFAULT_TOP_K, shap_values
from pipelines.features import prepare_features
from pipelines.lime import SAMPLES, SEED, LimeError, agreement, explain_lime
from pipelines.model_bundle import ModelBundle, ModelMetadata
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


def _lime_weights(
    model: CatBoostClassifier,
    metadata: ModelMetadata,
    features: pl.DataFrame,
    *,
    seed: int,
    samples: int,
) -> list[float]:
    classes = metadata.classes

    def predict(frame: pl.DataFrame) -> npt.NDArray[np.float64]:
        return predict_positive(model, frame, classes, thread_count=1)

    explanation = explain_lime(
        features, metadata.reference_profile, predict, seed=seed, samples=samples
    )
    return [float(w) for w in explanation.weights]


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
    return _lime_weights(bundle.model, bundle.metadata, features, seed=seed, samples=samples)


#: Rows of the holdout sample the model card's SHAP/LIME agreement is measured on.
AGREEMENT_ROWS = 30


def explanation_agreement(
    model: CatBoostClassifier,
    metadata: ModelMetadata,
    rows: pl.DataFrame,
    spec: DatasetSpec,
    *,
    sample_rows: int = AGREEMENT_ROWS,
    top_k: int = DEFAULT_TOP_K,
    seed: int = SEED,
    samples: int = SAMPLES,
) -> dict[str, float | int | None]:
    """How far SHAP and LIME agree on a sample of ``rows`` (for the model card and /model).

    ``sample_rows`` rows drawn with ``seed``; each explained by SHAP and by LIME exactly as
    ``GET /explain`` and ``scoreloop explain`` would (LIME's seed ``seed``, ``samples``
    perturbations); :func:`pipelines.lime.agreement` gives the mean top-``top_k`` overlap (``top_k``
    = the reasons each score carries) and the mean Spearman rank correlation of the absolute
    attributions.
    """
    if rows.height == 0:
        raise LimeError("no rows to measure SHAP/LIME agreement on")
    sample = rows.sample(n=min(sample_rows, rows.height), seed=seed)
    features = prepare_features(sample, spec)
    shap = shap_values(model, features, spec.categorical_names, thread_count=1).contributions
    lime = np.array(
        [
            _lime_weights(model, metadata, features.slice(i, 1), seed=seed, samples=samples)
            for i in range(features.height)
        ]
    )
    measured: dict[str, float | int | None] = dict(
        agreement(np.asarray(shap, dtype=np.float64), lime, top_k=top_k).to_dict()
    )
    correlation = measured["rank_correlation"]
    if correlation is not None and math.isnan(correlation):  # nothing ranked to compare
        measured["rank_correlation"] = None
    return measured | {"lime_samples": samples, "seed": seed}


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
