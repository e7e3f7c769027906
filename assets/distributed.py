"""Partitions on Dask workers: each batch partition's run executes in a worker process.

A backfill is one Dagster run per partition (records assets, plus ``scores`` when a champion
exists). :func:`backfill` hands those runs to a Dask cluster: an existing scheduler
(``SCORELOOP_DASK_SCHEDULER=tcp://host:8786``, workers on other machines) or a local cluster of
``workers`` processes. Every worker is a separate process limited to one thread (Dask's
``nthreads=1`` and the native pools of CatBoost/polars/Arrow pinned to its share), and every run
is recorded in the shared instance (PostgreSQL at scale: SQLite cannot take concurrent writers
from several processes), so the UI shows them as usual. Why Dask rather than Celery + Redis:
the figures in docs/scale.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import dagster as dg

from assets import scoring
from assets.partitions import BATCHES
from assets.runner import LABEL_ASSETS, RECORD_ASSETS, BatchRun, _materialize

#: Environment of a local worker: its native thread pools limited to its one core.
WORKER_THREADS_ENV = {
    "OMP_NUM_THREADS": "1",
    "POLARS_MAX_THREADS": "1",
    "ARROW_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}


def run_partition(
    dagster_home: str, batch_id: str, score: bool, labels: bool, records: bool = True
) -> BatchRun:
    """One partition's run on the instance under ``dagster_home`` (runs inside a worker)."""
    selection = [
        *(RECORD_ASSETS if records else []),
        *(LABEL_ASSETS if labels else []),
        *([scoring.scores] if score else []),
    ]
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        return _materialize(instance, selection, partition_key=batch_id)


def backfill(
    dagster_home: Path,
    batch_ids: Sequence[str],
    *,
    score: bool = True,
    labels: bool | Collection[str] = False,
    records: bool = True,
    workers: int = 2,
    scheduler: str | None = None,
    on_done: Callable[[BatchRun], None] | None = None,
) -> list[BatchRun]:
    """Materialise ``batch_ids`` as parallel partition runs on Dask workers; their summaries
    (in ``batch_ids`` order; ``on_done`` is called with each as it finishes).

    Each run holds the batch's record assets (unless not ``records``: the records are already
    ingested), its labels when ``labels`` (True: every batch; a collection: those batches),
    and its ``scores`` when ``score`` (skipped inside the run while there is no champion).

    ``scheduler`` (default ``SCORELOOP_DASK_SCHEDULER``) names an existing cluster; without
    one, a local cluster of ``workers`` one-thread processes is started and stopped here.
    """
    from dask.distributed import Client, LocalCluster, as_completed

    with_labels = [labels if isinstance(labels, bool) else b in labels for b in batch_ids]

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        known = set(instance.get_dynamic_partitions(BATCHES))
        new = [b for b in batch_ids if b not in known]
        if new:  # registered once, before the workers race to add them
            instance.add_dynamic_partitions(BATCHES, new)
    address = scheduler or os.environ.get("SCORELOOP_DASK_SCHEDULER")
    cluster = None
    if address is None:
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: several clusters may share a host
            env={
                **WORKER_THREADS_ENV,
                **{
                    k: v
                    for k, v in os.environ.items()
                    if k.startswith(("SCORELOOP_", "AWS_", "DAGSTER_"))
                },
            },
        )
        address = cluster.scheduler_address
    try:
        with Client(address) as client:  # type: ignore[no-untyped-call]
            futures = client.map(
                run_partition,
                [str(dagster_home)] * len(batch_ids),
                list(batch_ids),
                [score] * len(batch_ids),
                with_labels,
                [records] * len(batch_ids),
                pure=False,
            )
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                if on_done is not None:
                    on_done(future.result())
            runs: list[BatchRun] = client.gather(futures)
    finally:
        if cluster is not None:
            cluster.close()
    return runs


__all__ = ["WORKER_THREADS_ENV", "backfill", "run_partition"]
