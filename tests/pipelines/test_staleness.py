"""is_stale: drift over the window, performance drop, age; and the inputs read from metadata."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from support.monitoring import TRAIN_ROWS, ingest_labels, ingest_records, make_champion
from support.scoring import promote_bundle
from typer.testing import CliRunner

from pipelines.drift import DRIFT_SCHEMA, read_drift
from pipelines.model_bundle import ModelMetadata
from pipelines.monitoring import (
    MonitoringParams,
    batches_since_training,
    reference_auc,
)
from pipelines.performance import PERFORMANCE_SCHEMA, read_performance
from pipelines.scores_table import score_batch
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec
from pipelines.staleness import is_stale
from scoreloop.cli import app

PARAMS = MonitoringParams(
    window_batches=3, min_drifted_features=2, min_drifted_batches=2, auc_tolerance=0.03
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def drift_rows(
    drifted: dict[str, list[str]], features: tuple[str, ...] = ("A", "B", "C")
) -> pl.DataFrame:
    rows = [
        {
            "batch_id": batch,
            "feature": feature,
            "metric": "psi",
            "value": 0.5 if feature in names else 0.01,
            "threshold": 0.2,
            "drifted": feature in names,
            "model_version": "v1",
            "computed_at": NOW,
        }
        for batch, names in drifted.items()
        for feature in features
    ]
    return pl.DataFrame(rows, schema=DRIFT_SCHEMA)


def perf_rows(aucs: dict[str, float], rows: int = 500) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "batch_id": b,
                "model_version": "v1",
                "rows": rows,
                "positive_rate": 0.5,
                "decision_rate": 0.5,
                "roc_auc": auc,
                "log_loss": 0.5,
                "brier": 0.2,
                "accuracy": 0.8,
                "threshold": 0.5,
                "computed_at": NOW,
            }
            for b, auc in aucs.items()
        ],
        schema=PERFORMANCE_SCHEMA,
    )


EMPTY_DRIFT = pl.DataFrame(schema=DRIFT_SCHEMA)
EMPTY_PERF = pl.DataFrame(schema=PERFORMANCE_SCHEMA)


def test_fresh_champion_is_not_stale() -> None:
    decision = is_stale(
        drift_rows({"01": ["A"], "02": [], "03": ["A", "B"]}),
        perf_rows({"01": 0.85, "02": 0.84}),
        PARAMS,
        reference_auc=0.85,
        batches_since_training=3,
    )
    assert not decision.stale
    assert decision.reasons == []
    assert decision.details["realised_auc"] == pytest.approx(0.845)


def test_drift_in_enough_recent_batches_is_stale() -> None:
    drift = drift_rows({"01": [], "02": ["A", "B"], "03": ["A", "C"]})
    decision = is_stale(drift, EMPTY_PERF, PARAMS, reference_auc=None, batches_since_training=None)
    assert decision.stale
    assert len(decision.reasons) == 1
    assert "feature drift: 2 of the last 3 batches (02, 03)" in decision.reasons[0]
    assert "A, B, C" in decision.reasons[0]


def test_old_drift_outside_the_window_does_not_count() -> None:
    drift = drift_rows({"01": ["A", "B"], "02": ["A", "B"], "03": [], "04": [], "05": ["A", "B"]})
    decision = is_stale(drift, EMPTY_PERF, PARAMS, reference_auc=None, batches_since_training=None)
    assert not decision.stale
    assert decision.details["drift_window"] == ["03", "04", "05"]


def test_score_drift_alone_is_not_feature_drift() -> None:
    drift = drift_rows({"01": ["score", "A"], "02": ["score", "A"]}, features=("A", "score"))
    decision = is_stale(drift, EMPTY_PERF, PARAMS, reference_auc=None, batches_since_training=None)
    assert not decision.stale


def test_performance_drop_is_stale() -> None:
    perf = perf_rows({"01": 0.90, "02": 0.80, "03": 0.79, "04": 0.78})
    decision = is_stale(EMPTY_DRIFT, perf, PARAMS, reference_auc=0.85, batches_since_training=0)
    assert decision.stale
    assert decision.details["performance_window"] == ["02", "03", "04"]
    assert "performance drop: mean realised AUC 0.7900" in decision.reasons[0]
    # Unknown reference AUC: performance is not judged; tiny batches are not judged either.
    assert not is_stale(
        EMPTY_DRIFT, perf, PARAMS, reference_auc=None, batches_since_training=0
    ).stale
    small = perf_rows({"01": 0.5}, rows=10)
    assert not is_stale(
        EMPTY_DRIFT, small, PARAMS, reference_auc=0.85, batches_since_training=0
    ).stale


def test_age_beyond_max_batches_is_stale() -> None:
    params = PARAMS.model_copy(update={"max_batches_since_training": 12})
    at_limit = is_stale(
        EMPTY_DRIFT, EMPTY_PERF, params, reference_auc=None, batches_since_training=12
    )
    assert not at_limit.stale
    old = is_stale(EMPTY_DRIFT, EMPTY_PERF, params, reference_auc=None, batches_since_training=13)
    assert old.stale
    assert old.reasons == [
        "age: 13 batches since the newest training batch (max_batches_since_training 12)"
    ]


def _metadata(**extra: object) -> ModelMetadata:
    return ModelMetadata.model_validate(
        {
            "name": "employment",
            "version": "v0.0.2",
            "spec_name": "acs",
            "features": ["A"],
            "categorical": [],
            "threshold": 0.5,
            "trained_at": NOW,
            **extra,
        }
    )


def test_age_and_reference_auc_come_from_the_metadata(tmp_path: Path) -> None:
    metadata = _metadata(
        training_set={
            "train": {"batches": ["2015-01", "2015-02"]},
            "holdout": {"batches": ["2015-04"]},
        },
        metrics={"validation_roc_auc": 0.8},
    )
    batches = [f"2015-{m:02d}" for m in range(1, 13)]
    assert batches_since_training(metadata, batches) == 8
    assert batches_since_training(_metadata(), batches) is None
    assert reference_auc(metadata) == (0.8, "metadata validation_roc_auc")
    # The holdout AUC of the promotion decision wins over the validation AUC.
    decisions = tmp_path / "decisions"
    decisions.mkdir()
    (decisions / "1-promote.json").write_text(
        json.dumps({"version": "v0.0.2", "primary_metric": "roc_auc", "challenger_value": 0.87})
    )
    (decisions / "2-gate.json").write_text(
        json.dumps({"version": "v0.0.3", "primary_metric": "roc_auc", "challenger_value": 0.5})
    )
    assert reference_auc(metadata, tmp_path) == (0.87, "holdout AUC in 1-promote.json")
    assert reference_auc(_metadata(metrics={"holdout_roc_auc": 0.9}), tmp_path)[0] == 0.9  # type: ignore[index]
    assert reference_auc(_metadata(version="v9.9.9"), tmp_path) is None


def test_monitor_command_end_to_end(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    """`scoreloop monitor` with a champion from the real registry: tables, verdict, alerts."""
    champion = make_champion(acs, spec, tmp_path / "bundle", train_batches=["2015-01"])
    promote_bundle(settings, champion.ref.model_dir)
    runner = CliRunner()
    for month, start in ((2, TRAIN_ROWS), (3, TRAIN_ROWS + 500)):
        batch_id = f"2015-0{month}"
        ingest_records(settings, acs, spec, batch_id, start=start, rows=500)
        score_batch(batch_id, settings=settings)
    ingest_labels(settings, acs, spec, "2015-02", start=TRAIN_ROWS, rows=500)

    result = runner.invoke(app, ["monitor", "--alert"])
    assert result.exit_code == 0, result.output
    assert "2015-02" in result.output and "2015-03" in result.output
    assert "staleness: fresh" in result.output
    assert sorted(read_drift(settings)["batch_id"].unique().to_list()) == ["2015-02", "2015-03"]
    assert read_performance(settings)["batch_id"].to_list() == ["2015-02"]

    result = runner.invoke(app, ["monitor", "2099-01"])
    assert result.exit_code == 1
    assert "not an accepted batch" in result.output
