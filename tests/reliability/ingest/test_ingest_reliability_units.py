"""Per-batch ingest is one unit: a bad re-delivery never demotes an accepted batch, commit
conflicts are retried, concurrent ingests of one batch end from one file, and every landing file
gets an outcome (CLI and sensor)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from conftest import Batch

from assets.ingestion import landing_sensor
from assets.resources import ScoreloopResource
from pipelines.alerts import new_ingest_alerts
from pipelines.ingest import (
    QUARANTINE,
    VALIDATED,
    accepted_batches,
    batch_outcomes,
    ingest_file,
    read_ingest_log,
)
from pipelines.landing import dump_cursor, ingest_log_entry, load_cursor
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec
from pipelines.tables import read_table, table_uri
from pipelines.validate import QUARANTINE_SCHEMA, BatchReadError

MAX_REJECT_RATE = 0.05
PYTHON = sys.executable


def _ingest(path: Path, spec: DatasetSpec, root: str) -> object:
    return ingest_file(path, spec, root, max_reject_rate=MAX_REJECT_RATE)


def _validated(root: str, batch_id: str) -> pl.DataFrame:
    return read_table(table_uri(root, VALIDATED), batch_id=batch_id)


def test_corrupt_redelivery_never_demotes_an_accepted_batch(
    batch: Batch, spec: DatasetSpec, tmp_path: Path
) -> None:
    root = str(tmp_path / "tables")
    path = batch("2015-01", rows=200)
    good = _ingest(path, spec, root)
    before = _validated(root, "2015-01")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a truncated re-delivery under the same name

    with pytest.raises(BatchReadError, match="cannot be read as parquet"):
        _ingest(path, spec, root)

    assert accepted_batches(root) == ["2015-01"]
    assert _validated(root, "2015-01").equals(before)
    log = read_ingest_log(root, batch_id="2015-01").sort("processed_at")
    assert log["status"].to_list() == ["accepted", "failed"]  # the good outcome, then the attempt
    [outcome] = batch_outcomes(root).to_dicts()
    assert outcome["status"] == "accepted"
    assert outcome["data_version"] == good.data_version
    latest = ingest_log_entry(root, "records", "2015-01")
    assert latest is not None and latest["status"] == "failed"
    alerts, _ = new_ingest_alerts(root, {})
    assert [(a.batch_id, a.details["status"]) for a in alerts] == [("2015-01", "failed")]

    # a second bad attempt still keeps exactly one good row beside it
    with pytest.raises(BatchReadError):
        _ingest(path, spec, root)
    assert sorted(read_ingest_log(root, batch_id="2015-01")["status"]) == ["accepted", "failed"]
    # a good re-delivery replaces both
    batch("2015-01", rows=150, start=1000)
    _ingest(path, spec, root)
    assert read_ingest_log(root, batch_id="2015-01")["status"].to_list() == ["accepted"]
    assert _validated(root, "2015-01").height == 150


def test_refused_redelivery_keeps_the_accepted_rows(
    batch: Batch, spec: DatasetSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spills = tmp_path / "tmp"
    spills.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spills))  # where validate_file spills chunks
    root = str(tmp_path / "tables")
    path = batch("2015-02", rows=200)
    _ingest(path, spec, root)
    before = _validated(root, "2015-02")
    bad = pl.read_parquet(path).with_columns(pl.lit(-5.0).alias("AGEP"))  # every age out of range
    bad.write_parquet(path)

    refused = _ingest(path, spec, root)

    assert refused.status == "refused" and refused.kept == str(path)
    assert _validated(root, "2015-02").equals(before)
    quarantine = read_table(table_uri(root, QUARANTINE), schema=QUARANTINE_SCHEMA)
    assert quarantine.is_empty()  # the accepted batch's (empty) quarantine stands too
    assert accepted_batches(root) == ["2015-02"]
    latest = ingest_log_entry(root, "records", "2015-02")
    assert latest is not None and latest["status"] == "refused"
    assert "the accepted ingestion of" in latest["error"]
    assert list(spills.iterdir()) == []  # both ingests removed their spilled chunks


WRITER = textwrap.dedent(
    """
    import sys
    import polars as pl
    from pipelines.tables import write_batch

    uri, who = sys.argv[1], int(sys.argv[2])
    schema = {"batch_id": pl.String(), "x": pl.Int64()}
    for i in range(5):
        frame = pl.DataFrame({"batch_id": ["same"] * 3, "x": [who * 100 + i] * 3})
        write_batch(uri, frame, "same", schema, table="t")
    """
)


def test_concurrent_commits_to_one_partition_are_retried(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    writers = [
        subprocess.Popen([PYTHON, "-c", WRITER, uri, str(n)], stderr=subprocess.PIPE, text=True)
        for n in range(3)
    ]
    results = [(w.wait(timeout=300), w.stderr.read() if w.stderr else "") for w in writers]
    assert all(code == 0 for code, _ in results), [err[-500:] for _, err in results]
    rows = read_table(uri)
    assert rows.height == 3 and rows["x"].n_unique() == 1  # one writer's last batch, whole


INGESTER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pipelines.ingest import ingest_file
    from pipelines.settings import BUNDLED_SPEC
    from pipelines.spec import load_spec

    ingest_file(Path(sys.argv[1]), load_spec(BUNDLED_SPEC), sys.argv[2], max_reject_rate=0.05)
    """
)


def test_concurrent_ingests_of_one_batch_end_from_one_file(
    batch: Batch, tmp_path: Path, settings: Settings
) -> None:
    first = batch("2015-03", rows=300, start=0, folder=tmp_path / "a")
    second = batch("2015-03", rows=250, start=5000, folder=tmp_path / "b")
    # different bad rows in each, so quarantine tells the files apart too
    for path, bad in ((first, 3), (second, 5)):
        frame = pl.read_parquet(path)
        frame.with_columns(
            pl.when(pl.int_range(pl.len()) < bad).then(-1.0).otherwise(pl.col("AGEP")).alias("AGEP")
        ).write_parquet(path)
    for _ in range(1):
        runs = [
            subprocess.Popen(
                [PYTHON, "-c", INGESTER, str(p), settings.tables],
                stderr=subprocess.PIPE,
                text=True,
            )
            for p in (first, second, first)
        ]
        codes = [r.wait(timeout=300) for r in runs]
        assert codes == [0, 0, 0], [r.stderr.read()[-800:] if r.stderr else "" for r in runs]
        [entry] = read_ingest_log(settings.tables, batch_id="2015-03").to_dicts()
        validated = _validated(settings.tables, "2015-03")
        quarantine = read_table(
            table_uri(settings.tables, QUARANTINE), batch_id="2015-03", schema=QUARANTINE_SCHEMA
        )
        assert set(validated["data_version"]) == {entry["data_version"]}
        assert validated.height == entry["accepted"]
        assert set(quarantine["source_file"]) == {entry["source_file"]}
        assert quarantine.height == entry["rejected"]


def test_the_cli_reports_every_file_and_counts_failures_in_the_exit_code(
    batch: Batch, settings: Settings, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    batch("2015-01", rows=50)
    batch("2015-02", rows=50)
    (landing / "batch_x y.parquet").write_bytes((landing / "batch_2015-01.parquet").read_bytes())
    (landing / "batch_\u00e9t\u00e9.csv").write_text("id\n1\n")
    (landing / os.fsdecode(b"batch_\xff.parquet")).write_bytes(b"undecodable name")
    (landing / "batch_2015-03.parquet").write_bytes(b"PAR1 not parquet")
    (landing / ".tmp-batch_2015-04.parquet").write_bytes(b"in flight")
    env = {**os.environ, "SCORELOOP_STATE_ROOT": str(settings.state_root), "COLUMNS": "300"}
    run = subprocess.run(
        [str(Path(PYTHON).with_name("scoreloop")), "ingest", str(landing)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 4, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert accepted_batches(settings.tables) == ["2015-01", "2015-02"]
    output = " ".join(run.stdout.split())
    assert "'batch_x y.parquet' is not batch_<id>" in output and "it has spaces" in output
    assert "batch_\u00e9t\u00e9.csv" in output and "non-ASCII" in output
    assert "batch_\\xff.parquet" in output
    assert "cannot be read as parquet" in output
    assert ".tmp-batch_2015-04.parquet" in output and "skipped" in output
    assert "4 file(s) failed" in output


def test_the_landing_sensor_reports_odd_names_once_and_never_crashes(
    batch: Batch, settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    landing = settings.landing
    batch("2015-01", rows=20, folder=landing)
    (landing / "batch_x y.parquet").write_bytes(b"odd")
    (landing / os.fsdecode(b"batch_\xff.parquet")).write_bytes(b"undecodable name")
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor: str | None) -> dg.SensorResult | dg.SkipReason:
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"scoreloop": ScoreloopResource()}
        )
        result = landing_sensor(context)
        assert isinstance(result, dg.SensorResult | dg.SkipReason)
        return result

    first = tick(None)
    assert isinstance(first, dg.SensorResult)
    assert [r.partition_key for r in first.run_requests or []] == ["2015-01"]
    warned = capfd.readouterr().err  # Dagster's sensor log
    assert "'batch_x y.parquet'" in warned and "batch_\\xff.parquet" in warned
    assert first.cursor is not None
    assert dump_cursor(load_cursor(first.cursor)) == first.cursor  # the cursor round-trips
    first.cursor.encode("utf-8")  # storable whatever the names' bytes

    second = tick(first.cursor)
    assert isinstance(second, dg.SkipReason)  # nothing new: reported once, not every tick
    assert "landing file" not in capfd.readouterr().err

    (landing / "batch_\u00e9.parquet").write_bytes(b"new odd one")
    third = tick(first.cursor)
    assert isinstance(third, dg.SensorResult) and not third.run_requests
    assert third.skip_reason is not None and "non-ASCII" in str(third.skip_reason)
