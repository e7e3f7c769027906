"""The Dagster instance on a real PostgreSQL, selected by SCORELOOP_DAGSTER_PG_URL."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
from support.scoring import land_batch

from assets.ingestion import landing_sensor
from assets.resources import ScoreloopResource
from assets.runner import ingest_batches
from pipelines.ingest import VALIDATED
from pipelines.settings import get_settings
from pipelines.spec import DatasetSpec
from pipelines.tables import read_table, table_uri
from scoreloop.demo.state import ensure_dagster_home


def test_the_instance_config_names_postgres_without_the_password(
    state: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORELOOP_DAGSTER_PG_URL", pg_url.replace("postgres@", "postgres:s3cret@"))
    settings = get_settings()
    home = ensure_dagster_home(settings.dagster, settings.dagster_pg_url)
    text = (home / "dagster.yaml").read_text()
    assert "s3cret" not in text
    assert yaml.safe_load(text)["storage"]["postgres"]["postgres_url"] == {
        "env": "SCORELOOP_DAGSTER_PG_URL"
    }
    # without the URL the same folder goes back to SQLite (scoreloop wrote the file)
    ensure_dagster_home(settings.dagster, None)
    assert yaml.safe_load((home / "dagster.yaml").read_text()) is None


def test_batches_materialise_and_the_sensor_ticks_on_postgres(
    state: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    acs: pl.DataFrame,
    spec: DatasetSpec,
) -> None:
    monkeypatch.setenv("SCORELOOP_DAGSTER_PG_URL", pg_url)
    settings = get_settings()
    home = ensure_dagster_home(settings.dagster, settings.dagster_pg_url)
    land_batch(settings, acs, spec, "2015-01", start=0, rows=200)
    land_batch(settings, acs, spec, "2015-02", start=200, rows=200)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        context = dg.build_sensor_context(
            instance=instance, resources={"scoreloop": ScoreloopResource()}
        )
        result = landing_sensor(context)
        assert isinstance(result, dg.SensorResult)
        assert sorted(r.partition_key for r in result.run_requests or []) == [
            "2015-01",
            "2015-02",
        ]

    runs = ingest_batches(home, [("2015-01", True, False), ("2015-02", True, False)])
    assert [run.success for run in runs] == [True, True]
    assert read_table(table_uri(settings.tables, VALIDATED)).height == 400

    # a second process's view: the runs and materialisations are in PostgreSQL, not in files
    assert not list(home.glob("**/*.db"))
    with dg.DagsterInstance.from_config(str(home)) as reader:
        records = reader.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
        assert len(records) == 2
        key = dg.AssetKey("validated_batch")
        assert set(reader.get_materialized_partitions(key)) == {"2015-01", "2015-02"}
