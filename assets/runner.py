"""Run the named jobs in-process on a persistent instance (what the demo and tests use).

Each run is a run of one of the jobs of ``assets.definitions`` (``ingest``, ``retraining``,
``scoring``, ``monitoring``), so the UI lists it under that job, exactly like a run a sensor
launched: ingestion (one ``ingest`` run per batch partition, selecting what landed), retraining
(the ``retraining`` job; a refused challenger is a successful run whose ``champion`` is not
materialised), the serving snapshot (``scoring`` with ``serving_snapshot`` selected, which
rescores the population first), the rescore-on-promotion sensor evaluated once, and the
monitoring assets per batch (``monitoring``). Every run lands in the instance the UI opens
(``make ui``). The demo (``scoreloop.demo``) drives the loop through these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg

from assets import ingestion, monitoring, scoring, training
from assets.partitions import BATCHES
from assets.resources import RESOURCES

INGEST_JOB = ingestion.INGEST_JOB
RETRAINING_JOB = training.retraining_job.name
SCORING_JOB = scoring.SCORING_JOB
MONITORING_JOB = monitoring.MONITORING_JOB

RECORD_ASSETS: list[dg.AssetsDefinition | dg.AssetChecksDefinition] = [
    ingestion.raw_batch,
    ingestion.validated_batch,
    ingestion.reject_rate_within_limit,
]
LABEL_ASSETS: list[dg.AssetsDefinition | dg.AssetChecksDefinition] = [
    ingestion.labels,
    ingestion.labels_reject_rate_within_limit,
]


@dataclass
class BatchRun:
    """The outcome of one partition's run."""

    batch_id: str
    run_id: str
    success: bool
    materialized: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Metadata of every asset check evaluated in the run, by check name (values as plain text).
    checks: dict[str, dict[str, str]] = field(default_factory=dict)


def run_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    """The failure description (or error message) of each failed step of a run."""
    messages = []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        user = data.user_failure_data
        if user is not None and user.description:
            messages.append(user.description)
        elif data.error is not None:
            messages.append(data.error.message.strip())
    return messages


def summarize(batch_id: str, result: dg.ExecuteInProcessResult) -> BatchRun:
    return BatchRun(
        batch_id=batch_id,
        run_id=result.run_id,
        success=result.success,
        materialized=sorted(
            {
                e.asset_key.to_user_string()
                for e in result.get_asset_materialization_events()
                if e.asset_key
            }
        ),
        failed_checks=[e.check_name for e in result.get_asset_check_evaluations() if not e.passed],
        errors=run_errors(result),
        checks={
            e.check_name: {k: _text(v) for k, v in e.metadata.items()}
            for e in result.get_asset_check_evaluations()
        },
    )


def _materialize(
    instance: dg.DagsterInstance,
    selection: Sequence[Any],
    *,
    partition_key: str | None = None,
    resources: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> BatchRun:
    """One in-process run on the persistent instance, quiet, never raising: its summary."""
    result = dg.materialize(
        selection,
        instance=instance,
        partition_key=partition_key,
        resources=resources or RESOURCES,
        raise_on_error=False,
        tags={**DEMO_TAGS, **(tags or {})},
        run_config=QUIET,
    )
    return summarize(partition_key or "", result)


@cache
def job_def(name: str) -> dg.JobDefinition:
    """The named job of ``assets.definitions`` (resources bound), resolved once per process."""
    from assets.definitions import defs

    return defs.resolve_job_def(name)


def run_job(
    instance: dg.DagsterInstance,
    name: str,
    selection: Sequence[dg.AssetKey] | None = None,
    *,
    partition_key: str | None = None,
    resource_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> BatchRun:
    """One in-process run of the job ``name`` (``selection``: a subset of its assets, with their
    checks) on the persistent instance, quiet, never raising: its summary. ``resource_config``
    sets fields of the ``scoreloop`` resource for this run (run config, shown in the UI)."""
    run_config: dict[str, Any] = dict(QUIET)
    if resource_config:
        run_config["resources"] = {"scoreloop": {"config": resource_config}}
    result = job_def(name).execute_in_process(
        instance=instance,
        partition_key=partition_key,
        asset_selection=list(selection) if selection is not None else None,
        raise_on_error=False,
        tags={**DEMO_TAGS, **(tags or {})},
        run_config=run_config,
    )
    return summarize(partition_key or "", result)


def _text(value: dg.MetadataValue) -> str:
    return str(getattr(value, "value", value))


#: Console logger at CRITICAL: the event log in the instance keeps everything for the UI, the
#: console stays quiet (the demo prints its own summary).
QUIET: dict[str, object] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
DEMO_TAGS = {"scoreloop/source": "demo"}


def materialize_batch(
    instance: dg.DagsterInstance, batch_id: str, *, records: bool = True, labels: bool = False
) -> BatchRun:
    """Materialise one batch partition: records assets and/or its labels, in one ``ingest`` run."""
    selection = [
        *(ingestion.RECORDS_SELECTION if records else []),
        *(ingestion.LABELS_SELECTION if labels else []),
    ]
    if batch_id not in instance.get_dynamic_partitions(BATCHES):
        instance.add_dynamic_partitions(BATCHES, [batch_id])
    return run_job(instance, INGEST_JOB, selection, partition_key=batch_id)


def ingest_batches(
    dagster_home: Path,
    batches: Iterable[tuple[str, bool, bool]],
    on_done: Callable[[BatchRun], None] | None = None,
) -> Sequence[BatchRun]:
    """Materialise ``(batch_id, records?, labels?)`` partitions on the ``dagster_home`` instance."""
    runs = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for batch_id, records, labels in batches:
            run = materialize_batch(instance, batch_id, records=records, labels=labels)
            runs.append(run)
            if on_done is not None:
                on_done(run)
    return runs


RETRAINING_ASSETS: list[dg.AssetsDefinition] = [
    training.training_set,
    training.challenger,
    training.evaluation,
    training.champion,
]
MONITORING_ASSETS: list[dg.AssetsDefinition] = [monitoring.drift, monitoring.performance]


def run_retraining(
    dagster_home: Path, *, params_path: Path | None = None, tags: dict[str, str] | None = None
) -> BatchRun:
    """One run of the ``retraining`` job: training_set -> challenger -> evaluation (+ its
    ``gate`` check) -> champion. A refused challenger is a successful run: the ``gate`` check
    fails with WARN severity and ``champion`` is not materialised
    (``"champion" not in run.materialized``).

    ``params_path`` overrides ``settings.params_path`` for this run only (the demo's first
    champion uses a copy of params.yaml with ``split.until`` set), as the run's resource config.
    """
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return run_job(
            instance,
            RETRAINING_JOB,
            resource_config={"params_path": str(params_path)} if params_path else None,
            tags=tags,
        )


def publish_snapshot(dagster_home: Path, *, tags: dict[str, str] | None = None) -> BatchRun:
    """One ``scoring`` run of ``serving_snapshot`` (what ``champion_rescore_sensor`` requests):
    every accepted batch lacking the champion's scores is scored (reported as ``scores``
    partition materialisations), then one serving snapshot is published."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return run_job(instance, SCORING_JOB, [scoring.SERVING_SNAPSHOT], tags=tags)


def rescore_request(dagster_home: Path, cursor: str | None) -> dg.RunRequest | None:
    """Evaluate ``champion_rescore_sensor`` once with ``cursor`` (the champion it last saw):
    the run it requests when the champion changed, else None."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=RESOURCES)
        outcome = scoring.champion_rescore_sensor(context)
    if isinstance(outcome, dg.SensorResult) and outcome.run_requests:
        return outcome.run_requests[0]
    return None


def monitor_batches(
    dagster_home: Path,
    batches: Iterable[str],
    on_done: Callable[[BatchRun], None] | None = None,
) -> Sequence[BatchRun]:
    """Materialise ``drift`` and ``performance`` (with their warning checks) per batch, one
    ``monitoring`` run each."""
    keys = [key for asset in MONITORING_ASSETS for key in asset.keys]
    runs = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for batch_id in batches:
            run = run_job(instance, MONITORING_JOB, keys, partition_key=batch_id)
            runs.append(run)
            if on_done is not None:
                on_done(run)
    return runs


def score_batch(
    dagster_home: Path, batch_id: str, *, tags: dict[str, str] | None = None
) -> BatchRun:
    """One ``scoring`` run of the ``scores`` partition of ``batch_id`` with the champion (what the
    automation sensor launches for a newly validated batch)."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return run_job(instance, SCORING_JOB, [scoring.SCORES], partition_key=batch_id, tags=tags)


@dataclass(frozen=True)
class SensorTick:
    """One evaluation of a sensor: the runs it requested (and ran), its skip reason, its cursor."""

    sensor: str
    requests: list[dg.RunRequest]
    skip_reason: str | None
    cursor: str | None
    runs: list[BatchRun] = field(default_factory=list)


def tick_sensor(dagster_home: Path, name: str, cursor: str | None) -> SensorTick:
    """Evaluate the sensor ``name`` of ``assets.definitions`` once on the instance, as the daemon
    does (``SensorDefinition.evaluate_tick`` with the stored cursor), and run every run it
    requests as a run of its job, tagged like a daemon-launched run (``dagster/sensor_name``,
    ``dagster/run_key``) plus the request's own tags."""
    from assets.definitions import defs

    sensor = defs.resolve_sensor_def(name)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        context = dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            sensor_name=name,
            resources=RESOURCES,
            definitions=defs,
        )
        data = sensor.evaluate_tick(context)
        requests = list(data.run_requests or [])
        runs = []
        for request in requests:
            job = request.job_name or sensor.job_name
            assert job is not None, f"sensor {name} requested a run without a job"
            tags = {**request.tags, "dagster/sensor_name": name}
            if request.run_key:
                tags["dagster/run_key"] = request.run_key
            runs.append(
                run_job(
                    instance,
                    job,
                    request.asset_selection,
                    partition_key=request.partition_key,
                    tags=tags,
                )
            )
    return SensorTick(
        sensor=name,
        requests=requests,
        skip_reason=data.skip_message,
        cursor=data.cursor if data.cursor is not None else cursor,
        runs=runs,
    )
