"""The demo's runs on a persistent Dagster instance, for the tests that look at the UI (its
GraphQL API in tests/assets/test_control_room.py, its pages in
tests/assets/test_control_room_browser.py): the ``demo_loop`` fixture (imported by
tests/assets/conftest.py), and the real webserver over its instance (:func:`dagster_webserver`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from assets import runner
from pipelines.registry import resolve_champion
from pipelines.settings import PROJECT_ROOT, Settings, get_settings
from pipelines.spec import DatasetSpec
from scoreloop.demo.state import ensure_dagster_home
from scoreloop.serve_process import HOST, free_port, http_json, stop_process
from support.retraining import build_tables, small_params


@dataclass(frozen=True)
class DemoLoop:
    """The runs :func:`demo_loop` launched, on the instance under ``home``."""

    settings: Settings
    home: Path
    first: runner.BatchRun
    refused: runner.BatchRun
    snapshot: runner.BatchRun
    ingested: Sequence[runner.BatchRun]


@pytest.fixture
def demo_loop(
    settings: Settings,
    acs: pl.DataFrame,
    spec: DatasetSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> DemoLoop:
    """The demo's runs, launched as the demo launches them (``assets.runner``: the named jobs,
    in-process, on the persistent SQLite instance under ``settings.dagster``): a first champion,
    a much weaker challenger the gate refuses, a snapshot, and three landed batches after the
    training data (accepted, refused on its reject rate, unreadable). Small tables and params
    (``SCORELOOP_TABLE_ROOT``, ``SCORELOOP_PARAMS_PATH`` set for the rest of the test)."""
    monkeypatch.setenv(
        "SCORELOOP_TABLE_ROOT", build_tables(acs, spec, tmp_path / "data", rows_per_year=2000)
    )
    monkeypatch.setenv("SCORELOOP_PARAMS_PATH", str(small_params(tmp_path / "params.yaml")))
    settings = get_settings()
    home = ensure_dagster_home(settings.dagster, settings.dagster_pg_url)

    first = runner.run_retraining(home)
    assert first.success and "champion" in first.materialized
    weak = small_params(tmp_path / "weak.yaml", iterations=2, depth=1, learning_rate=0.05)
    refused = runner.run_retraining(home, params_path=weak)
    assert "champion" not in refused.materialized and refused.failed_checks == ["gate"]
    champion = resolve_champion(settings)
    assert champion is not None and champion.version == "v0.0.1"
    snapshot = runner.publish_snapshot(home)
    assert snapshot.success
    rows = acs.select(spec.record_columns)
    settings.landing.mkdir(parents=True, exist_ok=True)
    rows.slice(0, 200).write_parquet(settings.landing / "batch_2099-01.parquet")
    rows.slice(200, 200).with_columns(pl.lit(-5.0).alias("AGEP")).write_parquet(
        settings.landing / "batch_2099-02.parquet"
    )
    (settings.landing / "batch_2099-03.parquet").write_bytes(b"PAR1 not really")
    ingested = runner.ingest_batches(home, [(f"2099-0{i}", True, False) for i in (1, 2, 3)])
    return DemoLoop(settings, home, first, refused, snapshot, ingested)


#: What the webserver answers once its code location (``assets.definitions``) is loaded.
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
LOCATIONS += "locationOrLoadError { __typename } } } } }"


@contextmanager
def dagster_webserver(home: Path, log: Path, *, ready_timeout: float = 180.0) -> Iterator[str]:
    """The real Dagster webserver (``dagster-webserver -m assets.definitions``, what ``dagster
    dev`` runs without its daemon) over the instance in ``home``, on a free 127.0.0.1 port, in
    its own process group; yields its base URL once its code location is loaded (bounded) and
    stops it by PID (SIGTERM, then SIGKILL to its group: the code server it started too)."""
    port = free_port()
    executable = Path(sys.executable).with_name("dagster-webserver")
    argv = [str(executable), "-m", "assets.definitions", "-h", HOST, "-p", str(port)]
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    base = f"http://{HOST}:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + ready_timeout
        while not _location_loaded(base):
            if process.poll() is not None:
                pytest.fail(f"dagster-webserver exited ({process.returncode}): {_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver not ready in {ready_timeout:g} s: {_tail(log)}")
            time.sleep(0.5)
        yield base
    finally:
        stop_process(process)


def _location_loaded(base: str) -> bool:
    try:
        status, body = http_json("POST", f"{base}/graphql", {"query": LOCATIONS}, timeout=5.0)
    except OSError:  # not listening yet
        return False
    if status != 200:
        return False
    entries = body["data"]["workspaceOrError"]["locationEntries"]
    return bool(entries) and all(
        e["loadStatus"] == "LOADED"
        and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        for e in entries
    )


def _tail(log: Path) -> str:
    return log.read_bytes()[-2000:].decode(errors="replace")
