"""What the demo prints: progress bars, each step's summary block, the final tables.

Data in, rich renderables out; the steps (:mod:`scoreloop.demo.steps`) decide what to show.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.alerts import alerts_path
from pipelines.ingest import QUARANTINE, batch_outcomes, read_ingest_log
from pipelines.settings import Settings
from pipelines.tables import read_table, table_uri
from pipelines.validate import QUARANTINE_SCHEMA

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from assets.runner import BatchRun
    from pipelines.snapshot import SnapshotManifest
    from pipelines.staleness import StalenessDecision

METRICS = ("roc_auc", "pr_auc", "log_loss")


def progress(console: Console) -> Progress:
    """A progress bar with a count, the elapsed time and a note (the item just done)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
    )


#: Seconds between heartbeat lines of a long step when the output is not a terminal.
HEARTBEAT_SECONDS = 15.0


@contextmanager
def working(console: Console, message: str, *, every: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """A spinner on a terminal; otherwise (a log, CI, a pipe) the message once and a heartbeat
    line every ``every`` seconds (``still training ... 45 s``), so a long step is never silent."""
    if console.is_terminal:
        with console.status(message):
            yield
        return
    console.print(message)
    started = time.perf_counter()
    done = threading.Event()
    what = message.rstrip(". ")

    def beat() -> None:
        while not done.wait(every):
            console.print(f"  still {what} ... {time.perf_counter() - started:.0f} s")

    thread = threading.Thread(target=beat, name="demo-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def ingest_summary(table_root: str, runs: int) -> RenderableType:
    """Batches, rows accepted / quarantined, top reasons, refused and failed batches."""
    log = read_ingest_log(table_root)
    labels_log = read_ingest_log(table_root, "labels")
    quarantine = read_table(table_uri(table_root, QUARANTINE), schema=QUARANTINE_SCHEMA)
    counts = batch_outcomes(table_root).group_by("status").len()
    by_status = dict(zip(counts["status"], counts["len"], strict=True))
    lines = [
        f"{runs} Dagster runs; batches: {by_status.get('accepted', 0)} accepted, "
        f"{by_status.get('refused', 0)} refused, {by_status.get('failed', 0)} failed; "
        f"labels for {labels_log.filter(pl.col('status') == 'accepted').height} batches",
        f"rows accepted: {int(log['accepted'].sum() or 0):,}; "
        f"rows quarantined: {quarantine.height:,}",
    ]
    reasons = Table("column", "check", "rows", "example", title="top quarantine reasons")
    if not quarantine.is_empty():
        top = (
            quarantine.select(pl.col("reasons").explode())
            .unnest("reasons")
            .group_by("column", "check")
            .agg(pl.len().alias("rows"), pl.col("value").first().alias("example"))
            .sort(["rows", "column", "check"], descending=[True, False, False])
            .head(8)
        )
        for column, check, rows, example in top.iter_rows():
            reasons.add_row(column, check, str(rows), str(example)[:60])
    bad = Table("batch", "status", "reason", title="refused / failed batches")
    for row in log.filter(pl.col("status") != "accepted").sort("batch_id").iter_rows(named=True):
        reason = row["error"] or f"reject rate {row['reject_rate']:.1%}"
        bad.add_row(row["batch_id"], row["status"], reason)
    return Group(*lines, reasons, bad, f"tables under {table_root}")


def _evaluation(settings: Settings) -> dict[str, Any]:
    path = settings.registry / "evaluation" / "evaluation.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def _selection(settings: Settings) -> dict[str, Any]:
    path = settings.registry / "selection.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def _span(batches: list[str]) -> str:
    return f"{batches[0]}..{batches[-1]} ({len(batches)})" if batches else "none"


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def retraining_summary(settings: Settings, run: BatchRun) -> tuple[RenderableType, dict[str, Any]]:
    """Selection, holdout metrics of every model, threshold and the gate's decision."""
    from pipelines.registry import decisions

    evaluation = _evaluation(settings)
    selection = _selection(settings)
    recorded = decisions(settings)
    decision = recorded[-1] if recorded else {}
    metrics = Table("model", "version", *METRICS, "threshold", title="holdout metrics")
    for role, data in evaluation.get("models", {}).items():
        overall = data.get("overall", {})
        threshold = overall.get("threshold")
        metrics.add_row(
            role,
            data.get("version") or "-",
            *(f"{overall[m]:.4f}" if overall.get(m) is not None else "-" for m in METRICS),
            f"{threshold:.3f}" if isinstance(threshold, int | float) else "-",
        )
    promoted = "champion" in run.materialized
    verdict = "[green]PROMOTED[/green]" if promoted else "[yellow]REFUSED[/yellow]"
    lines: list[RenderableType] = [
        f"Dagster run {run.run_id[:8]}: materialised {', '.join(run.materialized) or 'nothing'}"
        + (f"; failed checks: {', '.join(run.failed_checks)}" if run.failed_checks else ""),
        f"batches: train {_span(selection.get('train', []))}, validation "
        f"{_span(selection.get('validation', []))}, out-of-time holdout "
        f"{_span(selection.get('holdout', []))} ({evaluation.get('holdout_rows', 0):,} rows)",
        metrics,
        f"gate on {decision.get('primary_metric', '?')}: {verdict} "
        f"{decision.get('version', '?')} (challenger {decision.get('challenger_value')}, "
        f"champion {decision.get('champion_value')})",
        *(f"  - {reason}" for reason in decision.get("reasons", [])),
    ]
    shadow = decision.get("shadow")
    if shadow:
        lines.append(
            f"shadow on the newest batch {shadow['batch_id']} ({shadow['rows']:,} rows, evidence "
            f"only, not a gate rule): score PSI {shadow['score_psi']:.4f} challenger vs "
            f"champion, decision agreement {shadow['decision_agreement']:.1%}, mean score delta "
            f"{shadow['mean_score_delta']:+.4f} (decision rate "
            f"{shadow['challenger_decision_rate']:.1%} vs {shadow['champion_decision_rate']:.1%})"
        )
    errors = [e for e in run.errors if "gate" not in e]
    if not run.success and errors:
        lines.append("[red]errors:[/red] " + "; ".join(errors))
    outcome = {
        "promoted": promoted,
        "version": decision.get("version"),
        "headline": f"{decision.get('version')} {'promoted' if promoted else 'refused'} "
        f"({decision.get('primary_metric')} {_fmt(decision.get('challenger_value'))} vs "
        f"champion {_fmt(decision.get('champion_value'))})",
    }
    return Group(*lines), outcome


def tags_text(tags: Mapping[str, str], width: int = 60) -> str:
    """Run tags as ``key=value`` (each value cut at ``width`` characters)."""
    return ", ".join(
        f"{key}={value if len(value) <= width else value[:width] + '...'}"
        for key, value in sorted(tags.items())
    )


def format_reasons(reasons: list[dict[str, Any]]) -> str:
    """Reason codes as ``FEATURE=value (+0.42), ...``."""
    return ", ".join(f"{r['feature']}={r['value']} ({r['contribution']:+.2f})" for r in reasons)


def sample_table(rows: pl.DataFrame, title: str) -> Table:
    table = Table("entity_id", "batch", "score", "decision", "top reasons", title=title)
    for row in rows.iter_rows(named=True):
        table.add_row(
            str(row["entity_id"]),
            row["batch_id"],
            f"{row['score']:.3f}",
            "yes" if row["decision"] else "no",
            format_reasons(row["reasons"]),
        )
    return table


def publish_summary(
    run: BatchRun,
    manifest: SnapshotManifest,
    before: SnapshotManifest | None,
    *,
    scores_table: str,
    scored: pl.DataFrame,
    rows: pl.DataFrame,
    sample: pl.DataFrame,
) -> Group:
    """The scoring run, the scores table, the snapshot's model version change and a sample."""
    if before is None:
        change = f"first snapshot, model version {manifest.model_version}"
    elif before.model_version == manifest.model_version:
        change = f"snapshot republished, model version unchanged ({manifest.model_version})"
    else:
        change = f"snapshot model version {before.model_version} -> {manifest.model_version}"
    return Group(
        f"Dagster run {run.run_id[:8]}: materialised {', '.join(run.materialized)} (the batches "
        "it scored are reported as `scores` partitions)",
        f"scores table {scores_table}: {scored.height:,} rows by "
        f"{manifest.model_version} over {scored['batch_id'].n_unique()} batches",
        f"{change}; snapshot {manifest.snapshot_id}: {manifest.row_count:,} entities, "
        f"decision rate {int(rows['decision'].sum()) / max(rows.height, 1):.1%}",
        sample_table(sample, "a few scored rows"),
    )


def monitor_summary(
    runs: Sequence[BatchRun],
    drift: pl.DataFrame,
    performance: pl.DataFrame,
    *,
    version: str,
    decision: StalenessDecision | None,
    alerts_file: Path,
    alerts: int,
) -> Group:
    """Drift and realised performance per batch, the staleness verdict, the alerts so far."""
    table = Table(
        "batch", "run", "max PSI", "drifted", "rows labelled", "realised AUC", title="monitoring"
    )
    for run in runs:
        part = drift.filter(pl.col("batch_id") == run.batch_id)
        psi = part.filter(pl.col("metric") == "psi")["value"].max()
        drifted = sorted(part.filter(pl.col("drifted"))["feature"].unique().to_list())
        perf = performance.filter(pl.col("batch_id") == run.batch_id)
        auc = perf["roc_auc"][0] if perf.height else None
        table.add_row(
            run.batch_id,
            "ok" if run.success else "[red]failed[/red]",
            f"{psi:.3f}" if isinstance(psi, float) else "-",
            ", ".join(drifted) or "none",
            f"{perf['rows'][0]:,}" if perf.height else "-",
            f"{auc:.4f}" if isinstance(auc, float) else "-",
        )
    lines: list[RenderableType] = [table]
    if decision is not None:
        d = decision.details
        verdict = "[yellow]STALE: retrain[/yellow]" if decision.stale else "[green]fresh[/green]"
        lines.append(
            f"staleness of {version}: {verdict} (reference AUC {d.get('reference_auc')}, "
            f"realised {d.get('realised_auc')}, {d.get('batches_since_training')} batches since "
            "training)"
        )
        lines.extend(f"  - {reason}" for reason in decision.reasons)
    lines.append(
        f"alerts so far: {alerts} in {alerts_file} (drift and performance alerts of these runs; "
        "refused batches and failed runs are alerted by the sensors once `make ui` runs)"
    )
    for run in runs:
        if run.errors:
            lines.append(f"[red]{run.batch_id}:[/red] " + "; ".join(run.errors))
    return Group(*lines)


def serve_summary(
    *,
    base_url: str,
    pid: int,
    ready_seconds: float,
    snapshot_id: str,
    entity: Any,
    served: tuple[int, Any],
    record: dict[str, Any],
    predicted: tuple[int, Any],
    log: Path,
) -> Group:
    """The service's start, its answers to the lookup and the prediction, how to run it."""
    lines: list[RenderableType] = [
        f"`scoreloop serve` pid {pid} on {base_url} ready in {ready_seconds:.1f} s "
        f"(snapshot {snapshot_id})"
    ]
    status, body = served
    lines.append(f"GET /scores/{entity} -> {status}")
    if status == 200:
        lines.append(
            f"  entity {body['entity_id']} batch {body['batch_id']}: score "
            f"{body['score']:.4f}, decision {body['decision']} (threshold "
            f"{body['threshold']:.3f}), model {body['model_version']}; reasons: "
            f"{format_reasons(body['reasons'])}"
        )
    status, body = predicted
    lines.append(f"POST /predict (the same entity's record) -> {status}")
    if status == 200:
        lines.append(
            f"  {json.dumps(record, separators=(',', ':'))}\n"
            f"  score {body['score']:.4f}, decision {body['decision']}, model "
            f"{body.get('model_version')}; reasons: {format_reasons(body['reasons'])}"
        )
    else:
        lines.append(f"  {json.dumps(body)[:500]}")
    lines.append(f"service stopped (pid {pid}); its log: {log}")
    lines.append(
        "run it yourself: [bold]`make serve`[/bold] (needs SCORELOOP_ADMIN_TOKEN, or "
        "`scoreloop serve --dev` locally), then `curl http://127.0.0.1:8000/scores/"
        f"{entity}`; API docs at http://127.0.0.1:8000/docs"
    )
    return Group(*lines)


def timings_table(timings: list[tuple[str, float]], headlines: dict[str, str]) -> Table:
    """Seconds and the one-line outcome of every step, and the total."""
    table = Table("step", "seconds", "outcome", title="timings")
    for name, seconds in timings:
        table.add_row(name, f"{seconds:.1f}", headlines.get(name, ""))
    table.add_row("[bold]total", f"[bold]{sum(s for _, s in timings):.1f}", "")
    return table


def where_things_live(settings: Settings) -> Table:
    table = Table("what", "where", title="state")
    rows = [
        ("landing files", str(settings.landing)),
        ("Delta tables (validated, scores, drift, ...)", settings.tables),
        ("registry (git + DVC + GTO tags)", str(settings.registry)),
        ("DVC remote", settings.remote),
        ("serving snapshots", str(settings.snapshots)),
        ("alerts", str(alerts_path(settings))),
        ("Dagster instance (`make ui`)", str(settings.dagster)),
    ]
    for what, where in rows:
        table.add_row(what, where)
    return table
