"""Scale-out figures: a backfill on 1 vs 2 workers of Dask and of Celery + Redis, side by side,
and scoring on S3 vs a local path.

(a) ``backfill_speedup_2_workers``: the same backfill (ingest + score of 48 monthly batches, one
    Dagster run per partition, :func:`assets.distributed.backfill`) on a local Dask cluster of 1
    and then 2 one-thread worker processes; wall time of 1 worker / wall time of 2 (goal >= 1.5
    on 2 cores). Every run replaces the same partitions (re-running a partition replaces it).
    ``celery_backfill_speedup_2_workers``: the same on 1 and 2 Celery worker processes (solo
    pool, one thread) with a local Redis (Debian's ``redis-server``) as broker and result
    backend. ``celery_vs_dask_backfill``: Celery's wall time over Dask's, with 1 and with 2
    workers (above 1: Celery costs more). Each timing includes starting the workers (Dask's
    local cluster, the Celery worker processes), as a backfill of the scale demo does; the four
    backfills are interleaved (Dask 1, Celery 1, Dask 2, Celery 2) so that a change in the
    machine's load hits both executors, and the load average is printed with each.
(b) ``s3_vs_local_scoring``: ``score_batch`` of one batch of 1M rows (reasons included) with the
    tables on a local S3 endpoint (moto, in its own process) vs a local path; throughput ratio
    S3 / local (goal >= 0.7). Median of repeats after a warm-up.

The champion is a small real model (30 iterations) trained through the ``retraining`` assets on
the 2015 batches; scoring runs with ``thread_count: 1`` so each worker keeps to its share.

    .venv/bin/python benchmarks/backfill.py      # needs redis-server (`make scale-deps`)
    # quick: SCORELOOP_BENCH_BATCHES=16 SCORELOOP_BENCH_ROWS=100000 SCORELOOP_BENCH_REPEATS=1
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl
import yaml

BATCHES = int(os.environ.get("SCORELOOP_BENCH_BATCHES", "48"))
ROWS = int(os.environ.get("SCORELOOP_BENCH_ROWS", "1000000"))
REPEATS = int(os.environ.get("SCORELOOP_BENCH_REPEATS", "3"))
ROOT = Path(__file__).resolve().parent.parent


def _params(directory: Path) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["training"].update(iterations=30, baseline_iterations=10)
    raw["scoring"]["thread_count"] = 1
    raw["split"]["until"] = "2015-12"
    path = directory / "params.bench.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def prepare(state: Path) -> Path:
    """Land the batches, ingest 2015 with labels, train and promote a champion: DAGSTER_HOME."""
    os.environ["SCORELOOP_STATE_ROOT"] = str(state)
    os.environ["SCORELOOP_PARAMS_PATH"] = str(_params(state))
    from assets.runner import ingest_batches, run_retraining
    from pipelines.settings import get_settings
    from pipelines.simulate import simulate
    from pipelines.spec import load_spec
    from scoreloop.demo.state import ensure_dagster_home

    settings = get_settings()
    spec = load_spec(settings.spec_path)
    simulate(
        spec, settings.spec_path.parent / "employment_MA.parquet", settings.landing, limit=BATCHES
    )
    home = ensure_dagster_home(settings.dagster, settings.dagster_pg_url)
    first = [f"2015-{m:02d}" for m in range(1, 13)]
    ingest_batches(home, [(b, True, True) for b in first])
    run = run_retraining(home)
    if "champion" not in run.materialized:
        raise SystemExit(f"no champion trained: {run.errors}")
    return home


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def timed_backfill(
    home: Path, batch_ids: list[str], workers: int, executor: str = "dask", broker: str = ""
) -> float:
    """Wall time of the backfill on ``workers`` local workers of ``executor``, their start
    included (Celery: worker processes on ``broker``, stopped after)."""
    from assets.distributed import backfill, celery_workers

    before = _load()
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        options: dict[str, Any] = {"workers": workers}
        if executor == "celery":
            stack.enter_context(celery_workers(broker, workers))
            options = {"executor": "celery", "broker": broker}
        runs = backfill(home, batch_ids, score=True, **options)
    seconds = time.perf_counter() - start
    failed = [r.batch_id for r in runs if not r.success]
    if failed:
        raise SystemExit(
            f"backfill on {workers} {executor} worker(s) failed for {failed}: {runs[0].errors}"
        )
    print(
        f"backfill on {workers} {executor} worker(s): {seconds:.1f} s "
        f"({before} before, {_load()} after)",
        flush=True,
    )
    return seconds


def s3_vs_local(state: Path) -> float:
    """Throughput of score_batch with tables on S3 over tables on a local path."""
    from pipelines.ingest import ingest_file
    from pipelines.scores_table import score_batch
    from pipelines.settings import get_settings
    from pipelines.spec import load_spec
    from scoreloop.scale_stack import LOCAL_S3_CREDENTIALS, s3_endpoint

    settings = get_settings()
    spec = load_spec(settings.spec_path)
    acs = pl.read_parquet(settings.spec_path.parent / "employment_MA.parquet")
    rows = acs.sample(ROWS, with_replacement=True, seed=1).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias(spec.id.name)
    )
    path = state / "big" / "batch_2019-01.parquet"
    path.parent.mkdir()
    rows.select(spec.record_columns).write_parquet(path)

    with s3_endpoint() as server:
        endpoint = server.endpoint
        os.environ.update(LOCAL_S3_CREDENTIALS)
        server.create_bucket("scoreloop-bench")
        roots = {"local": str(state / "bench-tables"), "s3": "s3://scoreloop-bench/tables"}
        os.environ.update(SCORELOOP_S3_ENDPOINT_URL=endpoint, SCORELOOP_S3_REGION="us-east-1")
        seconds: dict[str, list[float]] = {"local": [], "s3": []}
        for root in roots.values():
            os.environ["SCORELOOP_TABLE_ROOT"] = root
            ingest_file(path, spec, root, max_reject_rate=1.0)
        for attempt in range(REPEATS + 1):
            for name, root in roots.items():
                os.environ["SCORELOOP_TABLE_ROOT"] = root
                start = time.perf_counter()
                score_batch("2019-01", settings=get_settings())
                if attempt:  # the first round is the warm-up
                    seconds[name].append(time.perf_counter() - start)
        local, s3 = (statistics.median(seconds[k]) for k in ("local", "s3"))
        print(f"scoring {ROWS} rows: local {local:.2f} s, S3 {s3:.2f} s (median of {REPEATS})")
        return local / s3


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="scoreloop-bench-backfill-") as tmp:
        state = Path(tmp)
        home = prepare(state)
        from pipelines.settings import get_settings

        landed = sorted(
            p.name.removeprefix("batch_").split(".")[0]
            for p in get_settings().landing.glob("batch_*")
        )
        from scoreloop.scale_stack import redis_broker

        seconds: dict[tuple[str, int], float] = {}
        with redis_broker() as redis:
            print(f"Redis broker {redis.url} (pid {redis.pid})", flush=True)
            for workers in (1, 2):
                for executor in ("dask", "celery"):
                    seconds[executor, workers] = timed_backfill(
                        home, landed, workers, executor, redis.url
                    )
        for executor in ("dask", "celery"):
            one, two = seconds[executor, 1], seconds[executor, 2]
            print(
                f"backfill of {len(landed)} batches on {executor}: "
                f"1 worker {one:.1f} s, 2 workers {two:.1f} s"
            )
        ratio = s3_vs_local(state)
        dask = seconds["dask", 1] / seconds["dask", 2]
        celery = seconds["celery", 1] / seconds["celery", 2]
        vs_one = seconds["celery", 1] / seconds["dask", 1]
        vs_two = seconds["celery", 2] / seconds["dask", 2]
        print(f"bench backfill_speedup_2_workers: {dask:.2f} (goal >= 1.5 on 2 cores)")
        print(f"bench celery_backfill_speedup_2_workers: {celery:.2f} (goal >= 1.5 on 2 cores)")
        print(
            f"bench celery_vs_dask_backfill: {vs_two:.2f} with 2 workers, {vs_one:.2f} with 1 "
            "(Celery wall time / Dask's; the default executor is the lower)"
        )
        print(f"bench s3_vs_local_scoring: {ratio:.2f} (goal >= 0.7)")
        print(_load())


if __name__ == "__main__":
    main()
