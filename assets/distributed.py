"""Partitions on distributed workers: each batch partition's run executes in a worker process.

A backfill is one Dagster run per partition (records assets, plus ``scores`` when a champion
exists). :func:`backfill` hands those runs to one of two executors:

- ``dask`` (the default): an existing scheduler (``SCORELOOP_DASK_SCHEDULER=tcp://host:8786``,
  workers on other machines) or a local cluster of ``workers`` processes.
- ``celery``: one Celery task per partition run on a Redis broker (``broker`` or
  ``SCORELOOP_CELERY_BROKER=redis://host:6379/0``), executed by the Celery workers attached to
  it: workers on other machines, or local ones from :func:`celery_workers`.

Every worker is a separate process limited to one thread (Dask's ``nthreads=1`` / Celery's solo
pool, and the native pools of CatBoost/polars/Arrow pinned to its share). Every run is recorded
in the shared instance (PostgreSQL at scale: SQLite cannot take concurrent writers from several
processes), so the UI shows them as usual, tagged with the worker that ran it
(``scoreloop/worker``, ``scoreloop/worker_pid``). Why Dask is the default: the figures in
docs/scale.md.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg

from assets import scoring
from assets.partitions import BATCHES
from assets.runner import LABEL_ASSETS, RECORD_ASSETS, BatchRun, _materialize

if TYPE_CHECKING:
    from celery import Celery

Executor = Literal["dask", "celery"]
EXECUTORS: tuple[Executor, ...] = ("dask", "celery")
#: The Celery task (and the queue it is routed to: dagster-celery's ``dagster`` queue).
CELERY_TASK = "scoreloop.run_partition"
CELERY_QUEUE = "dagster"
#: Run tags naming the worker that executed a partition's run (shown in the UI's run list).
WORKER_TAG = "scoreloop/worker"
WORKER_PID_TAG = "scoreloop/worker_pid"

#: Environment of a local worker: its native thread pools limited to its one core.
WORKER_THREADS_ENV = {
    "OMP_NUM_THREADS": "1",
    "POLARS_MAX_THREADS": "1",
    "ARROW_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}


def _worker_env() -> dict[str, str]:
    """What a local worker process inherits: scoreloop's configuration, its thread limits."""
    return {
        **WORKER_THREADS_ENV,
        **{k: v for k, v in os.environ.items() if k.startswith(("SCORELOOP_", "AWS_", "DAGSTER_"))},
    }


def run_partition(
    dagster_home: str,
    batch_id: str,
    score: bool,
    labels: bool,
    records: bool = True,
    worker: str | None = None,
) -> BatchRun:
    """One partition's run on the instance under ``dagster_home`` (runs inside a worker),
    tagged with ``worker`` (the worker's name) and this process's PID."""
    selection = [
        *(RECORD_ASSETS if records else []),
        *(LABEL_ASSETS if labels else []),
        *([scoring.scores] if score else []),
    ]
    tags = {WORKER_TAG: worker or socket.gethostname(), WORKER_PID_TAG: str(os.getpid())}
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        return _materialize(instance, selection, partition_key=batch_id, tags=tags)


def _dask_partition(
    dagster_home: str, batch_id: str, score: bool, labels: bool, records: bool
) -> BatchRun:
    from dask.distributed import get_worker

    worker = get_worker()
    return run_partition(dagster_home, batch_id, score, labels, records, worker=worker.address)


def backfill(
    dagster_home: Path,
    batch_ids: Sequence[str],
    *,
    score: bool = True,
    labels: bool | Collection[str] = False,
    records: bool = True,
    workers: int = 2,
    scheduler: str | None = None,
    executor: Executor | None = None,
    broker: str | None = None,
    on_done: Callable[[BatchRun], None] | None = None,
) -> list[BatchRun]:
    """Materialise ``batch_ids`` as parallel partition runs on distributed workers; their
    summaries (in ``batch_ids`` order; ``on_done`` is called with each as it finishes).

    Each run holds the batch's record assets (unless not ``records``: the records are already
    ingested), its labels when ``labels`` (True: every batch; a collection: those batches),
    and its ``scores`` when ``score`` (skipped inside the run while there is no champion).

    ``scheduler`` (default ``SCORELOOP_DASK_SCHEDULER``) names an existing cluster; without
    one, a local cluster of ``workers`` one-thread processes is started and stopped here.

    ``executor`` (default ``SCORELOOP_EXECUTOR``, else ``dask``) picks the engine; ``celery``
    sends one task per partition to ``broker`` (default ``SCORELOOP_CELERY_BROKER``) and waits
    for the workers attached to it (``workers`` and ``scheduler`` are then not used).
    """
    chosen = executor or os.environ.get("SCORELOOP_EXECUTOR") or "dask"
    if chosen not in EXECUTORS:
        raise ValueError(f"unknown executor {chosen!r}: one of {', '.join(EXECUTORS)}")
    with_labels = [labels if isinstance(labels, bool) else b in labels for b in batch_ids]

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        known = set(instance.get_dynamic_partitions(BATCHES))
        new = [b for b in batch_ids if b not in known]
        if new:  # registered once, before the workers race to add them
            instance.add_dynamic_partitions(BATCHES, new)
    pairs = zip(batch_ids, with_labels, strict=True)
    args = [(str(dagster_home), b, score, lab, records) for b, lab in pairs]
    if not args:
        return []
    if chosen == "celery":
        url = broker or os.environ.get("SCORELOOP_CELERY_BROKER")
        if not url:
            raise ValueError("the celery executor needs a broker (SCORELOOP_CELERY_BROKER)")
        return _celery_backfill(url, args, on_done)
    return _dask_backfill(args, workers, scheduler, on_done)


def _dask_backfill(
    args: list[tuple[str, str, bool, bool, bool]],
    workers: int,
    scheduler: str | None,
    on_done: Callable[[BatchRun], None] | None,
) -> list[BatchRun]:
    from dask.distributed import Client, LocalCluster, as_completed

    address = scheduler or os.environ.get("SCORELOOP_DASK_SCHEDULER")
    cluster = None
    if address is None:
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: several clusters may share a host
            env=_worker_env(),
        )
        address = cluster.scheduler_address
    try:
        with Client(address) as client:  # type: ignore[no-untyped-call]
            futures = client.map(_dask_partition, *zip(*args, strict=True), pure=False)
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                if on_done is not None:
                    on_done(future.result())
            runs: list[BatchRun] = client.gather(futures)
    finally:
        if cluster is not None:
            cluster.close()
    return runs


def celery_app(broker: str) -> Celery:
    """The Celery app of the partition runs on ``broker`` (Redis: broker and result backend),
    built with dagster-celery's factory (its ``dagster`` queue) plus scoreloop's one task.

    Workers take one task at a time (prefetch 1) and acknowledge it when it is done, so a
    partition whose worker dies is redelivered to another."""
    from dagster_celery.make_app import make_app_with_task_routes

    app = make_app_with_task_routes(
        task_routes={CELERY_TASK: {"queue": CELERY_QUEUE}},
        app_args={"broker": broker, "backend": broker},
    )
    app.conf.update(
        task_default_queue=CELERY_QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        result_expires=3600,
    )

    @app.task(bind=True, name=CELERY_TASK)  # type: ignore[untyped-decorator]
    def _run(
        self: Any, dagster_home: str, batch_id: str, score: bool, labels: bool, records: bool
    ) -> dict[str, Any]:
        run = run_partition(
            dagster_home, batch_id, score, labels, records, worker=self.request.hostname
        )
        return dataclasses.asdict(run)

    return app


def _celery_backfill(
    broker: str,
    args: list[tuple[str, str, bool, bool, bool]],
    on_done: Callable[[BatchRun], None] | None,
) -> list[BatchRun]:
    app = celery_app(broker)
    try:
        results = [app.send_task(CELERY_TASK, args=list(a), queue=CELERY_QUEUE) for a in args]
        runs: dict[str, BatchRun] = {}
        while len(runs) < len(results):
            for result in results:
                if result.id not in runs and result.ready():
                    runs[result.id] = BatchRun(**result.get(propagate=True))
                    if on_done is not None:
                        on_done(runs[result.id])
            time.sleep(0.05)
        return [runs[r.id] for r in results]
    finally:
        app.close()


@contextmanager
def celery_workers(broker: str, workers: int = 2, *, timeout: float = 120) -> Iterator[list[int]]:
    """``workers`` local Celery worker processes on ``broker``, each a solo pool (one task at a
    time in the worker process itself) with its native thread pools limited to one core; yields
    their PIDs once every worker answers a ping, and stops them (by PID) after the block."""
    tag = uuid.uuid4().hex[:8]
    names = [f"scoreloop-{tag}-{i}@{socket.gethostname()}" for i in range(workers)]
    env = {**os.environ, **_worker_env()}
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "assets.celery_worker", "worker"),
                *("--pool=solo", "--concurrency=1", "-Q", CELERY_QUEUE, "-n", name),
                *("--without-gossip", "--without-mingle", "--loglevel=WARNING"),
            ],
            env={**env, "SCORELOOP_CELERY_BROKER": broker},
            stdout=subprocess.DEVNULL,
        )
        for name in names
    ]
    app = celery_app(broker)
    try:
        deadline = time.monotonic() + timeout
        while True:
            exited = [p.pid for p in procs if p.poll() is not None]
            if exited:
                raise RuntimeError(f"celery worker(s) {exited} exited while starting")
            replies = app.control.ping(destination=names, timeout=0.5)
            if {name for reply in replies for name in reply} >= set(names):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"celery workers did not answer within {timeout:.0f} s")
        yield [p.pid for p in procs]
    finally:
        app.close()
        for proc in procs:  # warm shutdown: a worker finishes its task, then exits
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


__all__ = [
    "CELERY_TASK",
    "EXECUTORS",
    "WORKER_PID_TAG",
    "WORKER_TAG",
    "WORKER_THREADS_ENV",
    "backfill",
    "celery_app",
    "celery_workers",
    "run_partition",
]
