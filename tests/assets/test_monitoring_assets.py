"""Monitoring in Dagster, in-process: drift/performance partitions, alert and staleness sensors.

The champion comes from the real registry (git + DVC + GTO in tmp_path), as in a deployment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from support.monitoring import TRAIN_ROWS, ingest_labels, ingest_records, make_champion
from support.scoring import ingest_batch, promote_bundle

from assets import monitoring
from assets.definitions import defs
from assets.partitions import BATCHES, batch_partitions
from assets.resources import RESOURCES
from assets.runner import RECORD_ASSETS, materialize_batch
from pipelines.alerts import alerts_path
from pipelines.drift import read_drift
from pipelines.performance import read_performance
from pipelines.scores_table import score_batch
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _alerts(settings: Settings) -> list[dict[str, Any]]:
    path = alerts_path(settings)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _champion(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path, **kw: Any
) -> None:
    champion = make_champion(acs, spec, tmp_path / "bundle", **kw)
    ref = promote_bundle(settings, champion.ref.model_dir)
    assert ref.version == champion.version


def _materialize(
    instance: dg.DagsterInstance, batch_id: str, assets: list[dg.AssetsDefinition]
) -> dg.ExecuteInProcessResult:
    if batch_id not in instance.get_dynamic_partitions(BATCHES):
        instance.add_dynamic_partitions(BATCHES, [batch_id])
    return dg.materialize(
        assets,
        instance=instance,
        partition_key=batch_id,
        resources=RESOURCES,
        run_config=QUIET,
        raise_on_error=False,
    )


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, Any]:
    [event] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key and e.asset_key.to_user_string() == key
    ]
    return {k: v.value for k, v in event.metadata.items()}


def test_definitions_wire_monitoring() -> None:
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"drift", "performance", "estimated_performance"} <= keys
    sensors = {s.name: s for s in repo.sensor_defs}
    assert {
        "monitoring_failure_sensor",
        "ingest_alert_sensor",
        "asset_check_alert_sensor",
        "staleness_sensor",
    } <= set(sensors)
    assert sensors["staleness_sensor"].job_name == "retraining"
    assert repo.get_job("retraining").name == "retraining"
    drift_node = repo.asset_graph.get(dg.AssetKey("drift"))
    assert drift_node.partitions_def == batch_partitions
    assert {k.to_user_string() for k in drift_node.parent_keys} == {
        "validated_batch",
        "scores",
        "champion",
    }


def test_drift_and_performance_on_two_batches(
    settings: Settings,
    acs: pl.DataFrame,
    spec: DatasetSpec,
    tmp_path: Path,
    instance: dg.DagsterInstance,
) -> None:
    _champion(settings, acs, spec, tmp_path, holdout_batches=["2015-01"])
    starts = {"2015-01": TRAIN_ROWS, "2015-02": TRAIN_ROWS + 600}
    for batch_id, start in starts.items():
        ingest_records(settings, acs, spec, batch_id, start=start)
        ingest_labels(settings, acs, spec, batch_id, start=start)
        score_batch(batch_id, settings=settings)

    for batch_id in starts:
        result = _materialize(instance, batch_id, [monitoring.drift, monitoring.performance])
        assert result.success
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert checks["no_feature_drift"].passed
        assert checks["auc_within_tolerance"].passed

    drift_meta = _metadata(result, "drift")
    assert drift_meta["drifted_features"] == "none"
    psi_rows = [r.data for r in drift_meta["psi_table"].records]
    assert "AGEP" in {r["feature"] for r in psi_rows} and {r["drifted"] for r in psi_rows} == {"no"}
    assert drift_meta["drift_over_time"].startswith("![drift_2015-02](data:image/png;base64,")
    assert drift_meta["drift_heatmap"].startswith("![drift_heatmap_2015-02](data:image/png;base64,")
    assert drift_meta["max_psi"] == float(f"{drift_meta['max_psi']:.4g}")  # rounded
    assert Path(drift_meta["drift_plot"]).read_bytes()[:4] == b"\x89PNG"
    assert drift_meta["score_reference"] == "holdout batches 2015-01"
    perf_meta = _metadata(result, "performance")
    assert perf_meta["dagster/row_count"] == 600
    assert 0.7 < perf_meta["roc_auc"] <= 1.0
    assert Path(perf_meta["auc_plot"]).exists()
    assert (
        drift_meta["dataset_drift"] is False and drift_meta["distributions"] == "no drifted feature"
    )
    # Estimated (CBPE) performance as soon as a batch is scored, calibrated on the holdout 2015-01,
    # beside the realised AUC once labels have landed.
    result = _materialize(instance, "2015-02", [monitoring.estimated_performance])
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "estimated_auc_within_tolerance"
    estimated = _metadata(result, "estimated_performance")
    assert 0.7 < estimated["estimated_roc_auc"] <= 1.0
    assert estimated["realised_roc_auc"] == perf_meta["roc_auc"]
    # every number rounded to 4 significant digits (so the difference of two is within 1e-4)
    assert estimated["estimation_error"] == pytest.approx(
        abs(estimated["estimated_roc_auc"] - perf_meta["roc_auc"]), abs=1e-4
    )
    assert estimated["estimation_error"] == float(f"{estimated['estimation_error']:.4g}")
    [cells] = [r.data for r in estimated["confusion_matrix"].records]
    assert set(cells) == {"tp", "fp", "fn", "tn", "threshold"}
    # expected counts (fractional), rounded to 4 significant digits
    assert sum(float(cells[k]) for k in ("tp", "fp", "fn", "tn")) == pytest.approx(600, abs=1)
    assert read_drift(settings)["batch_id"].unique().sort().to_list() == list(starts)
    assert read_performance(settings).height == 2
    assert _alerts(settings) == []

    # A batch whose ages are halved (still valid) drifts: the check warns, the run succeeds,
    # and a person gets an alert naming the feature.
    path = settings.landing / "batch_2015-03.parquet"
    acs.slice(TRAIN_ROWS + 1200, 600).select(spec.record_columns).with_columns(
        (pl.col("AGEP") * 0.5).round(0)
    ).write_parquet(path)
    from pipelines.ingest import ingest_file

    ingest_file(path, spec, settings.tables, max_reject_rate=0.05)
    score_batch("2015-03", settings=settings)
    result = _materialize(instance, "2015-03", [monitoring.drift])
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert "AGEP" in _metadata(result, "drift")["drifted_features"]
    assert "![distribution_2015-03_AGEP]" in _metadata(result, "drift")["distributions"]
    [alert] = _alerts(settings)
    assert alert["kind"] == "drift"
    assert alert["batch_id"] == "2015-03"
    assert "AGEP psi" in alert["message"]


def test_run_failure_sensor_alerts_every_failed_run_once_including_earlier_ones(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    @dg.asset(partitions_def=batch_partitions)
    def broken() -> None:
        raise dg.Failure(description="cannot read the landed file: truncated")

    # Two runs fail before the sensor's first tick (the demo's failed runs, before `make ui`).
    first = _materialize(instance, "2015-07", [broken])
    second = _materialize(instance, "2015-08", [broken])
    assert not first.success and not second.success

    tick = _sensor(monitoring.monitoring_failure_sensor, instance)
    assert isinstance(tick, dg.SensorResult) and tick.cursor
    alerts = _alerts(settings)
    assert [a["details"]["run_id"] for a in alerts] == [first.run_id, second.run_id]
    alert = alerts[0]
    assert alert["kind"] == "run_failure"
    assert alert["batch_id"] == "2015-07"
    assert alert["title"] == f"run of {first.dagster_run.job_name} (partition 2015-07) failed"
    assert alert["message"] == "broken: cannot read the landed file: truncated"
    assert alert["details"]["failed_steps"] == ["broken"]

    # The next tick alerts nothing again; a later failure is alerted once, alone.
    again = _sensor(monitoring.monitoring_failure_sensor, instance, tick.cursor)
    assert isinstance(again, dg.SensorResult) and again.cursor == tick.cursor
    assert len(_alerts(settings)) == 2
    third = _materialize(instance, "2015-09", [broken])
    later = _sensor(monitoring.monitoring_failure_sensor, instance, tick.cursor)
    assert isinstance(later, dg.SensorResult)
    assert [a["details"]["run_id"] for a in _alerts(settings)][2:] == [third.run_id]
    last = _sensor(monitoring.monitoring_failure_sensor, instance, later.cursor)
    assert isinstance(last, dg.SensorResult) and last.cursor == later.cursor
    assert len(_alerts(settings)) == 3


def _sensor(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None = None
) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=RESOURCES)
    result = sensor(context)
    assert isinstance(result, dg.SensorResult | dg.SkipReason)
    return result


def _tick(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None
) -> str | None:
    """One evaluation of an alert sensor (always a SensorResult); the cursor it stores."""
    result = _sensor(sensor, instance, cursor)
    assert isinstance(result, dg.SensorResult)
    return result.cursor


def test_ingest_alert_sensor_alerts_once_per_refused_batch(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, instance: dg.DagsterInstance
) -> None:
    ingest_batch(settings, acs, spec, "2015-01", start=0, rows=200)
    first = _sensor(monitoring.ingest_alert_sensor, instance)
    assert isinstance(first, dg.SensorResult)
    assert first.skip_reason is not None
    assert _alerts(settings) == []

    refused = ingest_batch(settings, acs, spec, "2015-02", start=200, rows=200, bad=50)
    assert refused.status == "refused"
    second = _sensor(monitoring.ingest_alert_sensor, instance, first.cursor)
    assert isinstance(second, dg.SensorResult)
    assert second.skip_reason is None
    [alert] = _alerts(settings)
    assert (alert["kind"], alert["batch_id"]) == ("batch_refused", "2015-02")
    assert "reject rate 25.00%" in alert["message"]

    third = _sensor(monitoring.ingest_alert_sensor, instance, second.cursor)
    assert isinstance(third, dg.SensorResult)
    assert third.skip_reason is not None
    assert len(_alerts(settings)) == 1


def test_one_failure_is_one_alert_even_when_its_file_is_run_again(
    settings: Settings, landing: Path, land: Any, instance: dg.DagsterInstance
) -> None:
    # An unreadable file: the ingest log records the failure (batch_failed, with the file and
    # why) and the `ingest` run fails. One alert, not one per sensor; the same file run again
    # (the landing sensor switched on after the demo) is not a second one.
    (landing / "batch_2015-05.csv").write_bytes(b"\x00\xff not,a\ncsv")
    ingest: str | None = None
    runs: str | None = None
    for _ in range(2):  # the sensors tick after each run
        assert not materialize_batch(instance, "2015-05").success
        ingest = _tick(monitoring.ingest_alert_sensor, instance, ingest)
        runs = _tick(monitoring.monitoring_failure_sensor, instance, runs)
    [alert] = _alerts(settings)
    assert (alert["kind"], alert["batch_id"]) == ("batch_failed", "2015-05")
    assert "batch_2015-05.csv" in alert["message"]

    # Once the batch is accepted, a new failure of it is alerted again.
    land("2015-05", rows=50)
    assert materialize_batch(instance, "2015-05").success
    (landing / "batch_2015-05.parquet").unlink()
    (landing / "batch_2015-05.csv").write_bytes(b"\x00\xff still,not\ncsv")
    assert not materialize_batch(instance, "2015-05").success
    _tick(monitoring.ingest_alert_sensor, instance, ingest)
    runs = _tick(monitoring.monitoring_failure_sensor, instance, runs)
    assert [a["kind"] for a in _alerts(settings)] == ["batch_failed", "batch_failed"]

    # A failed run of another job is still alerted by the run failure sensor.
    @dg.asset(partitions_def=batch_partitions)
    def broken() -> None:
        raise dg.Failure(description="scoring failed")

    assert not _materialize(instance, "2015-05", [broken]).success
    _tick(monitoring.monitoring_failure_sensor, instance, runs)
    assert [a["kind"] for a in _alerts(settings)][-1] == "run_failure"


def _check_sensor(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources=RESOURCES,
        repository_def=defs.get_repository_def(),
    )
    result = monitoring.asset_check_alert_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_failed_checks_alert_once_including_those_before_the_sensor_started(
    settings: Settings, land: Any, instance: dg.DagsterInstance
) -> None:
    # recorded before the sensor ever ran: an accepted batch (passing check), a refused one,
    # and an ERROR failure of another check (a failed drift check reported as ERROR)
    land("2015-01", rows=100)
    land("2015-02", rows=100, bad=40, start=100)
    for batch_id in ("2015-01", "2015-02"):
        assert _materialize(instance, batch_id, RECORD_ASSETS).success
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("drift"),
            check_name="no_feature_drift",
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            partition="2015-02",
            description="drift over the blocking threshold",
        )
    )
    first = _check_sensor(instance, None)
    assert first.skip_reason is None
    # the refused batch's failed ERROR check is not alerted again here: the ingest-alert sensor
    # alerts the refusal (batch_refused), so a refused batch alerts once
    [alert] = _alerts(settings)
    assert (alert["kind"], alert["severity"], alert["batch_id"]) == (
        "check_failed",
        "error",
        "2015-02",
    )
    assert alert["title"] == "check drift:no_feature_drift (partition 2015-02) failed"
    assert alert["details"]["check_severity"] == "ERROR"

    # nothing new: no second alert for the same evaluation
    again = _check_sensor(instance, first.cursor)
    assert again.skip_reason is not None
    assert len(_alerts(settings)) == 1

    # a new refusal (not alerted here), and a WARN failure of the promotion gate: one alert
    land("2015-03", rows=100, bad=50, start=200)
    assert _materialize(instance, "2015-03", RECORD_ASSETS).success
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("evaluation"),
            check_name="gate",
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="refused: auc below the floor",
        )
    )
    # a WARN drift check failing is not alerted here (the drift asset sends its own alert)
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("drift"),
            check_name="no_feature_drift",
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
        )
    )
    third = _check_sensor(instance, again.cursor)
    assert third.skip_reason is None
    new = _alerts(settings)[1:]
    assert [(a["kind"], a["severity"], a["batch_id"]) for a in new] == [
        ("check_refused", "info", None),
    ]
    assert new[0]["message"] == "refused: auc below the floor"
    assert int(third.cursor or 0) > int(first.cursor or 0)
    assert _check_sensor(instance, third.cursor).skip_reason is not None
    assert len(_alerts(settings)) == 2


def test_staleness_sensor_requests_retraining_only_when_stale(
    settings: Settings,
    acs: pl.DataFrame,
    spec: DatasetSpec,
    tmp_path: Path,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    skip = _sensor(monitoring.staleness_sensor, instance)
    assert isinstance(skip, dg.SkipReason)
    assert "no champion" in (skip.skip_message or "")

    _champion(settings, acs, spec, tmp_path, train_batches=["2015-01"])
    for month in (2, 3, 4):
        ingest_records(
            settings, acs, spec, f"2015-0{month}", start=TRAIN_ROWS + month * 100, rows=100
        )
    fresh = _sensor(monitoring.staleness_sensor, instance)
    assert isinstance(fresh, dg.SkipReason)
    assert "not stale" in (fresh.skip_message or "")

    params = tmp_path / "params.yaml"
    params.write_text("monitoring:\n  max_batches_since_training: 2\n")
    monkeypatch.setenv("SCORELOOP_PARAMS_PATH", str(params))
    # stale, but no labelled batch newer than the champion to learn the new data from
    waiting = _sensor(monitoring.staleness_sensor, instance)
    assert isinstance(waiting, dg.SkipReason)
    assert "waiting for labelled batches: 0 of 6" in (waiting.skip_message or "")
    params.write_text(
        "monitoring:\n  max_batches_since_training: 2\n  retrain_min_labelled_batches: 0\n"
    )
    stale = _sensor(monitoring.staleness_sensor, instance)
    assert isinstance(stale, dg.SensorResult)
    [request] = stale.run_requests or []
    assert request.job_name == "retraining"
    assert request.run_key == "stale-v0.0.1-2015-04"
    assert request.tags["scoreloop/trigger"] == "staleness"
    assert (
        "age: 3 batches since the newest training batch" in request.tags["scoreloop/stale_reasons"]
    )
    [alert] = _alerts(settings)
    assert alert["kind"] == "stale"
    assert alert["message"].startswith("retraining requested: age: 3 batches")

    assert json.loads(stale.cursor or "{}") == {
        "last_run_key": "stale-v0.0.1-2015-04",
        "last_request_batch": "2015-04",
    }
    again = _sensor(monitoring.staleness_sensor, instance, stale.cursor)
    assert isinstance(again, dg.SkipReason)
    assert len(_alerts(settings)) == 1


def test_without_a_champion_nothing_is_measured(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, instance: dg.DagsterInstance
) -> None:
    ingest_records(settings, acs, spec, "2015-01", start=0, rows=100)
    result = _materialize(instance, "2015-01", [monitoring.drift, monitoring.performance])
    assert result.success
    assert result.get_asset_materialization_events() == []
    assert read_drift(settings).height == 0
    checks = result.get_asset_check_evaluations()
    assert {c.check_name for c in checks} == {"no_feature_drift", "auc_within_tolerance"}
    assert all(c.description == "not measured: no champion model yet" for c in checks)
