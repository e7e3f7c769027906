"""Run the ingestion assets in-process on a persistent instance (what the demo and tests use).

``pipelines.demo`` loads this module lazily, so ``pipelines/`` itself never imports Dagster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from assets import ingestion
from assets.partitions import BATCHES
from assets.resources import RESOURCES

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
    )


def materialize_batch(
    instance: dg.DagsterInstance, batch_id: str, *, records: bool = True, labels: bool = False
) -> BatchRun:
    """Materialise one batch partition: records assets and/or its labels, in one run."""
    selection = [*(RECORD_ASSETS if records else []), *(LABEL_ASSETS if labels else [])]
    if batch_id not in instance.get_dynamic_partitions(BATCHES):
        instance.add_dynamic_partitions(BATCHES, [batch_id])
    result = dg.materialize(
        selection,
        instance=instance,
        partition_key=batch_id,
        resources=RESOURCES,
        raise_on_error=False,
        tags={"scoreloop/source": "demo"},
        # The event log keeps everything for the UI; the console stays quiet (the demo prints
        # its own summary).
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )
    return summarize(batch_id, result)


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
