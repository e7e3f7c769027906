"""Alerts and the retraining trigger. Each sensor asks a pure ``pipelines`` function what to do
and only delivers it:

- ``monitoring_failure_sensor``: every failed run of the instance, once each, including runs
  that failed before the sensor first ran (Dagster's own ``run_failure_sensor`` starts from its
  first tick and would never see them); ``pipelines.alerts.pending_failed_runs`` keeps the
  cursor (newest failure alerted), ``pipelines.alerts.failed_run_alert`` names the run's job,
  partition and each failed step's error. A failed ``ingest`` run whose failure the ingest log
  records (an unreadable file) is left to ``ingest_alert_sensor`` (one alert per failure);
- ``ingest_alert_sensor``: ``pipelines.alerts.pending_ingest_alerts`` finds the refused and
  failed batches in the ingest logs since its cursor; the same file failing the same way again
  (a re-run) is not alerted twice;
- ``asset_check_alert_sensor``: failed asset check evaluations recorded in the instance (a
  refused batch's ERROR ``reject_rate_within_limit`` on its partition, which does not fail the
  run) become alerts via ``pipelines.alerts.pending_check_alerts``; cursor: the highest
  evaluation id alerted, so each evaluation is alerted once, including those recorded before
  the sensor first ran;
- ``staleness_sensor`` (on by default): ``pipelines.staleness.staleness_trigger`` says whether
  the champion is stale and a ``retraining`` run is due (one per drift episode: enough labelled
  batches since the champion's training, a cooldown after each request; JSON cursor), with its
  tags. Every run it requests goes through the gate like any other.
"""

from datetime import UTC

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from assets.ingestion import INGEST_JOB
from assets.monitoring.delivery import deliver
from assets.resources import ScoreloopResource
from pipelines.alerts import (
    Alert,
    FailedCheck,
    StepFailure,
    failed_run_alert,
    failed_runs_after,
    ingest_failure_logged,
    pending_check_alerts,
    pending_failed_runs,
    pending_ingest_alerts,
)
from pipelines.staleness import NoRetraining, staleness_trigger

RETRAINING_JOB = "retraining"
#: Evaluations fetched per request when paging back through a check's history.
CHECK_PAGE = 100
#: Failed runs read per tick (oldest first; the rest on the next tick).
RUN_PAGE = 100


def _failed_run_alert(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Alert:
    """The alert of one failed run, from its step failures and run failure events."""
    failures = []
    for record in instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
    ).records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        data = event.step_failure_data
        user = data.user_failure_data
        failures.append(
            StepFailure(
                step=event.step_key or "",
                description=user.description if user is not None else None,
                error=data.error.message if data.error is not None else None,
            )
        )
    run_failure = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    event = run_failure[-1].event_log_entry.dagster_event if run_failure else None
    return failed_run_alert(
        run.job_name,
        run.run_id,
        run.tags.get("dagster/partition"),
        failures,
        event.message if event is not None else None,
    )


def _alerted_as_batch_failure(table_root: str, record: dg.RunRecord) -> bool:
    """A failed ``ingest`` run whose failure the ingest log records (an unreadable file): the
    ingest-alert sensor alerts it as ``batch_failed``, with the file and the reason."""
    run = record.dagster_run
    if run.job_name != INGEST_JOB:
        return False
    created = record.create_timestamp
    created = created if created.tzinfo else created.replace(tzinfo=UTC)
    return ingest_failure_logged(table_root, run.tags.get("dagster/partition"), created)


@dg.sensor(
    name="monitoring_failure_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alert a person (alert log + webhook) about every failed run, once each, "
    "including runs that failed before the sensor first ran.",
)
def monitoring_failure_sensor(
    context: dg.SensorEvaluationContext, scoreloop: ScoreloopResource
) -> dg.SensorResult:
    """Send one alert per failed run not alerted yet, naming its job, partition and error."""
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE], updated_after=failed_runs_after(context.cursor)
        ),
        order_by="update_timestamp",
        ascending=True,
        limit=RUN_PAGE,
    )
    settings = scoreloop.settings()
    by_id = {r.dagster_run.run_id: r for r in records}
    pending = pending_failed_runs(
        [(r.dagster_run.run_id, r.update_timestamp) for r in records], context.cursor
    )
    alerts = [
        _failed_run_alert(context.instance, by_id[run_id].dagster_run)
        for run_id in pending.run_ids
        if not _alerted_as_batch_failure(settings.tables, by_id[run_id])
    ]
    deliver(alerts, settings, context.log, "run failure alert")
    if not alerts:
        return dg.SensorResult(skip_reason="no new failed run", cursor=pending.cursor or None)
    return dg.SensorResult(cursor=pending.cursor)


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alert on refused and failed batches (records and labels) in the ingest logs.",
)
def ingest_alert_sensor(
    context: dg.SensorEvaluationContext, scoreloop: ScoreloopResource
) -> dg.SensorResult | dg.SkipReason:
    """New refused/failed entries of the ingest logs become alerts (cursor: last seen time)."""
    settings = scoreloop.settings()
    found = pending_ingest_alerts(settings.tables, context.cursor)
    deliver(found.alerts, settings, context.log, "alert")
    if not found.alerts:
        return dg.SensorResult(skip_reason="no new refused or failed batch", cursor=found.cursor)
    return dg.SensorResult(cursor=found.cursor)


def _failed_check(record: AssetCheckExecutionRecord) -> FailedCheck | None:
    entry = record.event
    evaluation = entry.asset_check_evaluation if entry is not None else None
    if evaluation is None:
        return None
    return FailedCheck(
        id=record.id,
        asset=record.key.asset_key.to_user_string(),
        check=record.key.name,
        severity=evaluation.severity.value,
        partition=record.partition or evaluation.partition,
        run_id=record.run_id,
        description=evaluation.description,
    )


def failed_checks_since(
    instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey], after: int
) -> list[FailedCheck]:
    """Failed evaluations (id > ``after``) of each check, paging back from the newest through the
    instance's asset check execution history (the same storage the UI's check history reads)."""
    found: list[FailedCheck] = []
    storage = instance.event_log_storage
    for key in check_keys:
        before: int | None = None
        while True:
            page = storage.get_asset_check_execution_history(
                key,
                limit=CHECK_PAGE,
                cursor=before,
                status={AssetCheckExecutionRecordStatus.FAILED},
            )
            new = [r for r in page if r.id > after]
            found.extend(f for r in new if (f := _failed_check(r)) is not None)
            if len(page) < CHECK_PAGE or len(new) < len(page):
                break
            before = page[-1].id
    return found


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alert on failed asset checks (ERROR: like a failed run; WARN gate: refused).",
)
def asset_check_alert_sensor(
    context: dg.SensorEvaluationContext, scoreloop: ScoreloopResource
) -> dg.SensorResult:
    """Each failed check evaluation in the instance after the cursor becomes one alert."""
    repository = context.repository_def
    # every check of the graph, including check specs of multi-assets (the ``gate``)
    keys = sorted(repository.asset_graph.asset_check_keys, key=str) if repository else []
    after = int(context.cursor) if context.cursor else 0
    alerts, cursor = pending_check_alerts(
        failed_checks_since(context.instance, keys, after), context.cursor
    )
    deliver(alerts, scoreloop.settings(), context.log, "check alert")
    if not alerts:
        return dg.SensorResult(skip_reason="no new failed asset check", cursor=cursor)
    return dg.SensorResult(cursor=cursor)


@dg.sensor(
    job_name=RETRAINING_JOB,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When the champion is stale (drift, performance drop, age), request retraining: "
    "once enough labelled batches of the new data exist, then not again within the cooldown.",
)
def staleness_sensor(
    context: dg.SensorEvaluationContext, scoreloop: ScoreloopResource
) -> dg.SensorResult | dg.SkipReason:
    """Request one ``retraining`` run per drift episode of a stale champion."""
    settings = scoreloop.settings()
    trigger = staleness_trigger(settings, context.cursor)
    if isinstance(trigger, NoRetraining):
        return dg.SkipReason(trigger.reason)
    deliver([trigger.alert], settings, context.log, "staleness alert")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=trigger.run_key, job_name=RETRAINING_JOB, tags=trigger.tags)
        ],
        cursor=trigger.cursor,
    )
