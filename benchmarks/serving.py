"""Lookup-service benchmark: a real server process, a load generator in a second process.

    python benchmarks/serving.py            (or `make bench`)

1. Publishes a synthetic snapshot of SCORELOOP_BENCH_ENTITIES entities (default 10,000,000) with
   a tiny real CatBoost model, then measures, in a fresh process, the time to load it the way
   the service does (checksum, schema, model, index) and the process RSS after 10k lookups.
2. Starts `scoreloop serve` (1 worker, 127.0.0.1) with the hidden /bench/hello route and drives it
   with wrk (if installed; else a Python keep-alive socket generator): hello-world vs
   GET /scores/{random id}, alternating, SCORELOOP_BENCH_SECONDS each (default 5),
   SCORELOOP_BENCH_REPEATS times (default 3), median reported.
   SCORELOOP_BENCH_SERVERS=uvicorn,granian also runs granian (if installed) for comparison.

Prints `bench <name>: <value> (goal ...)` lines last; exits 0 whatever the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from scoreloop.serve_process import ServiceProcess

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: Throughput is measured with the single worker saturated; latency at a moderate load, because
#: at saturation p99 is the queue length times the service time, not the service's latency.
CONNECTIONS = 16
LATENCY_CONNECTIONS = 4
ID_STRIDE = 7
ID_OFFSET = 3


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# --------------------------------------------------------------------------- snapshot


def make_snapshot(snapshots: Path, entities: int) -> None:
    """Synthetic scores (ids 3, 10, 17, ... shuffled) + a tiny real model, published."""
    import numpy as np
    import polars as pl
    from scoring import train  # benchmarks/scoring.py: the same tiny real model

    from pipelines.settings import BUNDLED_SPEC
    from pipelines.snapshot import publish_snapshot
    from pipelines.spec import load_spec

    spec = load_spec(BUNDLED_SPEC)
    bundle = snapshots.parent / "bundle"
    train(spec, bundle, rows=2000, iterations=30, version="v9.9.9")
    rng = np.random.default_rng(7)
    k = 3
    names = pl.Series(spec.feature_names)
    flat = pl.DataFrame(
        {
            "feature": names.gather(rng.integers(0, len(names), entities * k)),
            "value": pl.Series(rng.integers(0, 25, entities * k)).cast(pl.String),
            "contribution": rng.normal(0, 0.3, entities * k),
        }
    ).to_struct("reasons")
    reasons = flat.reshape((entities, k)).cast(pl.List(flat.dtype))
    score = rng.random(entities)
    frame = pl.DataFrame(
        {
            "entity_id": rng.permutation(entities) * ID_STRIDE + ID_OFFSET,
            "batch_id": "2018-12",
            "score": score,
            "decision": score >= 0.5,
            "threshold": 0.5,
            "model_name": "employment",
            "model_version": "v9.9.9",
            "reasons": reasons,
            "expected_value": -0.4,
            "scored_at": datetime(2026, 11, 1, tzinfo=UTC),
            "data_version": "0123456789abcdef0123456789abcdef",
        }
    )
    del flat, reasons
    publish_snapshot(frame, bundle, BUNDLED_SPEC, snapshots, keep=1)


def _rss_parts() -> dict[str, float]:
    """RSS split into anonymous (heap, the snapshot's copy) and file-backed pages, in GB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "RssAnon", "RssFile"}:
            fields[key] = int(value.split()[0]) * 1024 / 1e9
    return fields


def measure_load(snapshots: Path, entities: int) -> dict[str, float]:
    """Load as the service does; RSS when ready, then after 10k random lookups."""
    import random

    from serving.metrics import Metrics
    from serving.store import SnapshotStore

    before = _rss_parts()
    start = time.perf_counter()
    store = SnapshotStore(snapshots, id_dtype="int", metrics=Metrics())
    result = store.reload()
    seconds = time.perf_counter() - start
    if result.result != "swapped" or store.current is None:
        raise SystemExit(f"snapshot did not load: {result}")
    ready = _rss_parts()
    index = store.current.index
    rng = random.Random(1)
    for _ in range(10_000):
        if index.get(rng.randrange(entities) * ID_STRIDE + ID_OFFSET) is None:
            raise SystemExit("a known id was not found")
    after = _rss_parts()
    return {
        "load_s": seconds,
        "rss_before_gb": before["VmRSS"],
        "rss_gb": ready["VmRSS"],
        "rss_after_lookups_gb": after["VmRSS"],
        "anon_after_lookups_gb": after["RssAnon"],
        "file_after_lookups_gb": after["RssFile"],
    }


# --------------------------------------------------------------------------- load generators


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def run_wrk(
    base: str, kind: str, seconds: float, entities: int, workdir: Path, connections: int
) -> dict[str, float]:
    script = workdir / f"{kind}.lua"
    if kind == "lookup":
        script.write_text(
            "math.randomseed(42)\n"
            "request = function()\n"
            f'  return wrk.format("GET", "/scores/" .. (math.random(0, {entities - 1})'
            f" * {ID_STRIDE} + {ID_OFFSET}))\n"
            "end\n"
        )
        path = "/"
    else:
        script.write_text("")
        path = "/bench/hello"
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            base + path,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise SystemExit(f"wrk saw failed responses:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99}


async def _socket_load(
    host: str, port: int, kind: str, seconds: float, entities: int, connections: int
) -> dict[str, float]:
    import random

    rng = random.Random(42)
    latencies: list[float] = []
    failures = 0
    stop_at = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < stop_at:
                path = (
                    f"/scores/{rng.randrange(entities) * ID_STRIDE + ID_OFFSET}"
                    if kind == "lookup"
                    else "/bench/hello"
                )
                start = time.perf_counter()
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                if not head.startswith(b"HTTP/1.1 200"):
                    failures += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{failures} failed responses")
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
    }


def run_load(
    base: str,
    kind: str,
    seconds: float,
    entities: int,
    workdir: Path,
    connections: int = CONNECTIONS,
) -> dict[str, float]:
    if shutil.which("wrk"):
        return run_wrk(base, kind, seconds, entities, workdir, connections)
    port = int(base.rsplit(":", 1)[1])
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "_socketload",
            str(port),
            kind,
            str(seconds),
            str(entities),
            str(connections),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


# --------------------------------------------------------------------------- servers


def bench_server(
    name: str, state: Path, entities: int, seconds: float, repeats: int, workdir: Path
) -> dict[str, float]:
    env = {
        "SCORELOOP_STATE_ROOT": str(state),
        "SCORELOOP_BENCH_ROUTES": "1",
        "SCORELOOP_ADMIN_TOKEN": secrets.token_urlsafe(24),
        "SCORELOOP_RELOAD_INTERVAL_S": "30",
    }
    # `scoreloop serve --server NAME`: the same command people run, one worker
    args = ("--log-level", "warning", "--server", name)
    log = workdir / f"{name}.log"
    with ServiceProcess(env, *args, log=log, ready_timeout=120, stop_timeout=15) as service:
        base = service.base_url
        run_load(base, "hello", 1, entities, workdir)  # warm-up
        run_load(base, "lookup", 1, entities, workdir)
        hello: list[dict[str, float]] = []
        lookup: list[dict[str, float]] = []
        latency: list[dict[str, float]] = []
        for _ in range(repeats):
            hello.append(run_load(base, "hello", seconds, entities, workdir))
            lookup.append(run_load(base, "lookup", seconds, entities, workdir))
            latency.append(
                run_load(base, "lookup", seconds, entities, workdir, LATENCY_CONNECTIONS)
            )
    med = statistics.median
    return {
        "hello_rps": med(r["rps"] for r in hello),
        "lookup_rps": med(r["rps"] for r in lookup),
        "lookup_p50_ms": med(r["p50_ms"] for r in latency),
        "lookup_p99_ms": med(r["p99_ms"] for r in latency),
        "saturated_p99_ms": med(r["p99_ms"] for r in lookup),
        "hello_p99_ms": med(r["p99_ms"] for r in hello),
    }


def main() -> None:
    entities = _env_int("SCORELOOP_BENCH_ENTITIES", 10_000_000)
    seconds = float(os.environ.get("SCORELOOP_BENCH_SECONDS", "5"))
    repeats = _env_int("SCORELOOP_BENCH_REPEATS", 3)
    servers = [s for s in os.environ.get("SCORELOOP_BENCH_SERVERS", "uvicorn").split(",") if s]
    generator = "wrk" if shutil.which("wrk") else "python sockets"
    print(
        f"entities={entities:,} seconds={seconds} repeats={repeats} connections={CONNECTIONS} "
        f"load generator={generator} servers={servers}"
    )
    with tempfile.TemporaryDirectory(prefix="scoreloop-bench-") as tmp:
        workdir = Path(tmp)
        state = workdir / "state"
        snapshots = state / "snapshots"
        snapshots.mkdir(parents=True)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "_make", str(snapshots), str(entities)], check=True, cwd=ROOT
        )
        size = sum(p.stat().st_size for p in snapshots.rglob("scores.arrow"))
        print(
            f"published snapshot in {time.perf_counter() - start:.1f} s, "
            f"scores.arrow {size / 1e9:.2f} GB"
        )
        loads = []
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, __file__, "_load", str(snapshots), str(entities)],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            ).stdout
            loads.append(json.loads(out.strip().splitlines()[-1]))
        load_s = statistics.median(x["load_s"] for x in loads)
        rss_gb = max(x["rss_gb"] for x in loads)
        last = loads[-1]
        print(
            f"load runs: {[round(x['load_s'], 2) for x in loads]} s; RSS ready {rss_gb:.2f} GB "
            f"(interpreter and libraries alone {last['rss_before_gb']:.2f} GB); after 10k random "
            f"lookups {last['rss_after_lookups_gb']:.2f} GB = {last['anon_after_lookups_gb']:.2f} "
            f"anonymous (the snapshot's copy in memory) + {last['file_after_lookups_gb']:.2f} "
            "file-backed (libraries)"
        )
        results: dict[str, dict[str, float]] = {}
        for name in servers:
            if name == "granian" and not (BIN / "granian").exists():
                print("granian not installed: skipped")
                continue
            results[name] = bench_server(name, state, entities, seconds, repeats, workdir)
            print(f"{name}: " + ", ".join(f"{k}={v:.2f}" for k, v in results[name].items()))
    main_result = results.get("uvicorn") or next(iter(results.values()))
    ratio = main_result["lookup_rps"] / main_result["hello_rps"]
    size_tag = "10m" if entities == 10_000_000 else f"{entities}"
    print(f"bench lookup_rps: {main_result['lookup_rps']:.0f} (info)")
    print(f"bench lookup_vs_hello: {ratio:.2f} (goal >= 0.85)")
    saturated = main_result["saturated_p99_ms"]
    print(f"bench lookup_p99_ms_saturated_c{CONNECTIONS}: {saturated:.2f} (info)")
    print(f"bench lookup_p50_ms_c{LATENCY_CONNECTIONS}: {main_result['lookup_p50_ms']:.2f} (info)")
    p99 = main_result["lookup_p99_ms"]
    print(f"bench lookup_p99_ms_c{LATENCY_CONNECTIONS}: {p99:.2f} (goal < 10)")
    print(f"bench snapshot_load_s_{size_tag}: {load_s:.2f} (goal < 5)")
    print(f"bench snapshot_rss_gb_{size_tag}: {rss_gb:.2f} (goal < 2)")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) > 1 and sys.argv[1] == "_make":
        make_snapshot(Path(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_load":
        print(json.dumps(measure_load(Path(sys.argv[2]), int(sys.argv[3]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "_socketload":
        port, kind, secs = int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
        n, conns = int(sys.argv[5]), int(sys.argv[6])
        print(json.dumps(asyncio.run(_socket_load("127.0.0.1", port, kind, secs, n, conns))))
    else:
        main()
