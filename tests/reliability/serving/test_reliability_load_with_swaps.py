"""A bounded lookup load against a real ``scoreloop serve`` while snapshots are published every
couple of seconds: no failed request, every answer from exactly one snapshot, RSS flat."""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import polars as pl
import pytest
from support.serving import TOKEN

from pipelines.settings import BUNDLED_SPEC
from pipelines.snapshot import publish_snapshot
from scoreloop.serve_process import ServiceProcess

#: How long snapshots keep being published, and how often (SCORELOOP_TEST_SWAP_SECONDS shrinks
#: it for a quick local run; CI runs the default).
SWAP_SECONDS = float(os.environ.get("SCORELOOP_TEST_SWAP_SECONDS", "36"))
SWAP_EVERY_S = 2.0
WORKERS = 3
MAX_REQUESTS_PER_WORKER = 20_000
#: Copies of the 400 test entities in each snapshot (~12 MB a snapshot): a snapshot leaked per
#: swap would show as hundreds of MB, well beyond the tolerance.
COPIES = 100
ID_STRIDE = 1_000_000
RSS_TOLERANCE_BYTES = 64 * 2**20


def _widen(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.concat(frame.with_columns(pl.col("entity_id") + k * ID_STRIDE) for k in range(COPIES))


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _wait_serving(base: str, snapshot_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{base}/readyz", timeout=10).json()["snapshot_id"] != snapshot_id:
        assert time.monotonic() < deadline, f"{snapshot_id} not loaded in {timeout} s"
        time.sleep(0.05)


@pytest.mark.slow
def test_lookups_while_snapshots_swap(
    state: Path,
    tmp_path: Path,
    bundle_v1: Path,
    bundle_v2: Path,
    scores_v1: pl.DataFrame,
    scores_v2: pl.DataFrame,
) -> None:
    snapshots = state / "snapshots"
    versions = {
        "v0.0.1": (bundle_v1, _widen(scores_v1)),
        "v0.0.2": (bundle_v2, _widen(scores_v2)),
    }
    expected = {
        version: dict(zip(frame["entity_id"].to_list(), frame["score"].to_list(), strict=True))
        for version, (_, frame) in versions.items()
    }
    published: dict[str, str] = {}  # snapshot id -> model version
    first = publish_snapshot(versions["v0.0.1"][1], bundle_v1, BUNDLED_SPEC, snapshots)
    published[first.snapshot_id] = "v0.0.1"
    ids = list(expected["v0.0.1"])

    env = {
        "SCORELOOP_STATE_ROOT": str(state),
        "SCORELOOP_ADMIN_TOKEN": TOKEN,
        "SCORELOOP_RELOAD_INTERVAL_S": "0.2",
    }
    with ServiceProcess(env, log=tmp_path / "server.log", ready_timeout=120) as service:
        base, process = service.base_url, service.process
        assert process is not None
        done = threading.Event()
        rss: dict[str, int] = {}
        errors: list[str] = []

        def publisher() -> None:
            try:
                swaps = 0
                stop_at = time.monotonic() + SWAP_SECONDS
                while time.monotonic() < stop_at:
                    time.sleep(SWAP_EVERY_S)
                    version = "v0.0.2" if swaps % 2 == 0 else "v0.0.1"
                    bundle, frame = versions[version]
                    manifest = publish_snapshot(frame, bundle, BUNDLED_SPEC, snapshots)
                    published[manifest.snapshot_id] = version
                    _wait_serving(base, manifest.snapshot_id)
                    swaps += 1
                    if swaps == 4:
                        rss["warm"] = _rss(process.pid)
                rss["swaps"] = swaps
                time.sleep(1.0)
                rss["end"] = _rss(process.pid)
            except Exception as exc:  # reported by the test below, not lost in the thread
                errors.append(repr(exc))
            finally:
                done.set()

        def worker(seed: int) -> list[tuple[str, int, str]]:
            """(kind, status, problem or ""), one per request."""
            rng = random.Random(seed)
            seen: list[tuple[str, int, str]] = []
            with httpx.Client(base_url=base, timeout=30.0) as http:
                for n in range(MAX_REQUESTS_PER_WORKER):
                    if done.is_set():
                        break
                    if n % 2:
                        entity = rng.choice(ids)
                        response = http.get(f"/scores/{entity}")
                        if response.status_code != 200:
                            seen.append(("get", response.status_code, response.text[:200]))
                            continue
                        row = response.json()
                        good = row["score"] == expected[row["model_version"]][entity]
                        seen.append(("get", 200, "" if good else f"score of {entity}"))
                        continue
                    asked = rng.sample(ids, 5)
                    response = http.post("/scores/lookup", json={"ids": asked})
                    if response.status_code != 200:
                        seen.append(("lookup", response.status_code, response.text[:200]))
                        continue
                    body = response.json()
                    version = body["model_version"]
                    problem = ""
                    if published.get(body["snapshot_id"]) != version:
                        problem = f"snapshot {body['snapshot_id']} is not model {version}"
                    rows = body["found"]
                    if {r["model_version"] for r in rows} != {version} or len(rows) != 5:
                        problem = f"rows from more than one snapshot: {body}"[:300]
                    if any(r["score"] != expected[version][r["entity_id"]] for r in rows):
                        problem = "a score that is not its snapshot's"
                    seen.append(("lookup", 200, problem))
            return seen

        with ThreadPoolExecutor(WORKERS + 1) as pool:
            swapping = pool.submit(publisher)
            futures = [pool.submit(worker, seed) for seed in range(WORKERS)]
            answers = [a for f in futures for a in f.result()]
            swapping.result()
        assert errors == []
        assert process.poll() is None

    failed = [a for a in answers if a[1] != 200]
    wrong = [a for a in answers if a[2]]
    print(
        f"load with swaps: {len(answers)} requests over {rss['swaps']} swaps, "
        f"{len(failed)} failed, {len(wrong)} inconsistent; RSS after warm-up "
        f"{rss['warm'] / 2**20:.0f} MiB, at the end {rss['end'] / 2**20:.0f} MiB"
    )
    assert rss["swaps"] >= 5
    assert len(answers) > 200
    assert failed == []
    assert wrong == []
    assert len({a[0] for a in answers}) == 2
    assert rss["end"] - rss["warm"] < RSS_TOLERANCE_BYTES
