"""Faults during ingest: kill -9 at several points, a full disk, and the cleanup after them
(``scoreloop maintain``). Each: nothing partial is trusted, a rerun heals, row counts identical."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from conftest import Batch
from typer.testing import CliRunner

from pipelines.crash_points import CRASH_ENV
from pipelines.ingest import QUARANTINE, VALIDATED, batch_outcomes, ingest_file
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec
from pipelines.tables import read_table, table_uri
from pipelines.validate import QUARANTINE_SCHEMA
from scoreloop.cli import app

POINTS = [
    "ingest:validated",
    "ingest:quarantine-committed",
    "ingest:table-committed",
    "ingest:logged",
]
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pipelines.ingest import ingest_file
    from pipelines.settings import BUNDLED_SPEC
    from pipelines.spec import load_spec

    spec = load_spec(BUNDLED_SPEC)
    for name in sys.argv[2:]:
        ingest_file(Path(name), spec, sys.argv[1], max_reject_rate=0.05)
    """
)


def _landing(batch: Batch, folder: Path) -> list[Path]:
    paths = [batch(f"2015-0{i}", rows=3000, start=i * 3000, folder=folder) for i in (1, 2)]
    frame = pl.read_parquet(paths[1])  # a few bad rows, so quarantine has rows to lose
    frame.with_columns(
        pl.when(pl.int_range(pl.len()) < 30).then(-1.0).otherwise(pl.col("AGEP")).alias("AGEP")
    ).write_parquet(paths[1])
    return paths


def _counts(root: str) -> dict[str, object]:
    validated = read_table(table_uri(root, VALIDATED), schema={"batch_id": pl.String()})
    quarantine = read_table(table_uri(root, QUARANTINE), schema=QUARANTINE_SCHEMA)
    outcomes = batch_outcomes(root)
    return {
        "validated": sorted(validated.group_by("batch_id").len().rows()),
        "quarantine": sorted(quarantine.group_by("batch_id").len().rows()),
        "log": sorted(outcomes.select("batch_id", "status", "accepted").rows()),
    }


def _nothing_partial_trusted(root: str) -> None:
    """Every batch the log calls accepted has exactly its logged rows, from its logged file."""
    validated = read_table(table_uri(root, VALIDATED), schema={"batch_id": pl.String()})
    for row in batch_outcomes(root).filter(pl.col("status") == "accepted").iter_rows(named=True):
        rows = validated.filter(pl.col("batch_id") == row["batch_id"])
        assert rows.height == row["accepted"], row
        assert set(rows["data_version"]) == {row["data_version"]}, row


@pytest.fixture
def reference(batch: Batch, spec: DatasetSpec, tmp_path: Path) -> dict[str, object]:
    root = str(tmp_path / "reference")
    for path in _landing(batch, tmp_path / "reference-landing"):
        ingest_file(path, spec, root, max_reject_rate=0.05)
    return _counts(root)


def test_kill_9_at_each_point_then_a_rerun_heals(
    batch: Batch, spec: DatasetSpec, tmp_path: Path, reference: dict[str, object]
) -> None:
    paths = _landing(batch, tmp_path / "landing")
    root = str(tmp_path / "tables")
    for point in POINTS:
        child = subprocess.run(
            [sys.executable, "-c", CHILD, root, *map(str, paths)],
            env={**os.environ, CRASH_ENV: point},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert child.returncode == -signal.SIGKILL, (point, child.stderr[-800:])
        _nothing_partial_trusted(root)
    for path in paths:  # the rerun
        ingest_file(path, spec, root, max_reject_rate=0.05)
    _nothing_partial_trusted(root)
    assert _counts(root) == reference


def test_kill_9_after_a_delay_then_a_rerun_heals(
    batch: Batch, spec: DatasetSpec, tmp_path: Path, reference: dict[str, object]
) -> None:
    paths = _landing(batch, tmp_path / "landing")
    root = str(tmp_path / "tables")
    for delay in (3.0, 6.0, 9.0):
        child = subprocess.Popen([sys.executable, "-c", CHILD, root, *map(str, paths)])
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        _nothing_partial_trusted(root)
    for path in paths:
        ingest_file(path, spec, root, max_reject_rate=0.05)
    assert _counts(root) == reference


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs (root only; skipped with the reason otherwise, never on CI as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    reason = ""
    if os.geteuid() != 0:
        reason = "not root: cannot mount a small tmpfs for the full-disk test"
    else:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            reason = f"mount failed: {done.stderr.strip()}"
            assert os.environ.get("CI") != "true", reason  # CI runs as root: it must work there
    if reason:
        print(f"SKIPPED full-disk test: {reason}")
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_leaves_nothing_partial_and_a_rerun_heals(
    batch: Batch, small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("SCORELOOP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SCORELOOP_STATE_ROOT", str(small_disk))
    root = str(small_disk / "tables")
    small = batch("2015-01", rows=500, folder=tmp_path / "landing")
    big = batch("2015-02", rows=60000, start=1000, folder=tmp_path / "landing")
    assert CliRunner().invoke(app, ["ingest", str(small)]).exit_code == 0
    before = _counts(root)
    ballast = small_disk / "ballast"
    free = shutil.disk_usage(small_disk).free
    ballast.write_bytes(b"\0" * max(free - 200_000, 0))

    full = CliRunner().invoke(app, ["ingest", str(big)], env={"COLUMNS": "300"})

    assert full.exit_code == 1, full.output
    assert full.exception is None or isinstance(full.exception, SystemExit)
    assert "Traceback" not in full.output
    assert "failed" in full.output
    _nothing_partial_trusted(root)
    assert _counts(root)["validated"] == before["validated"]

    ballast.unlink()
    assert CliRunner().invoke(app, ["ingest", str(big)]).exit_code == 0
    _nothing_partial_trusted(root)
    assert dict(_counts(root)["validated"])["2015-02"] == 60000  # type: ignore[call-overload]


def test_maintain_vacuums_unpinned_files_and_leftovers(
    batch: Batch, spec: DatasetSpec, settings: Settings, tmp_path: Path
) -> None:
    path = batch("2015-01", rows=300, folder=tmp_path / "landing")
    root = settings.tables
    for _ in range(3):  # every re-ingest adds files nothing used to remove
        ingest_file(path, spec, root, max_reject_rate=0.05)
    uri = table_uri(root, VALIDATED)
    pinned_version = 1
    settings.registry.mkdir(parents=True)
    (settings.registry / "selection.json").write_text(
        '{"train": ["2015-01"], "validation": [], "holdout": [], '
        f'"validated_version": {pinned_version}, "labels_version": 0}}'
    )
    pinned_rows = read_table(uri, version=pinned_version).height
    empty_part = Path(uri) / "batch_id=2015-01" / "part-killed.parquet"
    empty_part.write_bytes(b"")
    staging = settings.snapshots / ".staging-dead"
    staging.mkdir(parents=True)
    (staging / "scores.arrow").write_bytes(b"x" * 1000)
    files_before = sorted(Path(uri).rglob("*.parquet"))

    run = CliRunner().invoke(
        app,
        ["maintain", "--retention-hours", "0", "--staging-minutes", "0"],
        env={"COLUMNS": "300"},
    )

    assert run.exit_code == 0, run.output
    output = " ".join(run.output.split())
    assert "part-killed.parquet" in output and "0-byte part file" in output
    assert ".staging-dead" in output and not staging.exists()
    assert "bytes" in output and "freed" in output
    assert "validated [1]" in output
    assert not empty_part.exists()
    files_after = sorted(Path(uri).rglob("*.parquet"))
    assert len(files_after) < len(files_before) - 1  # an unpinned old version's file went
    assert read_table(uri, version=pinned_version).height == pinned_rows  # the pin still reads
    assert read_table(uri).height == 300
