"""``scoreloop demo`` and ``scoreloop ui`` commands: kept apart from :mod:`scoreloop.demo` so that
``scoreloop --help`` does not import the whole pipeline (the demo module is loaded on use)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipelines.settings import get_settings


def demo_command(
    limit: Annotated[
        int | None, typer.Option(help="Only the first N batches (a quick look; default all).")
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh/--keep",
            help="Wipe the state root first (default), or keep it and run the steps again on "
            "top of it (re-ingest replaces batches; new challengers meet the current champion).",
        ),
    ] = True,
) -> None:
    """Run the whole loop on the bundled data through Dagster: land and ingest batches, train
    and promote a champion, score and publish a snapshot, judge a challenger, monitor, serve."""
    if limit is None and (env := os.environ.get("SCORELOOP_DEMO_LIMIT")):
        limit = int(env)
    from scoreloop.demo import reset_state_root, run_demo

    settings = get_settings()
    console = Console()
    if fresh:
        for warning in reset_state_root(settings):
            console.print(f"[yellow]warning:[/yellow] {warning}")
        console.print(f"fresh state root: {settings.state_root}")
    run_demo(limit=limit, settings=settings, console=console)


def ui_command(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 3000,
) -> None:
    """Open the Dagster UI (``dagster dev``) on the demo's persistent instance."""
    from scoreloop.demo import ensure_dagster_home

    settings = get_settings()
    home = ensure_dagster_home(settings.dagster, settings.dagster_pg_url)
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
