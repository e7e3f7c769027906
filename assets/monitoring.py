"""Monitoring: per-batch ``drift`` and ``performance``, alerts, and the staleness trigger.

Each body calls one ``pipelines`` function:

- ``drift`` (one partition per batch) runs ``pipelines.drift.drift_batch`` once the batch is
  scored: PSI and unseen-category share per feature, and score PSI, vs the champion's training
  reference. A non-blocking check ``no_feature_drift`` warns when any metric is over threshold;
  an alert names the drifted features.
- ``performance`` (one partition per batch) runs ``pipelines.performance.performance_batch`` once
  the batch's labels have landed: realised ROC AUC, log loss, Brier, accuracy. A non-blocking
  check ``auc_within_tolerance`` warns when AUC falls below the champion's reference AUC minus
  ``monitoring.auc_tolerance``; an alert says so.
- ``monitoring_failure_sensor`` (run failure sensor) alerts a person about every failed run,
  naming the job, the partition and the error; ``ingest_alert_sensor`` alerts on refused and
  failed batches found in the ingest logs.
- ``staleness_sensor`` asks ``pipelines.monitoring.staleness`` whether the champion is stale and,
  when it is, requests a run of the ``retraining`` job with the reasons in its tags and alerts.
"""

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import polars as pl

from assets.metadata import png_markdown
from assets.partitions import batch_partitions
from assets.resources import RESOURCES, ScoreloopResource
from pipelines.alerts import (
    Alert,
    alert_sinks,
    drift_alert,
    new_ingest_alerts,
    performance_alert,
    run_failure_alert,
    send_alert,
    stale_alert,
)
from pipelines.drift import drift_batch, plot_drift_history, psi_markdown, read_drift
from pipelines.ingest import accepted_batches
from pipelines.model_bundle import ModelLoadError
from pipelines.monitoring import (
    Champion,
    MonitoringError,
    MonitoringParams,
    current_champion,
    monitoring_params,
    reference_auc,
)
from pipelines.performance import performance_batch, plot_auc_history, read_performance
from pipelines.registry import RegistryError
from pipelines.settings import Settings
from pipelines.staleness import staleness

GROUP = "monitoring"
DRIFT = dg.AssetKey("drift")
PERFORMANCE = dg.AssetKey("performance")
VALIDATED_BATCH = dg.AssetKey("validated_batch")
SCORES = dg.AssetKey("scores")
LABELS = dg.AssetKey("labels")
RETRAINING_JOB = "retraining"
TRIGGER_TAG = "scoreloop/trigger"
REASONS_TAG = "scoreloop/stale_reasons"
#: Dagster tag values are kept short; the full reasons are in the alert and the sensor log.
MAX_TAG = 1000

_Report = TypeVar("_Report")
_Result = dg.MaterializeResult[None] | dg.AssetCheckResult


def plots_dir(settings: Settings) -> Path:
    return settings.state_root / "monitoring" / "plots"


def _champion(settings: Settings) -> Champion | None:
    try:
        return current_champion(settings)
    except (RegistryError, ModelLoadError) as exc:
        raise dg.Failure(description=f"cannot load the champion: {exc}") from exc


def _deliver(alert: Alert | None, settings: Settings, log: logging.Logger, what: str) -> None:
    """Send ``alert`` (if any) to every sink; a sink that fails is logged and the run goes on."""
    if alert is None:
        return
    for problem in send_alert(alert, alert_sinks(settings)):
        log.error(f"{what} not delivered: {problem}")


def _not_measured(check: str, asset: dg.AssetKey, why: str) -> dg.AssetCheckResult:
    """The check's result when nothing was measured (the asset is not materialised)."""
    return dg.AssetCheckResult(
        check_name=check,
        asset_key=asset,
        passed=True,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"not measured: {why}",
        metadata={"measured": False},
    )


def _batch_monitor(
    key: dg.AssetKey, deps: list[dg.AssetKey], check: str, check_description: str
) -> Callable[..., dg.AssetsDefinition]:
    """The decorator of a per-batch monitoring asset with its one non-blocking check."""
    return dg.asset(
        key=key,
        deps=deps,
        partitions_def=batch_partitions,
        group_name=GROUP,
        kinds={"delta"},
        output_required=False,
        automation_condition=dg.AutomationCondition.eager(),
        check_specs=[
            dg.AssetCheckSpec(check, asset=key, blocking=False, description=check_description)
        ],
    )


def _with_champion(
    context: dg.AssetExecutionContext,
    scoreloop: ScoreloopResource,
    check: str,
    key: dg.AssetKey,
    body: Callable[
        [dg.AssetExecutionContext, Settings, str, Champion, MonitoringParams], Iterator[_Result]
    ],
) -> Iterator[_Result]:
    """Run ``body`` for the partition's batch against the champion; without one, not measured."""
    settings = scoreloop.settings()
    batch_id = context.partition_key
    champion = _champion(settings)
    if champion is None:
        context.log.warning(
            f"no champion model yet: {key.to_user_string()} of batch {batch_id} is not measured"
        )
        yield _not_measured(check, key, "no champion model yet")
        return
    yield from body(context, settings, batch_id, champion, monitoring_params(settings))


def _measure(measure: Callable[..., _Report], batch_id: str, **kwargs: Any) -> _Report:
    """Run one measurement; a MonitoringError (what is missing, how to fix) fails the run."""
    try:
        return measure(batch_id, **kwargs)
    except MonitoringError as exc:
        raise dg.Failure(description=str(exc)) from exc


@_batch_monitor(
    DRIFT,
    [VALIDATED_BATCH, SCORES],
    "no_feature_drift",
    "Every feature's PSI, unseen share and the score PSI are within the "
    "monitoring thresholds of params.yaml (warning only).",
)
def drift(context: dg.AssetExecutionContext, scoreloop: ScoreloopResource) -> Iterator[_Result]:
    """PSI per feature (and of the score) of the batch vs the champion's training reference."""
    yield from _with_champion(context, scoreloop, "no_feature_drift", DRIFT, _drift)


def _drift(
    context: dg.AssetExecutionContext,
    settings: Settings,
    batch_id: str,
    champion: Champion,
    params: MonitoringParams,
) -> Iterator[_Result]:
    report = _measure(drift_batch, batch_id, settings=settings, champion=champion, params=params)
    history = read_drift(settings).filter(pl.col("model_version") == champion.version)
    plot = plot_drift_history(
        history, plots_dir(settings) / f"drift_{batch_id}.png", threshold=params.psi_threshold
    )
    drifted = report.drifted
    alert = drift_alert(batch_id, champion.version, drifted)
    _deliver(alert, settings, context.log, "drift alert")
    table = report.psi_table()
    yield dg.MaterializeResult(
        metadata={
            "model_version": champion.version,
            "rows": report.rows,
            "drifted_features": ", ".join(report.drifted_features) or "none",
            "drifted_count": len(report.drifted_features),
            "max_psi": dg.MetadataValue.float(float(table["psi"].max() or 0.0)),  # type: ignore[arg-type]
            "psi_table": dg.MetadataValue.md(psi_markdown(table)),
            "score_reference": report.score_reference or "none (holdout batches not scored)",
            "drift_over_time": png_markdown(plot),
            "drift_plot": dg.MetadataValue.path(str(plot)),
            "table_version": report.table_version,
        },
        data_version=dg.DataVersion(f"{champion.version}:{report.table_version}"),
    )
    yield dg.AssetCheckResult(
        check_name="no_feature_drift",
        asset_key=DRIFT,
        passed=drifted.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"drifted: {', '.join(report.drifted_features)}"
            if drifted.height
            else "no metric over threshold"
        ),
        metadata={
            "drifted": dg.MetadataValue.json(drifted.drop("computed_at").to_dicts()),
            "psi_threshold": dg.MetadataValue.float(params.psi_threshold),
        },
    )


@_batch_monitor(
    PERFORMANCE,
    [LABELS, SCORES],
    "auc_within_tolerance",
    "Realised ROC AUC >= the champion's reference AUC - monitoring.auc_tolerance (warning only).",
)
def performance(
    context: dg.AssetExecutionContext, scoreloop: ScoreloopResource
) -> Iterator[_Result]:
    """The champion's realised performance on the batch once its labels have landed."""
    yield from _with_champion(context, scoreloop, "auc_within_tolerance", PERFORMANCE, _performance)


def _performance(
    context: dg.AssetExecutionContext,
    settings: Settings,
    batch_id: str,
    champion: Champion,
    params: MonitoringParams,
) -> Iterator[_Result]:
    report = _measure(performance_batch, batch_id, settings=settings, champion=champion)
    reference = reference_auc(champion.metadata, settings.registry)
    ref_value = reference[0] if reference else None
    history = read_performance(settings).filter(pl.col("model_version") == champion.version)
    plot = plot_auc_history(
        history,
        plots_dir(settings) / f"auc_{batch_id}.png",
        reference_auc=ref_value,
        tolerance=params.auc_tolerance,
    )
    metrics = report.metrics
    judged = metrics["rows"] >= params.min_labelled_rows
    alert = performance_alert(metrics, ref_value, params.auc_tolerance) if judged else None
    _deliver(alert, settings, context.log, "performance alert")
    floats = ("positive_rate", "decision_rate", "roc_auc", "log_loss", "brier", "accuracy")
    yield dg.MaterializeResult(
        metadata={
            "model_version": champion.version,
            "dagster/row_count": metrics["rows"],
            **{
                name: dg.MetadataValue.float(float(metrics[name]))
                for name in floats
                if metrics[name] is not None
            },
            "reference_auc": dg.MetadataValue.float(float(ref_value))
            if ref_value is not None
            else "unknown",
            "reference_auc_source": reference[1] if reference else "none",
            "auc_over_time": png_markdown(plot),
            "auc_plot": dg.MetadataValue.path(str(plot)),
            "table_version": report.table_version,
        },
        data_version=dg.DataVersion(f"{champion.version}:{report.table_version}"),
    )
    auc = metrics["roc_auc"]
    yield dg.AssetCheckResult(
        check_name="auc_within_tolerance",
        asset_key=PERFORMANCE,
        passed=alert is None,
        severity=dg.AssetCheckSeverity.WARN,
        description=alert.message
        if alert
        else (
            f"realised AUC {auc} vs reference {ref_value} (tolerance {params.auc_tolerance})"
            if judged
            else f"only {metrics['rows']} labelled rows (< {params.min_labelled_rows}): not judged"
        ),
    )


# --- Alerts and triggers ------------------------------------------------------------------------


@dg.run_failure_sensor(
    name="monitoring_failure_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alert a person (alert log + webhook) about every failed run.",
)
def monitoring_failure_sensor(
    context: dg.RunFailureSensorContext, scoreloop: ScoreloopResource
) -> None:
    """Send an alert naming the failed run's job, partition and error."""
    run = context.dagster_run
    steps = []
    messages = []
    for event in context.get_step_failure_events():
        steps.append(event.step_key or "")
        data = event.step_failure_data
        user = data.user_failure_data
        if user is not None and user.description:
            messages.append(f"{event.step_key}: {user.description}")
        elif data.error is not None:
            messages.append(f"{event.step_key}: {data.error.message.strip()}")
    error = "; ".join(messages) or (context.failure_event.message or "run failed")
    alert = run_failure_alert(
        run.job_name, run.run_id, run.tags.get("dagster/partition"), error, steps
    )
    _deliver(alert, scoreloop.settings(), context.log, "run failure alert")


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
    since = json.loads(context.cursor) if context.cursor else {}
    alerts, cursor = new_ingest_alerts(settings.tables, since)
    for alert in alerts:
        _deliver(alert, settings, context.log, "alert")
    if not alerts:
        return dg.SensorResult(
            skip_reason="no new refused or failed batch", cursor=json.dumps(cursor)
        )
    return dg.SensorResult(cursor=json.dumps(cursor))


@dg.sensor(
    job_name=RETRAINING_JOB,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="When the champion is stale (drift, performance drop, age), request retraining.",
)
def staleness_sensor(
    context: dg.SensorEvaluationContext, scoreloop: ScoreloopResource
) -> dg.SensorResult | dg.SkipReason:
    """Request one ``retraining`` run per (champion, newest batch) state judged stale."""
    settings = scoreloop.settings()
    decision = staleness(settings)
    if decision is None:
        return dg.SkipReason("no champion model promoted yet")
    version = str(decision.details["champion_version"])
    if not decision.stale:
        return dg.SkipReason(f"champion {version} is not stale")
    batches = accepted_batches(settings.tables, "records")
    run_key = f"stale-{version}-{batches[-1] if batches else 'none'}"
    if run_key == context.cursor:
        return dg.SkipReason(f"retraining already requested for {run_key}")
    alert = stale_alert(version, decision.reasons, run_requested=True)
    _deliver(alert, settings, context.log, "staleness alert")
    reasons = "; ".join(decision.reasons)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key,
                job_name=RETRAINING_JOB,
                tags={
                    TRIGGER_TAG: "staleness",
                    "scoreloop/stale_champion": version,
                    REASONS_TAG: reasons[:MAX_TAG],
                },
            )
        ],
        cursor=run_key,
    )


defs = dg.Definitions(
    assets=[drift, performance],
    sensors=[monitoring_failure_sensor, ingest_alert_sensor, staleness_sensor],
    resources=RESOURCES,
)
