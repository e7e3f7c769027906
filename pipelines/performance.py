"""Realised performance of the champion on a batch once its labels have landed.

The champion's scores of the batch (scores table) are joined with the batch's labels (labels
table) on the entity id; the metrics are :func:`pipelines.evaluate.score_metrics`, the same
numbers the holdout evaluation reports, so realised and expected performance compare directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from pipelines.ingest import LABELS, accepted_batches, labels_schema
from pipelines.metrics import score_metrics
from pipelines.monitoring import Champion, MonitoringError, current_champion
from pipelines.scores_table import scores_uri
from pipelines.settings import Settings, get_settings
from pipelines.spec import DatasetSpec, load_spec
from pipelines.tables import read_batches, read_table, table_exists, table_uri, write_batch

PERFORMANCE = "performance"

PERFORMANCE_SCHEMA: dict[str, pl.DataType] = {
    "batch_id": pl.String(),
    "model_version": pl.String(),
    "rows": pl.Int64(),
    "positive_rate": pl.Float64(),
    "decision_rate": pl.Float64(),
    "roc_auc": pl.Float64(),
    "log_loss": pl.Float64(),
    "brier": pl.Float64(),
    "accuracy": pl.Float64(),
    "threshold": pl.Float64(),
    "computed_at": pl.Datetime("us", "UTC"),
}


def compute_performance(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    *,
    batch_id: str,
    model_version: str,
    computed_at: datetime | None = None,
) -> pl.DataFrame:
    """One performance row (pure): ``labels`` are 1 for the positive class, 0 otherwise.

    ``roc_auc`` is null when the rows hold a single class; ``accuracy`` is the share of
    decisions (score >= threshold) that match the label.
    """
    if labels.size == 0:
        raise MonitoringError(f"batch {batch_id}: no labelled, scored rows to judge")
    metrics = score_metrics(labels, scores, threshold)
    accuracy = (metrics["tp"] + metrics["tn"]) / metrics["rows"]
    row: dict[str, Any] = {
        "batch_id": batch_id,
        "model_version": model_version,
        "rows": metrics["rows"],
        "positive_rate": metrics["positive_rate"],
        "decision_rate": round((metrics["tp"] + metrics["fp"]) / metrics["rows"], 6),
        "roc_auc": metrics["roc_auc"],
        "log_loss": metrics["log_loss"],
        "brier": metrics["brier"],
        "accuracy": round(accuracy, 6),
        "threshold": float(threshold),
        "computed_at": computed_at or datetime.now(UTC),
    }
    return pl.DataFrame([row], schema=PERFORMANCE_SCHEMA)


def performance_uri(settings: Settings) -> str:
    return table_uri(settings.tables, PERFORMANCE)


def read_performance(settings: Settings | None = None) -> pl.DataFrame:
    """The performance table (empty frame with its schema when it does not exist yet)."""
    settings = settings or get_settings()
    return read_table(performance_uri(settings), schema=PERFORMANCE_SCHEMA)


def labelled_scores(
    settings: Settings, spec: DatasetSpec, batch_id: str, model_version: str
) -> pl.DataFrame:
    """``entity_id, score, threshold, label`` of the batch's rows that are scored and labelled."""
    uri = scores_uri(settings)
    if not table_exists(uri):
        raise MonitoringError(f"no scores table under {settings.tables}: score the batch first")
    scores = read_batches(
        uri,
        [batch_id],
        {"entity_id": spec.id.polars_dtype, "score": pl.Float64(), "threshold": pl.Float64()},
        where={"model_version": model_version},
    )
    if scores.height == 0:
        raise MonitoringError(
            f"batch {batch_id!r} has no scores by model {model_version}: score it first "
            f"(`scoreloop score {batch_id}`)"
        )
    labels = read_table(
        table_uri(settings.tables, LABELS), batch_id=batch_id, schema=labels_schema(spec)
    )
    positive = pl.lit(spec.positive_label).cast(labels.schema[spec.target.name])
    labels = labels.select(
        pl.col(spec.id.name).cast(scores.schema["entity_id"]).alias("entity_id"),
        (pl.col(spec.target.name) == positive).cast(pl.Int8).alias("label"),
    ).unique("entity_id", keep="last")
    return scores.join(labels, on="entity_id", how="inner")


@dataclass(frozen=True)
class PerformanceMetrics:
    """One row of the performance table, typed (see :func:`compute_performance`)."""

    batch_id: str
    model_version: str
    rows: int
    positive_rate: float
    decision_rate: float
    roc_auc: float | None
    log_loss: float
    brier: float
    accuracy: float
    threshold: float
    computed_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PerformanceReport:
    """Realised performance of one batch, as written to the performance table."""

    batch_id: str
    model_version: str
    frame: pl.DataFrame
    table_version: int

    @property
    def metrics(self) -> PerformanceMetrics:
        return PerformanceMetrics(**self.frame.row(0, named=True))


def performance_batch(
    batch_id: str,
    *,
    settings: Settings | None = None,
    champion: Champion | None = None,
    spec: DatasetSpec | None = None,
) -> PerformanceReport:
    """Compute the champion's realised performance on a labelled batch and write it (replacing).

    Raises:
        MonitoringError: no champion, labels not accepted, no scores by the champion.
    """
    settings = settings or get_settings()
    spec = spec or load_spec(settings.spec_path)
    champion = champion or current_champion(settings)
    if champion is None:
        raise MonitoringError("no champion model: there are no scores to judge")
    if batch_id not in accepted_batches(settings.tables, "labels"):
        raise MonitoringError(
            f"labels of batch {batch_id!r} are not accepted under {settings.tables}: they have "
            "not landed yet, or were refused (see the labels ingest log)"
        )
    joined = labelled_scores(settings, spec, batch_id, champion.version)
    threshold = float(joined["threshold"][0]) if joined.height else champion.metadata.threshold
    frame = compute_performance(
        joined["label"].to_numpy(),
        joined["score"].to_numpy(),
        threshold,
        batch_id=batch_id,
        model_version=champion.version,
    )
    version = write_batch(
        performance_uri(settings), frame, batch_id, PERFORMANCE_SCHEMA, table=PERFORMANCE
    )
    return PerformanceReport(
        batch_id=batch_id, model_version=champion.version, frame=frame, table_version=version
    )
