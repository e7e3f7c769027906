"""Realised performance per batch: the same numbers as sklearn on the same rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score
from support.monitoring import TRAIN_ROWS, ingest_labels, ingest_records, make_champion

from pipelines.monitoring import MonitoringError
from pipelines.performance import (
    PERFORMANCE_SCHEMA,
    compute_performance,
    performance_batch,
    read_performance,
)
from pipelines.plots import plot_auc_history
from pipelines.scores_table import score_batch
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec
from pipelines.tables import read_table, table_uri


def _check_against_sklearn(row: dict[str, object], labels: np.ndarray, scores: np.ndarray) -> None:
    threshold = float(row["threshold"])  # type: ignore[arg-type]
    assert row["rows"] == labels.size
    assert row["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert row["log_loss"] == pytest.approx(log_loss(labels, scores), abs=1e-6)
    assert row["brier"] == pytest.approx(brier_score_loss(labels, scores), abs=1e-6)
    assert row["accuracy"] == pytest.approx(accuracy_score(labels, scores >= threshold), abs=1e-6)
    assert row["positive_rate"] == pytest.approx(labels.mean(), abs=1e-6)
    assert row["decision_rate"] == pytest.approx((scores >= threshold).mean(), abs=1e-6)


def test_compute_performance_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 1000)
    scores = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 1000), 0.001, 0.999)
    frame = compute_performance(labels, scores, 0.42, batch_id="b", model_version="v1")
    assert frame.schema == pl.Schema(PERFORMANCE_SCHEMA)
    _check_against_sklearn(frame.row(0, named=True), labels, scores)


def test_single_class_has_no_auc_and_empty_is_an_error() -> None:
    frame = compute_performance(
        np.ones(5, dtype=np.int64), np.full(5, 0.7), 0.5, batch_id="b", model_version="v1"
    )
    assert frame["roc_auc"][0] is None
    assert frame["accuracy"][0] == 1.0
    with pytest.raises(MonitoringError, match="no labelled"):
        compute_performance(
            np.array([], dtype=np.int64), np.array([]), 0.5, batch_id="b", model_version="v1"
        )


def test_performance_batch_joins_scores_and_labels(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    champion = make_champion(acs, spec, tmp_path / "model")
    ingest_records(settings, acs, spec, "2015-01", start=TRAIN_ROWS, rows=700)
    score_batch("2015-01", settings=settings, champion=champion.ref)
    with pytest.raises(MonitoringError, match="not accepted"):
        performance_batch("2015-01", settings=settings, champion=champion)
    # Labels for only some of the rows: performance is judged on the rows that have both.
    ingest_labels(settings, acs, spec, "2015-01", start=TRAIN_ROWS + 100, rows=500)

    report = performance_batch("2015-01", settings=settings, champion=champion)

    scores = read_table(table_uri(settings.tables, "scores"), batch_id="2015-01")
    rows = acs.slice(TRAIN_ROWS + 100, 500).select(
        pl.col("id").alias("entity_id"), pl.col("employed")
    )
    joined = scores.join(rows, on="entity_id").sort("entity_id")
    assert joined.height == 500
    _check_against_sklearn(
        report.metrics.to_dict(), joined["employed"].to_numpy(), joined["score"].to_numpy()
    )
    assert report.metrics.model_version == champion.version
    assert (report.metrics.roc_auc or 0.0) > 0.7  # a real model on real rows

    performance_batch("2015-01", settings=settings, champion=champion)  # replaces, not appends
    table = read_performance(settings)
    assert table.height == 1
    png = plot_auc_history(table, tmp_path / "auc.png", reference_auc=0.85, tolerance=0.03)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_performance_needs_scores_by_the_champion(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    champion = make_champion(acs, spec, tmp_path / "model")
    ingest_records(settings, acs, spec, "2015-01", start=TRAIN_ROWS, rows=300)
    ingest_labels(settings, acs, spec, "2015-01", start=TRAIN_ROWS, rows=300)
    with pytest.raises(MonitoringError, match="no scores table"):
        performance_batch("2015-01", settings=settings, champion=champion)
    other = make_champion(acs, spec, tmp_path / "other", version="v0.0.2")
    score_batch("2015-01", settings=settings, champion=other.ref)
    with pytest.raises(MonitoringError, match=r"no scores by model v0\.0\.1"):
        performance_batch("2015-01", settings=settings, champion=champion)
    assert read_performance(settings).height == 0
