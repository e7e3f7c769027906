"""Evaluate models side by side on the same out-of-time holdout.

For each model (challenger, champion if any, a depth-2 baseline): ROC AUC, PR AUC, log loss,
Brier score, a reliability curve, the confusion matrix at the model's own threshold, and the same
metrics per slice value (``spec.slices``). Written as ``metrics.json`` (``dvc metrics diff``),
CSV plot files (``dvc plots diff``) and PNGs (ROC, calibration, slice comparison).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from catboost import CatBoostClassifier
from sklearn.metrics import (
    roc_curve,
)

from pipelines.errors import ScoreloopError
from pipelines.metrics import calibration, score_metrics
from pipelines.model_bundle import ClassMapping
from pipelines.plots import new_figure, save_png
from pipelines.score import positive_probability
from pipelines.spec import DatasetSpec
from pipelines.training_set import LABEL_COLUMN

#: Metrics where a larger value is better; the others (log loss, Brier) are losses.
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "log_loss": False, "brier": False}
PLOT_FILES = ("roc.png", "calibration.png", "slices.png")


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


def evaluate_models(
    holdout: pl.DataFrame, spec: DatasetSpec, models: list[ScoredModel]
) -> dict[str, Any]:
    """Metrics of every model on the same holdout, overall and per slice value."""
    if holdout.height == 0:
        raise EvaluationError("the holdout is empty")
    labels = holdout[LABEL_COLUMN].to_numpy().astype(np.int64)
    result: dict[str, Any] = {"holdout_rows": holdout.height, "models": {}}
    curves: dict[str, Any] = {}
    for entry in models:
        try:
            scores = positive_probability(entry.model, holdout, spec, classes=entry.classes)
        except Exception as exc:
            raise EvaluationError(
                f"the {entry.role} model {entry.version or ''} cannot score the holdout: {exc}"
            ) from exc
        slices: dict[str, dict[str, Any]] = {}
        for column in spec.slices:
            values = holdout[column].cast(pl.String).fill_null("__missing__").to_numpy()
            slices[column] = {
                str(v): score_metrics(labels[values == v], scores[values == v], entry.threshold)
                for v in sorted(set(values.tolist()))
            }
        fpr, tpr, _ = roc_curve(labels, scores)
        keep = np.unique(np.linspace(0, fpr.size - 1, min(fpr.size, 200)).astype(int))
        curves[entry.role] = {
            "roc": [{"fpr": round(float(fpr[i]), 6), "tpr": round(float(tpr[i]), 6)} for i in keep],
        }
        result["models"][entry.role] = {
            "version": entry.version,
            "overall": score_metrics(labels, scores, entry.threshold),
            "calibration": calibration(labels, scores),
            "slices": slices,
        }
    result["curves"] = curves
    return result


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
    paths.update(write_pngs(evaluation, plots))
    return paths


def write_pngs(evaluation: dict[str, Any], plots: Path) -> dict[str, Path]:
    """ROC, calibration and slice-comparison PNGs (:mod:`pipelines.plots`)."""
    out: dict[str, Path] = {}
    models = evaluation["models"]

    fig, ax = new_figure(5, 5)
    for role, curve in evaluation["curves"].items():
        auc = models[role]["overall"]["roc_auc"]
        ax.plot(
            [p["fpr"] for p in curve["roc"]],
            [p["tpr"] for p in curve["roc"]],
            label=f"{role} {models[role]['version'] or ''} (AUC {auc:.3f})",
        )
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (holdout)")
    ax.legend(loc="lower right", fontsize=8)
    out["roc_png"] = save_png(fig, plots / "roc.png")

    fig, ax = new_figure(5, 5)
    for role, data in models.items():
        ax.plot(
            [p["mean_predicted"] for p in data["calibration"]],
            [p["fraction_positive"] for p in data["calibration"]],
            marker="o",
            label=role,
        )
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="mean predicted", ylabel="fraction positive", title="Calibration (holdout)")
    ax.legend(loc="upper left", fontsize=8)
    out["calibration_png"] = save_png(fig, plots / "calibration.png")

    labels: list[str] = []
    per_role: dict[str, list[float]] = {role: [] for role in models}
    first = next(iter(models.values()))
    for column, values in first["slices"].items():
        for value in values:
            labels.append(f"{column}={value}")
            for role, data in models.items():
                auc = data["slices"][column].get(value, {}).get("roc_auc")
                per_role[role].append(float("nan") if auc is None else float(auc))
    fig, ax = new_figure(max(6, 0.45 * len(labels)), 4)
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(labels))
    for i, (role, values) in enumerate(per_role.items()):
        ax.bar(x + i * width, values, width=width, label=role)
    ax.set_xticks(x + width * (len(models) - 1) / 2, labels, rotation=60, fontsize=7)
    finite = [v for vs in per_role.values() for v in vs if not math.isnan(v)]
    ax.set_ylim(max(0.0, min(finite, default=0.5) - 0.05), 1.0)
    ax.set(ylabel="ROC AUC", title="ROC AUC per slice (holdout)")
    ax.legend(fontsize=8)
    out["slices_png"] = save_png(fig, plots / "slices.png")
    return out
