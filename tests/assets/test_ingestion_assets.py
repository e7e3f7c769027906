"""Ingestion assets and checks, run in-process on real Delta tables under tmp_path."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets import ingestion
from assets.partitions import batch_partitions
from assets.resources import RESOURCES, ScoreloopResource
from assets.runner import RECORD_ASSETS, materialize_batch
from pipelines.ingest import accepted_batches
from pipelines.landing import ingest_log_entry
from pipelines.settings import Settings
from pipelines.tables import read_table, table_uri
from pipelines.validate import file_version

Land = Callable[..., Path]


def _materialization(result: dg.ExecuteInProcessResult, key: str) -> dg.AssetMaterialization:
    events = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(key)
    ]
    assert len(events) == 1, f"{key}: {len(events)} materialisations"
    return events[0]


def test_definitions_load_with_every_ingestion_definition() -> None:
    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_batch", "validated_batch", "quarantine", "labels"} <= keys
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert ("validated_batch", "reject_rate_within_limit") in checks
    assert ("labels", "labels_reject_rate_within_limit") in checks
    assert defs.resolve_sensor_def("landing_sensor").name == "landing_sensor"
    ingest_job = defs.resolve_job_def("ingest")
    assert ingest_job.partitions_def == batch_partitions
    assert {k.to_user_string() for k in ingest_job.asset_layer.selected_asset_keys} == {
        "raw_batch",
        "validated_batch",
        "quarantine",
        "labels",
    }
    # the named jobs the sensors and the demo launch
    for name in ("ingest", "retraining", "scoring", "monitoring"):
        assert defs.resolve_job_def(name).name == name


def test_importing_definitions_does_no_work(tmp_path: Path) -> None:
    root = tmp_path / "never-created"
    code = "import assets.definitions as d; print(len(list(d.defs.assets or [])))"
    env = {"SCORELOOP_STATE_ROOT": str(root), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert int(out.stdout.strip()) >= 3
    assert not root.exists()


def test_two_batches_and_labels_materialise_with_metadata_and_tables(
    land: Land, settings: Settings, instance: dg.DagsterInstance
) -> None:
    first = land("2015-01", rows=120, bad=3)
    land("2015-02", rows=80, start=500)
    land("2015-01", rows=120, kind="labels")

    run = materialize_batch(instance, "2015-01", labels=True)
    assert run.success, run.errors
    assert run.materialized == ["labels", "quarantine", "raw_batch", "validated_batch"]
    assert materialize_batch(instance, "2015-02").success

    result = dg.materialize(
        RECORD_ASSETS, instance=instance, partition_key="2015-01", resources=RESOURCES
    )
    raw = _materialization(result, "raw_batch")
    md5 = file_version(first)
    assert raw.metadata["md5"].value == md5
    validated = _materialization(result, "validated_batch").metadata
    assert validated["status"].value == "accepted"
    assert (validated["rows"].value, validated["accepted"].value) == (120, 117)
    assert validated["reject_rate"].value == pytest.approx(3 / 120)
    assert "| AGEP |" in validated["top_reasons"].value
    assert validated["data_version"].value == md5
    assert validated["table_version"].value is not None
    assert "AGEP" in {c.name for c in validated["dagster/column_schema"].schema.columns}
    quarantine = _materialization(result, "quarantine").metadata
    assert quarantine["dagster/row_count"].value == 3
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed

    rows = read_table(table_uri(settings.tables, "validated"))
    assert rows.group_by("batch_id").len().sort("batch_id").rows() == [
        ("2015-01", 117),
        ("2015-02", 80),
    ]
    assert rows.filter(pl.col("batch_id") == "2015-01")["data_version"].unique().to_list() == [md5]
    assert read_table(table_uri(settings.tables, "quarantine")).height == 3
    assert read_table(table_uri(settings.tables, "labels")).height == 120
    assert accepted_batches(settings.tables) == ["2015-01", "2015-02"]
    assert accepted_batches(settings.tables, "labels") == ["2015-01"]
    # a re-run replaced the batch, it did not duplicate it
    assert instance.get_dynamic_partitions(batch_partitions.name) == ["2015-01", "2015-02"]


def test_refused_batch_is_a_failed_error_check_on_its_partition_in_a_successful_run(
    land: Land, settings: Settings, instance: dg.DagsterInstance
) -> None:
    land("2015-03", rows=100, bad=40)
    instance.add_dynamic_partitions(batch_partitions.name, ["2015-03"])
    result = dg.materialize(
        RECORD_ASSETS,
        instance=instance,
        partition_key="2015-03",
        resources=RESOURCES,
        raise_on_error=False,
    )
    # a refusal is an expected outcome: the run succeeds, the check says refused
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.partition == "2015-03"
    assert evaluation.metadata["status"].value == "refused"
    assert evaluation.metadata["reject_rate"].value == pytest.approx(0.4)
    validated = _materialization(result, "validated_batch").metadata
    assert (validated["status"].value, validated["accepted"].value) == ("refused", 0)
    assert _materialization(result, "quarantine").metadata["dagster/row_count"].value == 100
    entry = ingest_log_entry(settings.tables, "records", "2015-03")
    assert entry is not None and entry["status"] == "refused"
    # the check is defined per partition, so the UI shows the refusal on 2015-03 only
    assert ingestion.reject_rate_within_limit.partitions_def == batch_partitions


def test_unreadable_file_fails_only_its_partition(
    land: Land, landing: Path, settings: Settings, instance: dg.DagsterInstance
) -> None:
    land("2015-01", rows=50)
    broken = landing / "batch_2015-02.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")

    bad = materialize_batch(instance, "2015-02")
    assert not bad.success
    assert bad.materialized == ["raw_batch"]
    [message] = bad.errors
    assert str(broken) in message and "cannot read" in message
    entry = ingest_log_entry(settings.tables, "records", "2015-02")
    assert entry is not None and entry["status"] == "failed"

    assert materialize_batch(instance, "2015-01").success
    assert accepted_batches(settings.tables) == ["2015-01"]


def test_missing_file_is_a_clear_failure(landing: Path, instance: dg.DagsterInstance) -> None:
    run = materialize_batch(instance, "2099-01", records=False, labels=True)
    assert not run.success
    assert any("no labels file for batch '2099-01'" in e for e in run.errors)


def test_labels_alone_materialise_later(
    land: Land, settings: Settings, instance: dg.DagsterInstance
) -> None:
    land("2015-04", rows=30, kind="labels")
    run = materialize_batch(instance, "2015-04", records=False, labels=True)
    assert run.success and run.materialized == ["labels"]
    assert read_table(table_uri(settings.tables, "labels"), batch_id="2015-04").height == 30


def test_resource_overrides_apply_on_top_of_the_environment(
    settings: Settings, tmp_path: Path
) -> None:
    assert ScoreloopResource().settings().tables == settings.tables
    custom = ScoreloopResource(table_root="s3://bucket/tables", model_name="other").settings()
    assert (custom.tables, custom.model_name) == ("s3://bucket/tables", "other")
    assert custom.state_root == settings.state_root
    assert ScoreloopResource(state_root=str(tmp_path)).settings().landing == tmp_path / "landing"


def test_automation_sensor_runs_by_default_and_covers_the_eager_assets() -> None:
    """Scoring a validated batch must not wait for a person to switch automation on."""
    from assets.definitions import defs

    sensor = defs.resolve_sensor_def("scoreloop_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    eager = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).automation_condition is not None
    }
    assert {"scores", "drift", "performance"} <= eager
    covered = {k.to_user_string() for k in sensor.asset_selection.resolve(graph)}
    assert eager <= covered
