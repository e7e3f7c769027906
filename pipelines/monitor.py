"""Monitor one batch for the champion: its drift and its realised performance, in one call.

:func:`monitor_batch` is the step the Dagster ``drift`` and ``performance`` assets and
``scoreloop monitor`` all call. It measures (and writes) what is asked for, applies the
min-labelled-rows rule once, draws the history plots when asked, and decides the alerts; the
caller only delivers them and shows the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import polars as pl

from pipelines.alerts import Alert, drift_alert, performance_alert
from pipelines.drift import PSI, SCORE_PSI, DriftReport, drift_batch, psi_markdown, read_drift
from pipelines.estimate import EstimateReport, champion_estimation_frame, estimate_batch
from pipelines.ingest import accepted_batches
from pipelines.monitoring import (
    SCORE_FEATURE,
    Champion,
    MonitoringError,
    MonitoringParams,
    current_champion,
    monitoring_params,
    reference_auc,
)
from pipelines.performance import (
    PerformanceMetrics,
    PerformanceReport,
    performance_batch,
    read_performance,
)
from pipelines.plots import (
    drift_grid,
    plot_auc_history,
    plot_distribution,
    plot_drift_heatmap,
    plot_drift_history,
    plot_estimated_history,
)
from pipelines.settings import Settings, get_settings
from pipelines.spec import DatasetSpec, load_spec

#: ``required``: measure, a failure raises; ``if_labelled``: measure when the batch's labels
#: are accepted, a failure is recorded in :attr:`BatchMonitoring.problems`; ``skip``: do not.
_T = TypeVar("_T")
PerformanceMode = Literal["required", "if_labelled", "skip"]
#: ``required``: estimate (CBPE), a failure raises; ``if_possible``: a failure (no calibration,
#: batch not scored) is recorded in :attr:`BatchMonitoring.problems`; ``skip``: do not.
EstimateMode = Literal["required", "if_possible", "skip"]


@dataclass(frozen=True)
class DriftResult:
    """The batch's drift, its alert (None when nothing drifted) and the history plots."""

    report: DriftReport
    #: One row per feature: psi, unseen_share, drifted (:meth:`DriftReport.psi_table`).
    psi: pl.DataFrame
    alert: Alert | None
    psi_threshold: float
    #: PSI per feature over the champion's batches, the top features as lines.
    plot: Path | None = None
    #: PSI of every feature (and the score) x every batch of the champion, as a heatmap.
    heatmap: Path | None = None
    #: Reference-vs-batch distribution PNG of every drifted feature (when plots were asked for).
    distribution_plots: dict[str, Path] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No metric over its threshold."""
        return self.report.drifted.height == 0

    @property
    def max_psi(self) -> float:
        return float(self.psi["psi"].fill_null(0.0).max() or 0.0)  # type: ignore[arg-type]

    @property
    def psi_markdown(self) -> str:
        return psi_markdown(self.psi)

    @property
    def summary(self) -> str:
        if self.passed:
            return "no metric over threshold"
        return f"drifted: {', '.join(self.report.drifted_features)}"


@dataclass(frozen=True)
class PerformanceResult:
    """The batch's realised performance, judged against the champion's reference AUC."""

    report: PerformanceReport
    metrics: PerformanceMetrics
    reference_auc: float | None
    reference_source: str | None
    tolerance: float
    min_labelled_rows: int
    #: Enough labelled rows to judge (``monitoring.min_labelled_rows``): only then an alert.
    judged: bool
    alert: Alert | None
    plot: Path | None = None

    @property
    def passed(self) -> bool:
        """No performance drop (or too few labelled rows to say)."""
        return self.alert is None

    @property
    def summary(self) -> str:
        if self.alert is not None:
            return self.alert.message
        if not self.judged:
            return (
                f"only {self.metrics.rows} labelled rows (< {self.min_labelled_rows}): not judged"
            )
        return (
            f"realised AUC {self.metrics.roc_auc} vs reference {self.reference_auc} "
            f"(tolerance {self.tolerance})"
        )


@dataclass(frozen=True)
class EstimateResult:
    """The batch's estimated (CBPE) performance, beside the realised one when it is known."""

    report: EstimateReport
    reference_auc: float | None
    #: Realised ROC AUC of the batch (performance table), once its labels have landed.
    realised_auc: float | None
    plot: Path | None = None

    @property
    def estimated_auc(self) -> float | None:
        value = self.report.metrics["estimated_roc_auc"]
        return None if value is None else float(value)

    @property
    def error(self) -> float | None:
        """|estimated - realised| ROC AUC (None until labels land)."""
        if self.estimated_auc is None or self.realised_auc is None:
            return None
        return abs(self.estimated_auc - self.realised_auc)

    @property
    def summary(self) -> str:
        text = f"estimated AUC {self.estimated_auc} (reference {self.reference_auc})"
        if self.realised_auc is not None:
            text += f", realised {self.realised_auc}, error {self.error:.4f}"
        return text


@dataclass(frozen=True)
class BatchMonitoring:
    """What :func:`monitor_batch` measured for one batch and champion."""

    batch_id: str
    champion_version: str
    drift: DriftResult | None
    performance: PerformanceResult | None
    #: Measurement -> why it was not made (``performance="if_labelled"``,
    #: ``estimate="if_possible"``).
    problems: dict[str, str] = field(default_factory=dict)
    estimate: EstimateResult | None = None

    @property
    def alerts(self) -> list[Alert]:
        """The alerts a person should get, drift first."""
        found = [self.drift.alert if self.drift else None]
        found.append(self.performance.alert if self.performance else None)
        return [alert for alert in found if alert is not None]


@dataclass(frozen=True)
class _Context:
    """What every measurement of one :func:`monitor_batch` call works with."""

    settings: Settings
    champion: Champion
    spec: DatasetSpec
    params: MonitoringParams
    plot_dir: Path | None

    def history(self, table: pl.DataFrame) -> pl.DataFrame:
        """The champion's rows of a monitoring table (what the history plots show)."""
        return table.filter(pl.col("model_version") == self.champion.version)


def _measure_drift(batch_id: str, ctx: _Context) -> DriftResult:
    """Drift of the batch (written to the drift table), its alert and, if asked, the plot."""
    params = ctx.params
    report = drift_batch(
        batch_id, settings=ctx.settings, champion=ctx.champion, spec=ctx.spec, params=params
    )
    plot = heatmap = None
    views: dict[str, Path] = {}
    if ctx.plot_dir is not None:
        history = ctx.history(read_drift(ctx.settings))
        plot = plot_drift_history(
            history,
            ctx.plot_dir / f"drift_{batch_id}.png",
            threshold=params.psi_threshold,
            metrics=[PSI, SCORE_PSI],
        )
        heatmap = plot_drift_heatmap(
            drift_grid(history, [PSI, SCORE_PSI], last=SCORE_FEATURE),
            ctx.plot_dir / f"drift_heatmap_{batch_id}.png",
            threshold=params.psi_threshold,
        )
        views = {
            name: plot_distribution(view, ctx.plot_dir / f"distribution_{batch_id}_{name}.png")
            for name, view in report.views.items()
        }
    return DriftResult(
        distribution_plots=views,
        report=report,
        psi=report.psi_table(),
        alert=drift_alert(batch_id, ctx.champion.version, report.drifted),
        psi_threshold=params.psi_threshold,
        plot=plot,
        heatmap=heatmap,
    )


def _measure_performance(batch_id: str, ctx: _Context) -> PerformanceResult:
    """Realised performance (written to the performance table), judged once, and its alert."""
    params = ctx.params
    report = performance_batch(
        batch_id, settings=ctx.settings, champion=ctx.champion, spec=ctx.spec
    )
    metrics = report.metrics
    reference = reference_auc(ctx.champion.metadata, ctx.settings.registry)
    value = reference[0] if reference else None
    judged = params.judges(metrics.rows)
    plot = None
    if ctx.plot_dir is not None:
        plot = plot_auc_history(
            ctx.history(read_performance(ctx.settings)),
            ctx.plot_dir / f"auc_{batch_id}.png",
            reference_auc=value,
            tolerance=params.auc_tolerance,
        )
    return PerformanceResult(
        report=report,
        metrics=metrics,
        reference_auc=value,
        reference_source=reference[1] if reference else None,
        tolerance=params.auc_tolerance,
        min_labelled_rows=params.min_labelled_rows,
        judged=judged,
        alert=performance_alert(metrics.to_dict(), value, params.auc_tolerance) if judged else None,
        plot=plot,
    )


def _measure_estimate(batch_id: str, ctx: _Context) -> EstimateResult:
    """CBPE estimate of the batch (written), beside its realised AUC and, if asked, the plot."""
    report = estimate_batch(batch_id, settings=ctx.settings, champion=ctx.champion, spec=ctx.spec)
    reference = reference_auc(ctx.champion.metadata, ctx.settings.registry)
    realised = ctx.history(read_performance(ctx.settings)).filter(pl.col("batch_id") == batch_id)
    plot = None
    if ctx.plot_dir is not None:
        plot = plot_estimated_history(
            champion_estimation_frame(ctx.settings, ctx.champion.version),
            ctx.plot_dir / f"estimated_{batch_id}.png",
            reference_auc=reference[0] if reference else None,
        )
    return EstimateResult(
        report=report,
        reference_auc=reference[0] if reference else None,
        realised_auc=float(realised["roc_auc"][0])
        if realised.height and realised["roc_auc"][0] is not None
        else None,
        plot=plot,
    )


def _attempt(
    name: str, measure: Callable[[], _T], mode: str, problems: dict[str, str]
) -> _T | None:
    """Run one measurement; unless it is ``required``, a failure is recorded in ``problems``."""
    try:
        return measure()
    except MonitoringError as exc:
        if mode == "required":
            raise
        problems[name] = str(exc)
        return None


def monitor_batch(
    batch_id: str,
    *,
    settings: Settings | None = None,
    champion: Champion | None = None,
    spec: DatasetSpec | None = None,
    params: MonitoringParams | None = None,
    drift: bool = True,
    performance: PerformanceMode = "if_labelled",
    estimate: EstimateMode = "skip",
    plot_dir: Path | None = None,
) -> BatchMonitoring:
    """Measure drift and realised performance of ``batch_id`` for the champion.

    Args:
        batch_id: an accepted batch, scored by the champion.
        champion: the champion (default: the registry's); settings, spec and params default to
            the configured ones.
        drift: measure drift (a failure raises).
        performance: see :data:`PerformanceMode`.
        estimate: see :data:`EstimateMode` (CBPE, :mod:`pipelines.estimate`).
        plot_dir: draw the history plots (drift and AUC over batches) into this folder.

    Raises:
        MonitoringError: no champion; or a measurement that was asked for cannot be made (the
            batch is not accepted, not scored, has no reference): the message says what to do.
    """
    settings = settings or get_settings()
    champion = champion or current_champion(settings)
    if champion is None:
        raise MonitoringError(
            "no champion model: batches are monitored against the champion; train and promote "
            "a model first"
        )
    ctx = _Context(
        settings=settings,
        champion=champion,
        spec=spec or load_spec(settings.spec_path),
        params=params or monitoring_params(settings),
        plot_dir=plot_dir,
    )
    drift_result = _measure_drift(batch_id, ctx) if drift else None
    problems: dict[str, str] = {}
    performance_result = None
    if performance == "required" or (
        performance == "if_labelled" and batch_id in accepted_batches(settings.tables, "labels")
    ):
        performance_result = _attempt(
            "performance", lambda: _measure_performance(batch_id, ctx), performance, problems
        )
    estimate_result = None
    if estimate != "skip":
        estimate_result = _attempt(
            "estimate", lambda: _measure_estimate(batch_id, ctx), estimate, problems
        )
    return BatchMonitoring(
        estimate=estimate_result,
        batch_id=batch_id,
        champion_version=champion.version,
        drift=drift_result,
        performance=performance_result,
        problems=problems,
    )
