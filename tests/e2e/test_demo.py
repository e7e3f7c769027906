"""``scoreloop demo`` end to end on a few batches, in a temporary state root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from pipelines.ingest import LOG_SCHEMA, log_uri
from pipelines.settings import Settings
from pipelines.tables import read_table, table_uri


@pytest.mark.slow
def test_demo_lands_and_ingests_batches_through_dagster(state: Path, settings: Settings) -> None:
    out = subprocess.run(
        [str(Path(sys.executable).with_name("scoreloop")), "demo", "--limit", "8"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"SCORELOOP_STATE_ROOT": str(state), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "8 Dagster runs; batches: 6 accepted, 1 refused, 1 failed" in text
    assert "labels for 8 batches" in text
    assert "top quarantine reasons" in text
    assert "2015-05 │ refused" in text
    assert "batch_2015-07.parquet: cannot be read" in text
    assert f"tables under {settings.tables}" in text
    assert "make ui" in text

    log = read_table(log_uri(settings.tables, "records"), schema=LOG_SCHEMA).sort("batch_id")
    assert log["batch_id"].to_list() == [f"2015-{m:02d}" for m in range(1, 9)]
    assert dict(zip(log["batch_id"], log["status"], strict=True))["2015-07"] == "failed"
    validated = read_table(table_uri(settings.tables, "validated"))
    assert sorted(validated["batch_id"].unique()) == [f"2015-{m:02d}" for m in (1, 2, 3, 4, 6, 8)]
    assert validated.height == int(log["accepted"].sum())
    quarantine = read_table(table_uri(settings.tables, "quarantine"))
    assert quarantine.filter(pl.col("batch_id") == "2015-03").height > 0
    assert read_table(table_uri(settings.tables, "labels"))["batch_id"].n_unique() == 8

    # the runs are in the persistent instance the UI opens
    assert (settings.dagster / "dagster.yaml").exists()
    with dg.DagsterInstance.from_config(str(settings.dagster)) as instance:
        assert len(instance.get_runs()) == 8
        assert instance.get_dynamic_partitions("batches") == [f"2015-{m:02d}" for m in range(1, 9)]
        failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        assert len(failed) == 2  # the refused batch (blocking check) and the unreadable file

    assert {"landing", "tables", "dagster"} <= {p.name for p in state.iterdir()}
