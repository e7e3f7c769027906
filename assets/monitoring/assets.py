"""The per-batch ``drift`` and ``performance`` assets: each body calls
``pipelines.monitor.monitor_batch`` for its measurement, delivers the alerts it decided and
returns metadata. Before any champion exists nothing is measured (the checks say so)."""

from collections.abc import Callable, Iterator

import dagster as dg
import polars as pl

from assets.metadata import frame_table, number, png_image, png_markdown, table
from assets.monitoring.checks import (
    DRIFT,
    ESTIMATED,
    PERFORMANCE,
    SPECS,
    auc_within_tolerance,
    estimated_auc_within_tolerance,
    not_measured,
)
from assets.monitoring.checks import no_feature_drift as drift_check
from assets.monitoring.delivery import deliver
from assets.partitions import batch_partitions
from assets.resources import ScoreloopResource
from pipelines.model_bundle import ModelLoadError
from pipelines.monitor import BatchMonitoring, EstimateMode, PerformanceMode, monitor_batch
from pipelines.monitoring import MonitoringError, current_champion, monitoring_params, plots_dir
from pipelines.registry import RegistryError

GROUP = "monitoring"
VALIDATED_BATCH = dg.AssetKey("validated_batch")
SCORES = dg.AssetKey("scores")
LABELS = dg.AssetKey("labels")
#: The model measured: upstream in the lineage, ignored by the eager condition (a promotion
#: rescores, and the new ``scores`` materialisations bring drift and performance along).
CHAMPION = dg.AssetKey("champion")

_Result = dg.MaterializeResult[None] | dg.AssetCheckResult


def _batch_monitor(key: dg.AssetKey, deps: list[dg.AssetKey]) -> Callable[..., dg.AssetsDefinition]:
    """The decorator of a per-batch monitoring asset with its one non-blocking check."""
    return dg.asset(
        key=key,
        deps=[*deps, CHAMPION],
        partitions_def=batch_partitions,
        group_name=GROUP,
        kinds={"delta"},
        output_required=False,
        automation_condition=dg.AutomationCondition.eager().ignore(
            dg.AssetSelection.assets(CHAMPION)
        ),
        check_specs=[SPECS[key]],
    )


def _monitor(
    context: dg.AssetExecutionContext,
    scoreloop: ScoreloopResource,
    key: dg.AssetKey,
    *,
    drift: bool,
    performance: PerformanceMode,
    estimate: EstimateMode = "skip",
) -> BatchMonitoring | None:
    """``monitor_batch`` for the partition's batch and deliver its alerts; None: no champion."""
    settings = scoreloop.settings()
    batch_id = context.partition_key
    try:
        champion = current_champion(settings)
    except (RegistryError, ModelLoadError) as exc:
        raise dg.Failure(description=f"cannot load the champion: {exc}") from exc
    if champion is None:
        context.log.warning(
            f"no champion model yet: {key.to_user_string()} of batch {batch_id} is not measured"
        )
        return None
    try:
        result = monitor_batch(
            batch_id,
            settings=settings,
            champion=champion,
            drift=drift,
            performance=performance,
            estimate=estimate,
            plot_dir=plots_dir(settings),
        )
    except MonitoringError as exc:  # what is missing and how to fix it: fails the run
        raise dg.Failure(description=str(exc)) from exc
    deliver(result.alerts, settings, context.log, f"{key.to_user_string()} alert")
    return result


@_batch_monitor(DRIFT, [VALIDATED_BATCH, SCORES])
def drift(context: dg.AssetExecutionContext, scoreloop: ScoreloopResource) -> Iterator[_Result]:
    """PSI per feature (and of the score) of the batch vs the champion's training reference."""
    result = _monitor(context, scoreloop, DRIFT, drift=True, performance="skip")
    if result is None or result.drift is None:
        yield not_measured(DRIFT, "no champion model yet")
        return
    measured = result.drift
    report = measured.report
    plot = measured.plot
    assert plot is not None  # monitor_batch was given a plot folder
    yield dg.MaterializeResult(
        metadata={
            "model_version": result.champion_version,
            "rows": report.rows,
            "drifted_features": ", ".join(report.drifted_features) or "none",
            "drifted_count": len(report.drifted_features),
            "max_psi": number(measured.max_psi),
            "psi_table": frame_table(psi_frame(measured.psi)),
            "drift_share": number(report.drift_share or 0.0),
            "dataset_drift": report.dataset_drift,
            "distributions": dg.MetadataValue.md(
                "\n\n".join(png_image(p) for p in measured.distribution_plots.values())
                or "no drifted feature"
            ),
            "score_reference": report.score_reference or "none (holdout batches not scored)",
            "drift_heatmap": png_markdown(measured.heatmap) if measured.heatmap else "not drawn",
            "drift_over_time": png_markdown(plot),
            "drift_plot": dg.MetadataValue.path(str(plot)),
            "table_version": report.table_version,
        },
        data_version=dg.DataVersion(f"{result.champion_version}:{report.table_version}"),
    )
    yield drift_check(measured)


def psi_frame(psi: pl.DataFrame) -> pl.DataFrame:
    """The per-feature drift table as shown: drifted features first, then by PSI."""
    return psi.sort(["drifted", "psi"], descending=[True, True], nulls_last=True).select(
        "feature",
        pl.col("psi").alias("PSI"),
        pl.col("unseen_share").alias("unseen share"),
        "method",
        pl.col("statistic").alias("statistic value"),
        pl.when(pl.col("drifted")).then(pl.lit("YES")).otherwise(pl.lit("no")).alias("drifted"),
    )


#: Performance metrics shown as floats in the asset's metadata (when known).
FLOAT_METRICS = ("positive_rate", "decision_rate", "roc_auc", "log_loss", "brier", "accuracy")


@_batch_monitor(PERFORMANCE, [LABELS, SCORES])
def performance(
    context: dg.AssetExecutionContext, scoreloop: ScoreloopResource
) -> Iterator[_Result]:
    """The champion's realised performance on the batch once its labels have landed."""
    result = _monitor(context, scoreloop, PERFORMANCE, drift=False, performance="required")
    if result is None or result.performance is None:
        yield not_measured(PERFORMANCE, "no champion model yet")
        return
    measured = result.performance
    metrics = measured.metrics.to_dict()
    plot = measured.plot
    assert plot is not None  # monitor_batch was given a plot folder
    reference = measured.reference_auc
    yield dg.MaterializeResult(
        metadata={
            "model_version": result.champion_version,
            "dagster/row_count": measured.metrics.rows,
            **{name: number(metrics[name]) for name in FLOAT_METRICS if metrics[name] is not None},
            "reference_auc": number(reference),
            "reference_auc_source": measured.reference_source or "none",
            "auc_over_time": png_markdown(plot),
            "auc_plot": dg.MetadataValue.path(str(plot)),
            "table_version": measured.report.table_version,
        },
        data_version=dg.DataVersion(f"{result.champion_version}:{measured.report.table_version}"),
    )
    yield auc_within_tolerance(measured)


@_batch_monitor(ESTIMATED, [SCORES])
def estimated_performance(
    context: dg.AssetExecutionContext, scoreloop: ScoreloopResource
) -> Iterator[_Result]:
    """The champion's estimated (CBPE) performance on the batch as soon as it is scored, beside
    the realised AUC once labels have landed."""
    result = _monitor(
        context, scoreloop, ESTIMATED, drift=False, performance="skip", estimate="required"
    )
    if result is None or result.estimate is None:
        yield not_measured(ESTIMATED, "no champion model yet")
        return
    measured = result.estimate
    metrics = measured.report.metrics
    plot = measured.plot
    assert plot is not None  # monitor_batch was given a plot folder
    yield dg.MaterializeResult(
        metadata={
            "model_version": result.champion_version,
            "dagster/row_count": int(metrics["rows"]),
            **{
                name: number(metrics[name])
                for name in ("estimated_roc_auc", "estimated_log_loss", "estimated_accuracy")
                if metrics[name] is not None
            },
            "confusion_matrix": table(
                ["threshold", "tp", "fp", "fn", "tn"],
                [[metrics[k] for k in ("threshold", "tp", "fp", "fn", "tn")]],
            ),
            "realised_roc_auc": number(measured.realised_auc, "labels not landed yet"),
            "estimation_error": number(measured.error),
            "estimated_over_time": png_markdown(plot),
            "table_version": measured.report.table_version,
        },
        data_version=dg.DataVersion(f"{result.champion_version}:{measured.report.table_version}"),
    )
    tolerance = monitoring_params(scoreloop.settings()).auc_tolerance
    yield estimated_auc_within_tolerance(measured, tolerance)
