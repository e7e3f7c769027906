"""Against a real ``scoreloop serve`` process on 127.0.0.1: readiness, swap under load, refusals;
and the one helper that starts and stops it (:mod:`scoreloop.serve_process`)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import polars as pl
import pytest
from support.serving import TOKEN, Scrape

from pipelines.settings import BUNDLED_SPEC
from pipelines.snapshot import SCORES_FILE, publish_snapshot
from scoreloop.serve_process import HOST, ServiceProcess, ServiceStartError, stop_process

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
    env = {
        "SCORELOOP_STATE_ROOT": str(state),
        "SCORELOOP_ADMIN_TOKEN": TOKEN,
        "SCORELOOP_RELOAD_INTERVAL_S": "0.1",
    }
    with ServiceProcess(env, log=tmp_path / "server.log", ready_timeout=30) as service:
        base = service.base_url
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
        _wait_for_metric(base, "scoreloop_snapshot_reloads_total", 1, result="refused")
        some = ids[0]
        assert httpx.get(f"{base}/scores/{some}").json()["model_version"] == "v0.0.2"
        assert httpx.get(f"{base}/readyz").json()["snapshot_id"] != bad.snapshot_id
        log = (tmp_path / "server.log").read_text()
        assert f"snapshot {bad.snapshot_id} refused" in log
    assert service.returncode is not None


def _wait_for_metric(
    base: str, name: str, value: float, timeout: float = 10.0, **labels: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Scrape(httpx.get(f"{base}/metrics").text).get(name, -1.0, **labels) == value:
            return
        time.sleep(0.1)
    raise AssertionError(f"metric {name}{labels} == {value} not seen within {timeout} s")


def test_serve_refuses_to_start_without_an_admin_token(state: Path) -> None:
    service = ServiceProcess({"SCORELOOP_STATE_ROOT": str(state)}, ready_timeout=60)
    with pytest.raises(ServiceStartError, match="exited with code 2 before it was ready") as caught:
        service.start()
    assert caught.value.returncode == 2
    assert "SCORELOOP_ADMIN_TOKEN is missing or a placeholder" in caught.value.output
    assert "SCORELOOP_ADMIN_TOKEN is missing or a placeholder" in str(caught.value)
    assert service.returncode == 2


def test_serve_dev_mode_starts_without_token_and_without_snapshot(state: Path) -> None:
    env = {"SCORELOOP_STATE_ROOT": str(state)}
    with ServiceProcess(env, "--dev", ready_path="/healthz", ready_timeout=30) as service:
        assert service.request("GET", "/readyz")[0] == 503
        assert service.request("POST", "/admin/reload")[1]["result"] == "empty"


# --- the helper itself ---------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that may never come counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # as a server binds: connections in TIME_WAIT do not count, a listener does
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            sock.listen()
        except OSError:
            return False
    return True


def test_service_process_starts_ready_then_stops_and_frees_its_port(
    snapshots: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the caller's own SCORELOOP_* settings do not leak into the service
    monkeypatch.setenv("SCORELOOP_SNAPSHOT_DIR", str(state / "elsewhere"))
    env = {"SCORELOOP_STATE_ROOT": str(state), "SCORELOOP_ADMIN_TOKEN": TOKEN}
    with ServiceProcess(env, ready_timeout=60) as service:
        pid, port = service.pid, service.port
        assert service.base_url == f"http://127.0.0.1:{port}"
        assert _alive(pid)
        assert service.ready_seconds is not None and service.ready_seconds < 60
        status, body = service.request("GET", "/readyz")
        assert status == 200 and body["model_version"] == "v0.0.1"
        assert not _port_is_free(port)
        log = service.log_path
        assert log is not None and log.exists()
    # ended by the SIGTERM (uvicorn shuts down, then re-raises it), no SIGKILL needed
    assert service.returncode == -signal.SIGTERM
    assert not _alive(pid)
    assert _port_is_free(port)
    assert not log.exists()  # its own temporary log is removed
    assert service.stop() == -signal.SIGTERM  # stopping again changes nothing


def test_service_process_not_ready_in_time_is_stopped_with_its_output(state: Path) -> None:
    env = {"SCORELOOP_STATE_ROOT": str(state)}  # no snapshot: /readyz answers 503 for ever
    service = ServiceProcess(env, "--dev", ready_timeout=3)
    with pytest.raises(ServiceStartError, match=r"did not answer /readyz with 200 within 3 s"):
        service.start()
    assert service.returncode is not None
    assert not _alive(service.pid)


def test_service_process_stops_when_the_block_raises(snapshots: Path, state: Path) -> None:
    env = {"SCORELOOP_STATE_ROOT": str(state), "SCORELOOP_ADMIN_TOKEN": TOKEN}
    with pytest.raises(KeyError), ServiceProcess(env, ready_timeout=60) as service:
        raise KeyError("the caller failed")
    assert service.returncode is not None
    assert not _alive(service.pid)


STUBBORN = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
if sys.argv[1] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(120)
"""


@pytest.mark.parametrize("mode", ["ignore-term", "leave-child"])
def test_stop_process_kills_what_outlives_sigterm(mode: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", STUBBORN, mode], stdout=subprocess.PIPE, start_new_session=True
    )
    assert process.stdout is not None
    child = int(process.stdout.readline())
    time.sleep(0.2)  # the signal disposition is set after the print
    started = time.monotonic()
    code = stop_process(process, grace=1.0)
    process.stdout.close()
    if mode == "ignore-term":
        assert code == -signal.SIGKILL and time.monotonic() - started >= 1.0
    else:
        assert code == -signal.SIGTERM
    assert _gone(child), "a process the service started was left behind"


def test_serving_imports_no_orchestration_or_training_code() -> None:
    code = (
        "import sys, serving.main\n"
        "banned = ('dagster', 'dvc', 'gto', 'assets', 'sklearn')\n"
        "internal = ('pipelines.train', 'pipelines.registry', 'pipelines.scores_table',"
        " 'pipelines.rescore', 'pipelines.publish', 'pipelines.ingest',"
        " 'pipelines.deployment_repo', 'pipelines.promote', 'pipelines.stages',"
        " 'pipelines.simulate', 'scoreloop.cli')\n"
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
    assert Path(sys.executable).with_name("scoreloop").exists()
