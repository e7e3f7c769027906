"""``scoreloop monitor``: drift, realised performance and staleness, from the command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def monitor_command(
    batches: Annotated[
        list[str] | None,
        typer.Argument(help="Batch ids (default: every accepted batch scored by the champion)."),
    ] = None,
    alert: Annotated[
        bool, typer.Option(help="Send alerts (alert log, webhook) for drift and performance.")
    ] = False,
) -> None:
    """Measure drift and realised performance of batches vs the champion, then judge staleness."""
    import polars as pl

    from pipelines.alerts import alert_sinks, send_alert
    from pipelines.drift import drift_uri
    from pipelines.ingest import accepted_batches
    from pipelines.monitor import monitor_batch
    from pipelines.monitoring import MonitoringError, current_champion, monitoring_params
    from pipelines.performance import performance_uri
    from pipelines.scores_table import scored_versions
    from pipelines.settings import get_settings
    from pipelines.spec import load_spec
    from pipelines.staleness import staleness

    settings = get_settings()
    champion = current_champion(settings)
    if champion is None:
        console.print("[red]error:[/red] no champion model: train and promote one first")
        raise typer.Exit(1)
    spec = load_spec(settings.spec_path)
    params = monitoring_params(settings)
    scored = set(
        scored_versions(settings).filter(pl.col("model_version") == champion.version)["batch_id"]
    )
    todo = batches or sorted(set(accepted_batches(settings.tables, "records")) & scored)
    sinks = alert_sinks(settings) if alert else []
    table = Table("batch", "rows", "drifted", "max PSI", "labelled rows", "ROC AUC", "accuracy")
    failed = 0
    for batch_id in todo:
        try:
            result = monitor_batch(
                batch_id, settings=settings, champion=champion, spec=spec, params=params
            )
        except MonitoringError as exc:
            console.print(f"[red]{batch_id}:[/red] {exc}")
            failed += 1
            continue
        if problem := result.problems.get("performance"):
            console.print(f"[yellow]{batch_id}:[/yellow] {problem}")
        drift = result.drift
        assert drift is not None  # drift is always measured here
        row = [
            batch_id,
            str(drift.report.rows),
            ", ".join(drift.report.drifted_features) or "-",
            f"{drift.max_psi:.3f}",
        ]
        if (performance := result.performance) is not None:
            metrics = performance.metrics
            auc = metrics.roc_auc
            row += [
                str(metrics.rows),
                "" if auc is None else f"{auc:.4f}",
                f"{metrics.accuracy:.2%}",
            ]
        for found in result.alerts if sinks else []:
            send_alert(found, sinks)
        table.add_row(*row)
    console.print(table)
    console.print(
        f"champion {champion.version}; tables {drift_uri(settings)}, {performance_uri(settings)}"
    )
    decision = staleness(settings, champion)
    if decision is not None:
        verdict = "[red]stale[/red]" if decision.stale else "[green]fresh[/green]"
        console.print(f"staleness: {verdict}")
        for reason in decision.reasons:
            console.print(f"  - {reason}")
    if failed:
        raise typer.Exit(1)
