"""A small backfill on Celery workers with Redis: the executor measured beside Dask
(docs/scale.md, ``benchmarks/backfill.py``).

Redis (Debian's ``redis-server``) and PostgreSQL (the instance: several worker processes write
runs at once) are the session's servers on 127.0.0.1; two Celery worker processes are started
by :func:`assets.distributed.celery_workers` and stopped by PID. Each partition's run must have
succeeded, its records be in the tables, and the run be tagged with the PID and name of the
worker process that executed it (never the test's own process)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from assets.distributed import WORKER_PID_TAG, WORKER_TAG, backfill, celery_workers
from pipelines.settings import get_settings
from pipelines.simulate import simulate
from pipelines.spec import load_spec
from pipelines.tables import read_table, table_uri
from scoreloop.demo.state import ensure_dagster_home
from scoreloop.scale_stack import RedisServer

BATCHES = [f"2015-{m:02d}" for m in range(1, 5)]


@pytest.mark.slow
def test_a_backfill_runs_its_partitions_on_celery_workers(
    state: Path, pg_url: str, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORELOOP_DAGSTER_PG_URL", pg_url)
    settings = get_settings()
    spec = load_spec(settings.spec_path)
    simulate(
        spec,
        settings.spec_path.parent / "employment_MA.parquet",
        settings.landing,
        limit=len(BATCHES),
        label_lag=0,
    )
    home = ensure_dagster_home(settings.dagster, settings.dagster_pg_url)
    done: list[str] = []

    with celery_workers(redis_server.url, 2) as pids:
        runs = backfill(
            home,
            BATCHES,
            score=False,
            labels=True,
            executor="celery",
            broker=redis_server.url,
            on_done=lambda run: done.append(run.batch_id),
        )

    assert [r.batch_id for r in runs] == BATCHES
    assert all(r.success for r in runs), [r.errors for r in runs]
    assert sorted(done) == BATCHES
    assert all("validated_batch" in r.materialized for r in runs), [r.materialized for r in runs]
    validated = read_table(table_uri(settings.tables, "validated"))
    assert sorted(validated["batch_id"].unique().to_list()) == BATCHES
    with dg.DagsterInstance.from_config(str(home)) as instance:
        tags = [instance.get_run_by_id(r.run_id).tags for r in runs]  # type: ignore[union-attr]
    ran_in = {int(t[WORKER_PID_TAG]) for t in tags}
    assert os.getpid() not in ran_in
    assert ran_in <= set(pids), (ran_in, pids)
    assert all(t[WORKER_TAG].startswith("scoreloop-") for t in tags), tags
    for pid in pids:  # the workers were stopped by PID
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
