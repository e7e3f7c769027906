"""CBPE on synthetic calibrated scores where the truth is known, and the estimated-performance
table written per batch, beside the realised values once labels land."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score
from support.monitoring import TRAIN_ROWS, ingest_labels, ingest_records, make_champion

from pipelines.estimate import (
    champion_estimation_errors,
    estimate_batch,
    estimate_metrics,
    fit_calibration,
    read_estimated,
)
from pipelines.monitor import monitor_batch
from pipelines.monitoring import MonitoringError, MonitoringParams
from pipelines.performance import performance_batch
from pipelines.scores_table import score_batch
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec
from pipelines.staleness import is_stale

RNG = np.random.default_rng(5)


def _calibrated(n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores that are true probabilities: labels drawn from them."""
    scores = 1 / (1 + np.exp(-(RNG.normal(shift, 1.5, n))))
    return scores, (RNG.random(n) < scores).astype(np.int64)


def test_estimates_match_the_truth_on_calibrated_scores() -> None:
    cal_scores, cal_labels = _calibrated(50_000)
    calibration = fit_calibration(cal_labels, cal_scores)
    # A covariate shift (more high scores): the estimate follows without any label.
    scores, labels = _calibrated(20_000, shift=1.0)
    got = estimate_metrics(scores, 0.5, calibration)
    assert got["estimated_roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=0.01)
    # The expected confusion matrix is the exact expectation under p = score.
    decided = scores >= 0.5
    assert got["tp"] == pytest.approx(scores[decided].sum(), rel=0.02)
    assert got["tn"] == pytest.approx((1 - scores[~decided]).sum(), rel=0.02)
    assert got["tp"] + got["fp"] + got["fn"] + got["tn"] == pytest.approx(scores.size, abs=0.01)
    realised_tp = int(np.sum(decided & (labels == 1)))
    assert got["tp"] == pytest.approx(realised_tp, rel=0.03)
    log_loss = -np.mean(labels * np.log(scores) + (1 - labels) * np.log(1 - scores))
    assert got["estimated_log_loss"] == pytest.approx(log_loss, abs=0.01)


def test_calibration_corrects_miscalibrated_scores() -> None:
    truth, labels = _calibrated(50_000)
    overconfident = truth**3  # same order, wrong probabilities
    calibration = fit_calibration(labels, overconfident)
    assert np.abs(calibration(overconfident) - truth).mean() < 0.02
    new_truth, new_labels = _calibrated(20_000)
    got = estimate_metrics(new_truth**3, 0.2, calibration)
    assert got["estimated_roc_auc"] == pytest.approx(roc_auc_score(new_labels, new_truth), abs=0.01)
    assert got["estimated_positive_rate"] == pytest.approx(new_labels.mean(), abs=0.01)
    with pytest.raises(MonitoringError, match="calibrate"):
        fit_calibration(labels[:10], truth[:10])


def test_estimated_performance_per_batch_beside_realised(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    champion = make_champion(
        acs, spec, tmp_path / "model", holdout_batches=["2014-12"], metrics={"holdout_roc_auc": 0.9}
    )
    ingest_records(settings, acs, spec, "2014-12", start=TRAIN_ROWS, rows=3000)
    ingest_labels(settings, acs, spec, "2014-12", start=TRAIN_ROWS, rows=3000)
    ingest_records(settings, acs, spec, "2015-01", start=TRAIN_ROWS + 3000, rows=3000)
    for batch in ("2014-12", "2015-01"):
        score_batch(batch, settings=settings, champion=champion.ref)

    report = estimate_batch("2015-01", settings=settings, champion=champion)
    assert report.metrics["rows"] == 3000 and report.metrics["calibration_rows"] == 3000
    result = monitor_batch(
        "2015-01",
        settings=settings,
        champion=champion,
        drift=False,
        estimate="required",
        plot_dir=tmp_path / "plots",
    )
    assert result.estimate is not None and result.estimate.realised_auc is None
    assert result.estimate.plot is not None and result.estimate.plot.read_bytes()[:4] == b"\x89PNG"
    assert read_estimated(settings)["batch_id"].to_list() == ["2015-01"]  # replaced, not added

    ingest_labels(settings, acs, spec, "2015-01", start=TRAIN_ROWS + 3000, rows=3000)
    realised = performance_batch("2015-01", settings=settings, champion=champion).metrics
    errors = champion_estimation_errors(settings, champion.version)
    assert errors["batch_id"].to_list() == ["2015-01"]
    assert errors["roc_auc"][0] == realised.roc_auc
    assert errors["auc_error"][0] < 0.03  # same distribution as the holdout it calibrated on
    again = monitor_batch("2015-01", settings=settings, champion=champion, estimate="required")
    assert again.estimate is not None and again.estimate.error == pytest.approx(
        errors["auc_error"][0], abs=1e-6
    )

    # Not scored: a clear error; "if_possible" records it instead of raising.
    ingest_records(settings, acs, spec, "2015-02", start=TRAIN_ROWS + 6000, rows=300)
    with pytest.raises(MonitoringError, match="no scores"):
        estimate_batch("2015-02", settings=settings, champion=champion)
    soft = monitor_batch("2015-02", settings=settings, champion=champion, drift=False)
    assert soft.estimate is None and soft.problems == {}
    soft = monitor_batch(
        "2015-02", settings=settings, champion=champion, drift=False, estimate="if_possible"
    )
    assert "no scores" in soft.problems["estimate"]


def test_staleness_on_estimated_performance_is_configurable() -> None:
    empty_drift = pl.DataFrame(
        schema={
            "batch_id": pl.String,
            "feature": pl.String,
            "metric": pl.String,
            "drifted": pl.Boolean,
        }
    )
    empty_perf = pl.DataFrame(
        schema={"batch_id": pl.String, "roc_auc": pl.Float64, "rows": pl.Int64}
    )
    estimated = pl.DataFrame({"batch_id": ["a", "b", "c"], "estimated_roc_auc": [0.86, 0.80, 0.79]})
    off = is_stale(
        empty_drift,
        empty_perf,
        MonitoringParams(),
        reference_auc=0.86,
        batches_since_training=1,
        estimated=estimated,
    )
    assert not off.stale  # estimated_auc_tolerance is null by default
    on = is_stale(
        empty_drift,
        empty_perf,
        MonitoringParams(estimated_auc_tolerance=0.03),
        reference_auc=0.86,
        batches_since_training=1,
        estimated=estimated,
    )
    assert on.stale and on.reasons[0].startswith("estimated performance drop")
    assert on.details["estimated_auc"] == pytest.approx((0.86 + 0.80 + 0.79) / 3, abs=1e-6)
