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

    from pipelines.alerts import alert_sinks, drift_alert, performance_alert, send_alert
    from pipelines.drift import drift_batch, drift_uri
    from pipelines.ingest import accepted_batches
    from pipelines.monitoring import (
        MonitoringError,
        current_champion,
        monitoring_params,
        reference_auc,
    )
    from pipelines.performance import performance_batch, performance_uri
    from pipelines.scores_table import scored_versions
    from pipelines.settings import get_settings
    from pipelines.staleness import staleness

    settings = get_settings()
    champion = current_champion(settings)
    if champion is None:
        console.print("[red]error:[/red] no champion model: train and promote one first")
        raise typer.Exit(1)
    params = monitoring_params(settings)
    scored = set(
        scored_versions(settings).filter(pl.col("model_version") == champion.version)["batch_id"]
    )
    todo = batches or sorted(set(accepted_batches(settings.tables, "records")) & scored)
    labelled = set(accepted_batches(settings.tables, "labels"))
    reference = reference_auc(champion.metadata, settings.registry)
    sinks = alert_sinks(settings) if alert else []
    table = Table("batch", "rows", "drifted", "max PSI", "labelled rows", "ROC AUC", "accuracy")
    failed = 0
    for batch_id in todo:
        try:
            drift = drift_batch(batch_id, settings=settings, champion=champion, params=params)
        except MonitoringError as exc:
            console.print(f"[red]{batch_id}:[/red] {exc}")
            failed += 1
            continue
        psi = drift.psi_table()
        row = [
            batch_id,
            str(drift.rows),
            ", ".join(drift.drifted_features) or "-",
            f"{float(psi['psi'].fill_null(0.0).max() or 0.0):.3f}",  # type: ignore[arg-type]
        ]
        if sinks and (found := drift_alert(batch_id, champion.version, drift.drifted)):
            send_alert(found, sinks)
        if batch_id in labelled:
            try:
                metrics = performance_batch(batch_id, settings=settings, champion=champion).metrics
            except MonitoringError as exc:
                console.print(f"[yellow]{batch_id}:[/yellow] {exc}")
                metrics = None
            if metrics is not None:
                auc = metrics["roc_auc"]
                row += [
                    str(metrics["rows"]),
                    "" if auc is None else f"{auc:.4f}",
                    f"{metrics['accuracy']:.2%}",
                ]
                drop = performance_alert(
                    metrics, reference[0] if reference else None, params.auc_tolerance
                )
                if sinks and drop and metrics["rows"] >= params.min_labelled_rows:
                    send_alert(drop, sinks)
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
