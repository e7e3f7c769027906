"""Evaluate models side by side on the same out-of-time holdout.

For each model (challenger, champion if any, a depth-2 baseline): ROC AUC, PR AUC, log loss,
Brier score, a reliability curve, the confusion matrix at the model's own threshold, and the same
metrics per slice value (``spec.slices``). Written as ``metrics.json`` (``dvc metrics diff``),
CSV plot files (``dvc plots diff``) and PNGs (:func:`pipelines.plots.evaluation_pngs`: ROC, PR,
calibration, confusion matrices, threshold and slice plots). The curves the plots draw (ROC, PR,
precision/recall/reject rate over thresholds) are part of the evaluation (``curves``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from catboost import CatBoostClassifier
from sklearn.metrics import precision_recall_curve, roc_curve

from pipelines.errors import ScoreloopError
from pipelines.metrics import calibration, score_metrics
from pipelines.model_bundle import ClassMapping
from pipelines.plots import EVALUATION_FILES, evaluation_pngs
from pipelines.score import positive_probability
from pipelines.spec import DatasetSpec
from pipelines.training_set import LABEL_COLUMN

#: Metrics where a larger value is better; the others (log loss, Brier) are losses.
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "log_loss": False, "brier": False}
PLOT_FILES = EVALUATION_FILES
#: Points of each stored curve (ROC, PR); thresholds are a fixed grid of this many steps.
CURVE_POINTS = 200
THRESHOLD_STEPS = 99


class EvaluationError(ScoreloopError, ValueError):
    """A model cannot be evaluated on this holdout."""


@dataclass(frozen=True)
class ScoredModel:
    """A model to evaluate: its role (challenger/champion/baseline), version and threshold.

    ``classes`` is the model's class mapping (a bundle's ``metadata.classes``); the default is
    the encoding training writes, which a freshly fitted model has.
    """

    role: str
    model: CatBoostClassifier
    threshold: float
    version: str | None = None
    classes: ClassMapping = field(default_factory=ClassMapping)


@dataclass(frozen=True)
class ModelScores:
    """One model's holdout scores, with what :func:`evaluate_scores` reports beside them."""

    role: str
    version: str | None
    threshold: float
    scores: np.ndarray


def evaluate_models(
    holdout: pl.DataFrame, spec: DatasetSpec, models: list[ScoredModel]
) -> dict[str, Any]:
    """Metrics of every model on the same holdout, overall and per slice value."""
    if holdout.height == 0:
        raise EvaluationError("the holdout is empty")
    scored = []
    for entry in models:
        try:
            scores = positive_probability(entry.model, holdout, spec, classes=entry.classes)
        except Exception as exc:
            raise EvaluationError(
                f"the {entry.role} model {entry.version or ''} cannot score the holdout: {exc}"
            ) from exc
        scored.append(ModelScores(entry.role, entry.version, entry.threshold, scores))
    slices = {
        column: holdout[column].cast(pl.String).fill_null("__missing__").to_numpy()
        for column in spec.slices
    }
    return evaluate_scores(holdout[LABEL_COLUMN].to_numpy(), slices, scored)


def evaluate_scores(
    labels: np.ndarray, slices: dict[str, np.ndarray], models: list[ModelScores]
) -> dict[str, Any]:
    """The evaluation of scores already made: ``labels`` and each slice column's value per row
    (strings), then per model its metrics overall and per slice value, calibration and curves."""
    labels = labels.astype(np.int64)
    result: dict[str, Any] = {"holdout_rows": int(labels.size), "models": {}}
    curves: dict[str, Any] = {}
    for entry in models:
        scores = entry.scores
        per_slice: dict[str, dict[str, Any]] = {}
        for column, values in slices.items():
            per_slice[column] = {
                str(v): score_metrics(labels[values == v], scores[values == v], entry.threshold)
                for v in sorted(set(values.tolist()))
            }
        curves[entry.role] = model_curves(labels, scores)
        result["models"][entry.role] = {
            "version": entry.version,
            "overall": score_metrics(labels, scores, entry.threshold),
            "calibration": calibration(labels, scores),
            "slices": per_slice,
        }
    result["curves"] = curves
    return result


def _thin(n: int, points: int = CURVE_POINTS) -> np.ndarray:
    """Indices of at most ``points`` evenly spread points of a curve of ``n`` (ends kept)."""
    return np.unique(np.linspace(0, n - 1, min(n, points)).astype(int))


def threshold_curve(labels: np.ndarray, scores: np.ndarray) -> list[dict[str, float | None]]:
    """Precision, recall and reject rate (share of rows scored below the threshold) over a grid
    of thresholds (0.01 .. 0.99); precision is None where no row reaches the threshold."""
    order = np.sort(scores)
    by_score = labels[np.argsort(scores, kind="stable")]
    positives_below = np.concatenate([[0], np.cumsum(by_score)])
    total, positives = scores.size, int(labels.sum())
    out: list[dict[str, float | None]] = []
    for t in np.linspace(0.01, 0.99, THRESHOLD_STEPS):
        below = int(np.searchsorted(order, t, side="left"))  # decision = score >= threshold
        tp = positives - int(positives_below[below])
        flagged = total - below
        out.append(
            {
                "threshold": round(float(t), 4),
                "precision": round(tp / flagged, 6) if flagged else None,
                "recall": round(tp / positives, 6) if positives else None,
                "reject_rate": round(below / total, 6),
            }
        )
    return out


def model_curves(labels: np.ndarray, scores: np.ndarray) -> dict[str, list[dict[str, Any]]]:
    """ROC and PR curves (thinned to :data:`CURVE_POINTS`) and the threshold curve of a model."""
    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    return {
        "roc": [
            {"fpr": round(float(fpr[i]), 6), "tpr": round(float(tpr[i]), 6)}
            for i in _thin(fpr.size)
        ],
        "pr": [
            {"recall": round(float(recall[i]), 6), "precision": round(float(precision[i]), 6)}
            for i in _thin(recall.size)
        ],
        "thresholds": threshold_curve(labels, scores),
    }


def metrics_summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The flat numbers DVC shows in ``dvc metrics show/diff``: one block per model."""
    out: dict[str, Any] = {}
    for role, data in evaluation["models"].items():
        overall = data["overall"]
        out[role] = {
            k: overall[k]
            for k in ("roc_auc", "pr_auc", "log_loss", "brier", "f1", "precision", "recall")
        }
    return out


def write_evaluation(evaluation: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write evaluation.json, metrics.json, plot CSVs and PNGs into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = out_dir / "plots"
    plots.mkdir(exist_ok=True)
    paths = {
        "evaluation": out_dir / "evaluation.json",
        "metrics": out_dir / "metrics.json",
    }
    paths["evaluation"].write_text(json.dumps(evaluation, indent=2, sort_keys=True) + "\n")
    paths["metrics"].write_text(
        json.dumps(metrics_summary(evaluation), indent=2, sort_keys=True) + "\n"
    )
    roc_rows = [
        {"model": role, **point}
        for role, curve in evaluation["curves"].items()
        for point in curve["roc"]
    ]
    pl.DataFrame(roc_rows).write_csv(plots / "roc.csv")
    cal_rows = [
        {"model": role, **point}
        for role, data in evaluation["models"].items()
        for point in data["calibration"]
    ]
    pl.DataFrame(cal_rows).write_csv(plots / "calibration.csv")
    paths.update(evaluation_pngs(evaluation, plots))
    return paths
