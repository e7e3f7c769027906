"""Train a challenger: CatBoost on the training split, early stopping on the validation split.

Deterministic by construction: a fixed ``random_seed`` and a fixed ``thread_count`` (CatBoost's
results can differ in the last bits between thread counts, see docs/retraining.md), rows in the
training-set file's order, categoricals as plain strings (STACK trap 8).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import polars as pl
from catboost import CatBoostClassifier, Pool
from pydantic import BaseModel, ConfigDict, Field

from pipelines.attribution import explanation_agreement
from pipelines.drift_stats import numeric_support
from pipelines.errors import ScoreloopError
from pipelines.features import prepare_features
from pipelines.model_bundle import ModelMetadata
from pipelines.params import Params
from pipelines.score import class_mapping, positive_probability
from pipelines.settings import PROJECT_ROOT
from pipelines.spec import DatasetSpec
from pipelines.training_set import LABEL_COLUMN, split_frame, summary

ThresholdPolicy = Literal["max_f1", "fixed"]


class TrainingError(ScoreloopError, RuntimeError):
    """Training cannot run on this data or with these parameters."""


class TrainingParams(BaseModel):
    """``training`` section of params.yaml."""

    model_config = ConfigDict(extra="forbid")

    iterations: int = Field(300, ge=1)
    learning_rate: float = Field(0.1, gt=0)
    depth: int = Field(6, ge=1, le=16)
    l2_leaf_reg: float = Field(3.0, ge=0)
    early_stopping_rounds: int = Field(30, ge=1)
    random_seed: int = 42
    thread_count: int = Field(2, ge=1, description="Fixed: results depend on the thread count.")
    threshold_policy: ThresholdPolicy = "max_f1"
    threshold: float = Field(0.5, gt=0, lt=1, description="Used by threshold_policy: fixed.")
    baseline_depth: int = Field(2, ge=1)
    baseline_iterations: int = Field(30, ge=1)
    profile_bins: int = Field(10, ge=2, description="Quantile bins of numeric drift reference.")

    @classmethod
    def from_params(cls, params: Params) -> TrainingParams:
        return cls.model_validate(params.section("training"))

    def catboost_params(self) -> dict[str, Any]:
        return {
            "iterations": self.iterations,
            "learning_rate": self.learning_rate,
            "depth": self.depth,
            "l2_leaf_reg": self.l2_leaf_reg,
            "random_seed": self.random_seed,
            "thread_count": self.thread_count,
            "loss_function": "Logloss",
            "eval_metric": "Logloss",
            "allow_writing_files": False,
            "verbose": False,
        }


@dataclass(frozen=True)
class TrainedModel:
    """A freshly trained model and its metadata (not yet saved)."""

    model: CatBoostClassifier
    metadata: ModelMetadata


def _pool(frame: pl.DataFrame, spec: DatasetSpec) -> Pool:
    features = prepare_features(frame, spec)
    return Pool(
        features,
        label=frame[LABEL_COLUMN].to_numpy(),
        cat_features=spec.categorical_names,
    )


def fit_catboost(
    train: pl.DataFrame,
    validation: pl.DataFrame | None,
    spec: DatasetSpec,
    params: TrainingParams,
    **overrides: Any,
) -> CatBoostClassifier:
    """The CatBoost fit itself (class weights from the spec, early stopping on validation)."""
    settings = params.catboost_params() | overrides
    if spec.class_weights == "balanced":
        settings["auto_class_weights"] = "Balanced"
    model = CatBoostClassifier(**settings)
    train_pool = _pool(train, spec)
    if validation is not None:
        model.fit(
            train_pool,
            eval_set=_pool(validation, spec),
            early_stopping_rounds=params.early_stopping_rounds,
            use_best_model=True,
        )
    else:
        model.fit(train_pool)
    return model


def choose_threshold(
    labels: np.ndarray, scores: np.ndarray, policy: ThresholdPolicy, fixed: float
) -> float:
    """The decision threshold: ``fixed``, or the score maximising F1 on the validation split."""
    if policy == "fixed":
        return float(fixed)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    sorted_labels = labels[order].astype(np.float64)
    tp = np.cumsum(sorted_labels)
    fp = np.cumsum(1.0 - sorted_labels)
    positives = sorted_labels.sum()
    # Only the last index of each run of equal scores is a valid cut.
    last = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    precision = tp / np.maximum(tp + fp, 1.0)
    recall = tp / max(positives, 1.0)
    total = precision + recall
    f1 = 2 * precision * recall / np.where(total > 0, total, 1.0)
    f1 = np.where(last, f1, -1.0)
    best = int(np.argmax(f1))
    return round(float(sorted_scores[best]), 6)


def reference_profile(frame: pl.DataFrame, spec: DatasetSpec, bins: int) -> dict[str, Any]:
    """What the training data looked like, for drift checks.

    Numeric features: quantile bin edges (``bins`` bins), the share of rows per bin, mean, std,
    null share, and the distinct values with their counts (:func:`pipelines.drift_stats.
    numeric_support`). Categorical features: the share and the count of each value. Plus the
    positive rate.
    """
    features = prepare_features(frame, spec)
    profile: dict[str, Any] = {"rows": frame.height, "features": {}}
    for column in spec.features:
        series = features[column.name]
        if column.categorical:
            counts = series.value_counts(sort=True)
            total = max(series.len(), 1)
            profile["features"][column.name] = {
                "kind": "categorical",
                "frequencies": {
                    str(v): round(int(c) / total, 6)
                    for v, c in zip(counts[column.name], counts["count"], strict=True)
                },
                # Exact counts: chi-squared and Jensen-Shannon read them (pipelines.drift_stats).
                "counts": {
                    str(v): int(c)
                    for v, c in zip(counts[column.name], counts["count"], strict=True)
                },
            }
        else:
            values = series.drop_nulls().drop_nans().to_numpy()
            if values.size == 0:
                raise TrainingError(f"numeric feature {column.name!r} has no values")
            edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
            hist, _ = np.histogram(values, bins=edges) if edges.size > 1 else ([values.size], 0)
            profile["features"][column.name] = {
                "kind": "numeric",
                "bin_edges": [float(e) for e in edges],
                "bin_shares": [round(int(h) / values.size, 6) for h in hist],
                "mean": float(values.mean()),
                "std": float(values.std()),
                "null_share": round(1 - values.size / max(series.len(), 1), 6),
                **numeric_support(values),
            }
    profile["positive_rate"] = round(float(frame[LABEL_COLUMN].to_numpy().mean()), 6)
    return profile


def code_commit() -> str | None:
    """The project's git commit (read only), or None outside a git checkout."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None


def _make_reproducible(model: CatBoostClassifier, data_version: str) -> None:
    """Replace CatBoost's random model GUID and finish time, so model.cbm is byte-identical
    when the same data and params are trained again (the time lives in metadata.json)."""
    info = model.get_metadata()
    info["model_guid"] = f"scoreloop-{data_version}"
    info["train_finish_time"] = ""


def train_challenger(
    training_set: pl.DataFrame,
    spec: DatasetSpec,
    params: TrainingParams,
    *,
    name: str,
    data_version: str,
    version: str | None = None,
) -> TrainedModel:
    """Train on the train split, stop early and pick the threshold on the validation split."""
    train = split_frame(training_set, "train")
    validation = split_frame(training_set, "validation")
    if train.height == 0 or validation.height == 0:
        raise TrainingError(
            f"training set has {train.height} train and {validation.height} validation rows: "
            f"both are needed"
        )
    started = time.perf_counter()
    model = fit_catboost(train, validation, spec, params)
    seconds = time.perf_counter() - started
    _make_reproducible(model, data_version)
    val_scores = positive_probability(model, validation, spec)
    threshold = choose_threshold(
        validation[LABEL_COLUMN].to_numpy(), val_scores, params.threshold_policy, params.threshold
    )
    from pipelines.metrics import score_metrics

    validation_metrics = score_metrics(validation[LABEL_COLUMN].to_numpy(), val_scores, threshold)
    metadata = ModelMetadata.model_validate(
        dict(
            name=name,
            version=version,
            spec_name=spec.name,
            features=spec.feature_names,
            categorical=spec.categorical_names,
            threshold=threshold,
            threshold_policy=params.threshold_policy,
            params=params.model_dump() | {"best_iteration": int(model.get_best_iteration() or 0)},
            data_version=data_version,
            git_commit=code_commit(),
            trained_at=datetime.now(UTC),
            training_seconds=round(seconds, 3),
            metrics={
                f"validation_{k}": float(validation_metrics[k])
                for k in ("roc_auc", "pr_auc", "log_loss", "brier", "f1")
                if validation_metrics[k] is not None
            },
            reference_profile=reference_profile(train, spec, params.profile_bins),
            classes=class_mapping(spec),
            training_set=summary(training_set),
        )
    )
    # SHAP vs LIME on a sample of the out-of-time holdout (the validation split when there is
    # none): the model card and /model report it.
    holdout = split_frame(training_set, "holdout")
    sample = holdout if holdout.height else validation
    agreement = explanation_agreement(model, metadata, sample, spec) | {
        "split": "holdout" if holdout.height else "validation"
    }
    metadata = ModelMetadata.model_validate(
        metadata.model_dump() | {"explanation_agreement": agreement}
    )
    return TrainedModel(model=model, metadata=metadata)
