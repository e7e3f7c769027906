"""Estimated performance before labels land: confidence-based performance estimation (CBPE).

NannyML's CBPE, on the champion's own scores: an isotonic calibration of score -> P(positive) is
fitted on the champion's holdout (scores and labels it never trained on), and a batch's expected
metrics are computed as if each row were a positive with probability ``p`` (its calibrated
score) and a negative with probability ``1 - p``:

* expected confusion matrix at the threshold: TP = sum of ``p`` over the rows decided positive,
  FP = sum of ``1 - p`` over them, FN and TN likewise over the rows decided negative;
* expected ROC AUC: the ROC AUC of the batch's scores where every row counts once as a positive
  with weight ``p`` and once as a negative with weight ``1 - p`` (the expected ROC curve);
* expected log loss of the raw scores: mean of ``-(p log s + (1 - p) log(1 - s))``.

The estimate holds while the relation between features and label does not change (covariate
shift only); a concept shift shows as a gap to the realised values once labels land, which is
why :func:`estimation_errors` tracks it per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
from scipy.optimize import isotonic_regression
from sklearn.metrics import roc_auc_score

from pipelines.ingest import accepted_batches
from pipelines.monitoring import Champion, MonitoringError, current_champion, training_batches
from pipelines.performance import labelled_scores, read_performance
from pipelines.scores_table import scores_uri
from pipelines.settings import Settings, get_settings
from pipelines.spec import DatasetSpec, load_spec
from pipelines.tables import read_batches, read_table, table_uri, write_batch

ESTIMATED = "estimated_performance"
#: Fewer holdout rows than this give no calibration worth estimating from.
MIN_CALIBRATION_ROWS = 200
EPS = 1e-15

ESTIMATED_SCHEMA: dict[str, pl.DataType] = {
    "batch_id": pl.String(),
    "model_version": pl.String(),
    "rows": pl.Int64(),
    "estimated_roc_auc": pl.Float64(),
    "estimated_log_loss": pl.Float64(),
    "estimated_accuracy": pl.Float64(),
    "estimated_positive_rate": pl.Float64(),
    "tp": pl.Float64(),
    "fp": pl.Float64(),
    "fn": pl.Float64(),
    "tn": pl.Float64(),
    "threshold": pl.Float64(),
    "calibration_rows": pl.Int64(),
    "computed_at": pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True)
class Calibration:
    """Isotonic map score -> P(positive): knots at the distinct calibration scores."""

    scores: np.ndarray
    probabilities: np.ndarray
    rows: int

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (linear between knots, constant beyond the outer ones)."""
        values = np.asarray(scores, dtype=np.float64)
        calibrated: np.ndarray = np.interp(values, self.scores, self.probabilities)
        return calibrated


def fit_calibration(labels: np.ndarray, scores: np.ndarray) -> Calibration:
    """Fit the isotonic calibration (``scipy.optimize.isotonic_regression``, weights = counts)."""
    if labels.size < MIN_CALIBRATION_ROWS:
        raise MonitoringError(
            f"only {labels.size} labelled holdout rows to calibrate on (< {MIN_CALIBRATION_ROWS})"
        )
    frame = (
        pl.DataFrame({"s": np.asarray(scores, np.float64), "y": np.asarray(labels, np.float64)})
        .group_by("s")
        .agg(pl.col("y").mean(), pl.len().alias("n"))
        .sort("s")
    )
    fitted = isotonic_regression(
        frame["y"].to_numpy(), weights=frame["n"].to_numpy().astype(np.float64), increasing=True
    )
    return Calibration(frame["s"].to_numpy(), np.asarray(fitted.x), int(labels.size))


def estimate_metrics(
    scores: np.ndarray, threshold: float, calibration: Calibration
) -> dict[str, Any]:
    """CBPE's expected metrics of one batch (pure; see the module docstring)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        raise MonitoringError("no scores to estimate performance from")
    p = np.clip(calibration(scores), 0.0, 1.0)
    decided = scores >= threshold
    tp, fp = float(p[decided].sum()), float((1 - p[decided]).sum())
    fn, tn = float(p[~decided].sum()), float((1 - p[~decided]).sum())
    weights = np.concatenate([p, 1 - p])
    auc = None
    if p.sum() > 0 and (1 - p).sum() > 0:
        truth = np.concatenate([np.ones(scores.size), np.zeros(scores.size)])
        auc = float(roc_auc_score(truth, np.concatenate([scores, scores]), sample_weight=weights))
    clipped = np.clip(scores, EPS, 1 - EPS)
    log_loss = float(np.mean(-(p * np.log(clipped) + (1 - p) * np.log(1 - clipped))))
    return {
        "rows": int(scores.size),
        "estimated_roc_auc": None if auc is None else round(auc, 6),
        "estimated_log_loss": round(log_loss, 6),
        "estimated_accuracy": round((tp + tn) / scores.size, 6),
        "estimated_positive_rate": round(float(p.mean()), 6),
        "tp": round(tp, 3),
        "fp": round(fp, 3),
        "fn": round(fn, 3),
        "tn": round(tn, 3),
        "threshold": float(threshold),
        "calibration_rows": calibration.rows,
    }


def estimated_uri(settings: Settings) -> str:
    return table_uri(settings.tables, ESTIMATED)


def read_estimated(settings: Settings | None = None) -> pl.DataFrame:
    """The estimated-performance table (empty frame with its schema when it does not exist)."""
    settings = settings or get_settings()
    return read_table(estimated_uri(settings), schema=ESTIMATED_SCHEMA)


def champion_calibration(settings: Settings, spec: DatasetSpec, champion: Champion) -> Calibration:
    """The calibration of the champion on its holdout batches (scored and labelled).

    Raises:
        MonitoringError: the champion records no holdout batches, or they are not scored.
    """
    holdout = training_batches(champion.metadata).get("holdout", [])
    labelled = set(accepted_batches(settings.tables, "labels"))
    parts = [labelled_scores(settings, spec, b, champion.version) for b in holdout if b in labelled]
    if not parts:
        raise MonitoringError(
            f"champion {champion.version}: no scored, labelled holdout batch to calibrate on "
            f"(holdout {holdout or 'not recorded'}): score them (`scoreloop score BATCH`)"
        )
    joined = pl.concat(parts)
    return fit_calibration(joined["label"].to_numpy(), joined["score"].to_numpy())


@dataclass(frozen=True)
class EstimateReport:
    """Estimated performance of one batch, as written to the table."""

    batch_id: str
    model_version: str
    frame: pl.DataFrame
    table_version: int

    @property
    def metrics(self) -> dict[str, Any]:
        return self.frame.row(0, named=True)


def estimate_batch(
    batch_id: str,
    *,
    settings: Settings | None = None,
    champion: Champion | None = None,
    spec: DatasetSpec | None = None,
) -> EstimateReport:
    """Estimate the champion's performance on a scored batch and write it (replacing).

    Raises:
        MonitoringError: no champion, no scores of the batch, or no calibration.
    """
    settings = settings or get_settings()
    spec = spec or load_spec(settings.spec_path)
    champion = champion or current_champion(settings)
    if champion is None:
        raise MonitoringError("no champion model: there are no scores to estimate from")
    scores = read_batches(
        scores_uri(settings),
        [batch_id],
        {"score": pl.Float64(), "threshold": pl.Float64()},
        where={"model_version": champion.version},
    )
    if scores.height == 0:
        raise MonitoringError(
            f"batch {batch_id!r} has no scores by model {champion.version}: score it first "
            f"(`scoreloop score {batch_id}`)"
        )
    calibration = champion_calibration(settings, spec, champion)
    row = estimate_metrics(
        scores["score"].to_numpy(), float(scores["threshold"][0]), calibration
    ) | {"batch_id": batch_id, "model_version": champion.version, "computed_at": datetime.now(UTC)}
    frame = pl.DataFrame([row], schema=ESTIMATED_SCHEMA)
    version = write_batch(
        estimated_uri(settings), frame, batch_id, ESTIMATED_SCHEMA, table=ESTIMATED
    )
    return EstimateReport(batch_id, champion.version, frame, version)


def estimation_errors(estimated: pl.DataFrame, realised: pl.DataFrame) -> pl.DataFrame:
    """Per batch and model: estimated beside realised ROC AUC and log loss, and the errors."""
    return (
        estimated.select("batch_id", "model_version", "estimated_roc_auc", "estimated_log_loss")
        .join(
            realised.select("batch_id", "model_version", "roc_auc", "log_loss"),
            on=["batch_id", "model_version"],
            how="inner",
        )
        .with_columns(
            (pl.col("estimated_roc_auc") - pl.col("roc_auc")).abs().alias("auc_error"),
            (pl.col("estimated_log_loss") - pl.col("log_loss")).abs().alias("log_loss_error"),
        )
        .sort("batch_id")
    )


def champion_estimation_errors(settings: Settings, model_version: str) -> pl.DataFrame:
    """:func:`estimation_errors` of one model over the tables as they are now."""
    mine = pl.col("model_version") == model_version
    return estimation_errors(
        read_estimated(settings).filter(mine), read_performance(settings).filter(mine)
    )


def champion_estimation_frame(settings: Settings, model_version: str) -> pl.DataFrame:
    """Every estimated batch of one model, with its realised AUC where labels have landed."""
    mine = pl.col("model_version") == model_version
    realised = read_performance(settings).filter(mine).select("batch_id", "roc_auc")
    return (
        read_estimated(settings)
        .filter(mine)
        .select("batch_id", "estimated_roc_auc")
        .join(realised, on="batch_id", how="left")
        .sort("batch_id")
    )
