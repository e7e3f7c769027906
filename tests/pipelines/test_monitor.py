"""monitor_batch: drift and realised performance of a batch in one call, the min-rows rule once.

Real champion (a small CatBoost fit), real Delta tables; no Dagster.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from support.monitoring import TRAIN_ROWS, ingest_labels, ingest_records, make_champion

from pipelines.drift import read_drift
from pipelines.monitor import monitor_batch
from pipelines.monitoring import MonitoringError, MonitoringParams
from pipelines.performance import read_performance
from pipelines.scores_table import score_batch
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec


def test_monitor_batch_measures_drift_and_performance_and_judges_by_labelled_rows(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    # A reference AUC no real model reaches: every judged batch is a performance drop.
    champion = make_champion(acs, spec, tmp_path / "model", metrics={"holdout_roc_auc": 0.999})
    ingest_records(settings, acs, spec, "2015-01", start=TRAIN_ROWS, rows=300)
    score_batch("2015-01", settings=settings, champion=champion.ref)

    # 300 rows: Jensen-Shannon over 17 categories is noisier than its 0.1 threshold; PSI is not.
    psi_only = MonitoringParams(drift_method="psi")
    unlabelled = monitor_batch("2015-01", settings=settings, champion=champion, params=psi_only)
    assert unlabelled.drift is not None and unlabelled.drift.passed
    assert unlabelled.drift.report.rows == 300
    assert unlabelled.performance is None and unlabelled.problems == {}
    assert unlabelled.alerts == []

    ingest_labels(settings, acs, spec, "2015-01", start=TRAIN_ROWS, rows=300)
    few = MonitoringParams(min_labelled_rows=301, drift_method="psi")
    result = monitor_batch(
        "2015-01", settings=settings, champion=champion, params=few, plot_dir=tmp_path / "plots"
    )
    measured = result.performance
    assert measured is not None
    assert measured.metrics.rows == 300
    assert (measured.reference_auc, measured.reference_source) == (
        0.999,
        "metadata holdout_roc_auc",
    )
    assert not measured.judged and measured.alert is None and measured.passed
    assert measured.summary == "only 300 labelled rows (< 301): not judged"
    assert measured.plot == tmp_path / "plots" / "auc_2015-01.png"
    assert result.drift is not None and result.drift.plot is not None
    assert result.drift.plot.read_bytes()[:4] == b"\x89PNG"
    assert measured.plot.read_bytes()[:4] == b"\x89PNG"

    enough = MonitoringParams(min_labelled_rows=300, drift_method="psi")
    judged = monitor_batch("2015-01", settings=settings, champion=champion, params=enough)
    assert judged.performance is not None and judged.performance.judged
    [alert] = judged.alerts
    assert alert.kind == "performance_drop"
    assert not judged.performance.passed
    assert judged.performance.summary == alert.message
    # Re-measuring replaces the batch's rows, never duplicates them.
    assert read_performance(settings).height == 1
    assert read_drift(settings)["batch_id"].unique().to_list() == ["2015-01"]


def test_monitor_batch_performance_modes(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    champion = make_champion(acs, spec, tmp_path / "model")
    other = make_champion(acs, spec, tmp_path / "other", version="v0.0.2")
    ingest_records(settings, acs, spec, "2015-01", start=TRAIN_ROWS, rows=200)
    ingest_labels(settings, acs, spec, "2015-01", start=TRAIN_ROWS, rows=200)
    score_batch("2015-01", settings=settings, champion=other.ref)

    # Labels landed but the champion has not scored the batch: drift is still measured, and
    # why performance is not is said, not raised...
    result = monitor_batch("2015-01", settings=settings, champion=champion)
    assert result.drift is not None and result.performance is None
    assert "no scores by model v0.0.1" in result.problems["performance"]
    # ... unless performance is what was asked for.
    with pytest.raises(MonitoringError, match=r"no scores by model v0\.0\.1"):
        monitor_batch(
            "2015-01", settings=settings, champion=champion, drift=False, performance="required"
        )
    only_drift = monitor_batch("2015-01", settings=settings, champion=champion, performance="skip")
    assert only_drift.performance is None and only_drift.problems == {}
    with pytest.raises(MonitoringError, match="not an accepted batch"):
        monitor_batch("2099-01", settings=settings, champion=champion)


def test_monitor_batch_needs_a_champion(settings: Settings) -> None:
    with pytest.raises(MonitoringError, match="no champion model"):
        monitor_batch("2015-01", settings=settings)
