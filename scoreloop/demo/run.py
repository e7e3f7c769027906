"""``run_demo``: run the steps in order, print each one's summary, then the final tables."""

from __future__ import annotations

import time

from rich.console import Console

from pipelines.params import load_params
from pipelines.settings import Settings, get_settings
from pipelines.spec import load_spec
from scoreloop.demo import render
from scoreloop.demo.steps import STEPS, DemoContext, DemoStep


def run_demo(
    *,
    limit: int | None = None,
    steps: list[DemoStep] | None = None,
    console: Console | None = None,
    settings: Settings | None = None,
    workers: int = 0,
) -> DemoContext:
    """Run the demo steps and print what each produced; returns the shared context.

    ``workers`` > 0 runs the per-batch runs (ingest, scoring) on that many Dask workers
    (``scoreloop demo --scale``, which also points the settings at PostgreSQL and S3)."""
    settings = settings or get_settings()
    out = console or Console()
    ctx = DemoContext(
        settings=settings,
        spec=load_spec(settings.spec_path),
        params=load_params(settings.params_path),
        console=out,
        limit=limit,
        workers=workers,
    )
    timings: list[tuple[str, float]] = []
    for number, step in enumerate(steps if steps is not None else STEPS, start=1):
        out.rule(f"[bold]{number}. {step.title}")
        started = time.perf_counter()
        summary = step.run(ctx)
        seconds = time.perf_counter() - started
        timings.append((step.name, seconds))
        out.print(summary or "done")
        out.print(f"[dim]({step.name}: {seconds:.1f} s)[/dim]")
    out.rule("[bold]summary")
    out.print(render.timings_table(timings, ctx.headlines))
    out.print(render.where_things_live(settings))
    out.print(f"state under {settings.state_root}; Dagster instance at {settings.dagster}")
    out.print(
        "run [bold]`make ui`[/bold] to see the materialisations, [bold]`make serve`[/bold] for "
        "the lookup service"
    )
    return ctx
