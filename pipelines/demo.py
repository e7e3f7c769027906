"""``scoreloop demo`` and ``scoreloop ui``: the loop on the bundled data, then the control room.

The demo is a list of steps (:data:`STEPS`), each a function of a shared :class:`DemoContext` that
may return a summary block; add a step by appending to the list. Everything is written under
``settings.state_root`` (the persistent Dagster instance at ``settings.dagster``), never into the
checkout. The Dagster part lives in ``assets.runner`` and is imported only when its step runs, so
``pipelines/`` never imports Dagster.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.ingest import LOG_SCHEMA, QUARANTINE, log_uri
from pipelines.params import Params, load_params
from pipelines.settings import BUNDLED_SPEC, Settings, get_settings
from pipelines.simulator import SimulationResult, simulate
from pipelines.spec import DatasetSpec, load_spec
from pipelines.tables import read_table, table_uri
from pipelines.validation import QUARANTINE_SCHEMA

#: Faults the demo injects (batch id -> simulator faults), early enough to show with ``--limit 8``:
#: a batch with a few bad rows (accepted, quarantine non-empty), a batch refused as a whole by the
#: blocking reject-rate check, and a file that cannot be read (its run fails, nothing else does).
DEMO_FAULTS: dict[str, list[str]] = {
    "2015-03": ["corrupt_rows", "nulls"],
    "2015-05": ["wrong_types"],
    "2015-07": ["truncated_file"],
}
SOURCE = BUNDLED_SPEC.parent / "employment_MA.parquet"


@dataclass
class DemoContext:
    """What the steps share: settings, inputs, and each step's results for later steps."""

    settings: Settings
    spec: DatasetSpec
    params: Params
    console: Console
    limit: int | None = None
    simulation: SimulationResult | None = None
    results: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoStep:
    name: str
    title: str
    run: Callable[[DemoContext], RenderableType | None]


def ensure_dagster_home(path: Path) -> Path:
    """A DAGSTER_HOME folder with an (empty) ``dagster.yaml``: a persistent SQLite instance."""
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text("")
    return path


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
    )


def simulate_step(ctx: DemoContext) -> RenderableType:
    """Land the bundled data as monthly batch and label files, with a few faults."""
    knobs = ctx.params.simulate
    with _progress(ctx.console) as progress:
        task = progress.add_task("landing files", total=None, note="")
        ctx.simulation = simulate(
            ctx.spec,
            SOURCE,
            ctx.settings.landing,
            seed=knobs.seed,
            batches_per_period=knobs.batches_per_period,
            label_lag=knobs.label_lag,
            faults=DEMO_FAULTS,
            limit=ctx.limit,
            on_file=lambda path: progress.update(task, advance=1, note=path.name),
        )
    sim = ctx.simulation
    return (
        f"landed {len(sim.batches)} batches ({sim.batches[0]} .. {sim.batches[-1]}) and their "
        f"labels in {ctx.settings.landing}; faults: "
        + ", ".join(f"{b}={'+'.join(f)}" for b, f in DEMO_FAULTS.items() if b in sim.batches)
    )


def ingest_step(ctx: DemoContext) -> RenderableType:
    """Materialise raw_batch, validated_batch, quarantine and labels for every landed batch."""
    assert ctx.simulation is not None, "the ingest step runs after the simulate step"
    runner = importlib.import_module("assets.runner")
    landed = {path.name for path in ctx.simulation.files}
    plan = [
        (b, True, any(name.startswith(f"labels_{b}.") for name in landed))
        for b in ctx.simulation.batches
    ]
    home = ensure_dagster_home(ctx.settings.dagster)
    with _progress(ctx.console) as progress:
        task = progress.add_task("ingesting batches", total=len(plan), note="")

        def done(run: Any) -> None:
            note = "ok" if run.success else "[red]failed[/red]"
            if run.failed_checks:
                note = "[yellow]refused[/yellow]"
            progress.update(task, advance=1, note=f"{run.batch_id} {note}")

        runs = runner.ingest_batches(home, plan, on_done=done)
    ctx.results["ingest_runs"] = runs
    return ingest_summary(ctx.settings.tables, len(runs))


def ingest_summary(table_root: str, runs: int) -> RenderableType:
    """Batches, rows accepted / quarantined, top reasons, refused and failed batches."""
    log = read_table(log_uri(table_root, "records"), schema=LOG_SCHEMA)
    labels_log = read_table(log_uri(table_root, "labels"), schema=LOG_SCHEMA)
    quarantine = read_table(table_uri(table_root, QUARANTINE), schema=QUARANTINE_SCHEMA)
    counts = log.group_by("status").len()
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


#: The demo, in order. Later areas append steps (train, score, serve, ...).
STEPS: list[DemoStep] = [
    DemoStep("simulate", "Land batches and labels", simulate_step),
    DemoStep("ingest", "Ingest every batch through Dagster", ingest_step),
]


def run_demo(
    *,
    limit: int | None = None,
    steps: list[DemoStep] | None = None,
    console: Console | None = None,
    settings: Settings | None = None,
) -> DemoContext:
    """Run the demo steps and print what each produced; returns the shared context."""
    settings = settings or get_settings()
    out = console or Console()
    ctx = DemoContext(
        settings=settings,
        spec=load_spec(settings.spec_path),
        params=load_params(settings.params_path),
        console=out,
        limit=limit,
    )
    summaries: list[tuple[DemoStep, RenderableType, float]] = []
    for number, step in enumerate(steps if steps is not None else STEPS, start=1):
        out.rule(f"[bold]{number}. {step.title}")
        started = time.perf_counter()
        summary = step.run(ctx)
        summaries.append((step, summary or "done", time.perf_counter() - started))
    out.rule("[bold]summary")
    for step, summary, seconds in summaries:
        out.print(f"[bold]{step.name}[/bold] ({seconds:.1f} s)")
        out.print(summary)
    out.print(f"state under {settings.state_root}; Dagster instance at {settings.dagster}")
    out.print("run [bold]`make ui`[/bold] to see the materialisations")
    return ctx


def demo_command(
    limit: Annotated[
        int | None, typer.Option(help="Only the first N batches (a quick look; default all).")
    ] = None,
) -> None:
    """Run the loop on the bundled data: land batches, ingest them through Dagster, summarise."""
    if limit is None and (env := os.environ.get("SCORELOOP_DEMO_LIMIT")):
        limit = int(env)
    run_demo(limit=limit)


def ui_command(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 3000,
) -> None:
    """Open the Dagster UI (``dagster dev``) on the demo's persistent instance."""
    settings = get_settings()
    home = ensure_dagster_home(settings.dagster)
    dagster = Path(sys.executable).with_name("dagster")
    executable = str(dagster) if dagster.exists() else shutil.which("dagster")
    if executable is None:
        raise typer.BadParameter("the dagster executable is not installed in this environment")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    # A shell started in the background leaves SIGINT ignored, and dagster dev then ignores
    # Ctrl-C and SIGTERM (STACK.md trap 6): hand it the default handler.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    argv = [executable, "dev", "-m", "assets.definitions", "-h", host, "-p", str(port)]
    os.execve(executable, argv, env)


__all__ = ["STEPS", "DemoContext", "DemoStep", "ensure_dagster_home", "run_demo"]
