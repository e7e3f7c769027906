"""Against a real ``scoreloop serve`` process on 127.0.0.1: readiness, swap under load, refusals."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import polars as pl
import pytest
from support.serving import SCORELOOP, TOKEN, free_port, start_server, stop, wait_ready

from pipelines.settings import BUNDLED_SPEC
from pipelines.snapshot import SCORES_FILE, publish_snapshot

LOAD_SECONDS = 2.5
MAX_REQUESTS_PER_WORKER = 3000
WORKERS = 3


def _expected(frame: pl.DataFrame) -> dict[int, float]:
    return dict(zip(frame["entity_id"].to_list(), frame["score"].to_list(), strict=True))


@pytest.mark.slow
def test_swap_under_load_then_refusals(
    snapshots: Path,
    state: Path,
    tmp_path: Path,
    bundle_v1: Path,
    bundle_v2: Path,
    scores_v1: pl.DataFrame,
    scores_v2: pl.DataFrame,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "SCORELOOP_STATE_ROOT": str(state),
        "SCORELOOP_ADMIN_TOKEN": TOKEN,
        "SCORELOOP_RELOAD_INTERVAL_S": "0.1",
    }
    process = start_server(env, port, log=tmp_path / "server.log")
    try:
        wait_ready(base, process)
        expected = {"v0.0.1": _expected(scores_v1), "v0.0.2": _expected(scores_v2)}
        ids = list(expected["v0.0.1"])
        stop_at = time.monotonic() + LOAD_SECONDS

        def worker(seed: int) -> list[tuple[int, str | None, bool]]:
            rng = random.Random(seed)
            seen: list[tuple[int, str | None, bool]] = []
            with httpx.Client(base_url=base, timeout=5.0) as http:
                for _ in range(MAX_REQUESTS_PER_WORKER):
                    if time.monotonic() > stop_at:
                        break
                    entity = rng.choice(ids)
                    response = http.get(f"/scores/{entity}")
                    if response.status_code != 200:
                        seen.append((response.status_code, None, False))
                        continue
                    body = response.json()
                    version = body["model_version"]
                    consistent = body["score"] == expected[version][entity]
                    seen.append((200, version, consistent))
            return seen

        with ThreadPoolExecutor(WORKERS) as pool:
            futures = [pool.submit(worker, seed) for seed in range(WORKERS)]
            time.sleep(LOAD_SECONDS / 3)
            publish_snapshot(scores_v2, bundle_v2, BUNDLED_SPEC, snapshots)
            results = [f.result() for f in futures]

        answers = [a for per_worker in results for a in per_worker]
        assert len(answers) > 100
        assert [a for a in answers if a[0] != 200] == []
        assert all(consistent for _, _, consistent in answers)
        assert {v for _, v, _ in answers} == {"v0.0.1", "v0.0.2"}
        for per_worker in results:  # once a worker saw the new version it never sees the old one
            versions = [v for _, v, _ in per_worker]
            first_new = versions.index("v0.0.2") if "v0.0.2" in versions else len(versions)
            assert set(versions[first_new:]) <= {"v0.0.2"}

        # A corrupt snapshot: refused by the follower, v0.0.2 keeps serving.
        # Built aside, corrupted, then moved in: the follower never sees it intact.
        aside = tmp_path / "aside"
        bad = publish_snapshot(scores_v1, bundle_v1, BUNDLED_SPEC, aside)
        data = bytearray((aside / bad.snapshot_id / SCORES_FILE).read_bytes())
        data[len(data) // 3] ^= 0x01
        (aside / bad.snapshot_id / SCORES_FILE).write_bytes(bytes(data))
        shutil.move(aside / bad.snapshot_id, snapshots / bad.snapshot_id)
        (snapshots / "CURRENT.tmp").write_text(bad.snapshot_id)
        os.replace(snapshots / "CURRENT.tmp", snapshots / "CURRENT")
        _wait_for_metric(base, 'scoreloop_snapshot_reloads_total{result="refused"} 1')
        some = ids[0]
        assert httpx.get(f"{base}/scores/{some}").json()["model_version"] == "v0.0.2"
        assert httpx.get(f"{base}/readyz").json()["snapshot_id"] != bad.snapshot_id
        log = (tmp_path / "server.log").read_text()
        assert f"snapshot {bad.snapshot_id} refused" in log
    finally:
        stop(process)
    assert process.returncode is not None


def _wait_for_metric(base: str, line: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in httpx.get(f"{base}/metrics").text.splitlines():
            return
        time.sleep(0.1)
    raise AssertionError(f"metric line {line!r} not seen within {timeout} s")


def test_serve_refuses_to_start_without_an_admin_token(state: Path, tmp_path: Path) -> None:
    port = free_port()
    process = start_server({"SCORELOOP_STATE_ROOT": str(state)}, port, log=tmp_path / "s.log")
    try:
        assert process.wait(timeout=60) == 2
    finally:
        stop(process)
    assert "SCORELOOP_ADMIN_TOKEN is missing or a placeholder" in (tmp_path / "s.log").read_text()


def test_serve_dev_mode_starts_without_token_and_without_snapshot(
    state: Path, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_server(
        {"SCORELOOP_STATE_ROOT": str(state)}, port, "--dev", log=tmp_path / "s.log"
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(f"{base}/readyz").status_code == 503
        assert httpx.post(f"{base}/admin/reload").json()["result"] == "empty"
    finally:
        stop(process)


def test_serving_imports_no_orchestration_or_training_code() -> None:
    code = (
        "import sys, serving.main\n"
        "banned = ('dagster', 'dvc', 'gto', 'assets', 'sklearn')\n"
        "internal = ('pipelines.train', 'pipelines.registry', 'pipelines.score',"
        " 'pipelines.ingest', 'pipelines.deployment_repo', 'pipelines.promote',"
        " 'pipelines.stages', 'pipelines.simulate', 'scoreloop.cli')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in banned or m in internal)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_pipelines_cli_does_not_import_fastapi_or_serving() -> None:
    code = (
        "import sys, scoreloop.cli\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'serving', 'uvicorn', 'starlette'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    assert SCORELOOP.exists()
