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

#: ``--limit`` of ``demo --scale`` unless given: the 2015 batches and two of 2016 (a few
#: minutes on 2 cores, with the champion and the challenger on different holdouts).
SCALE_LIMIT = 14


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
    scale: Annotated[
        bool,
        typer.Option(
            "--scale",
            help="Scaled out: start a throwaway PostgreSQL (the Dagster instance), a local S3 "
            "endpoint (moto; tables, DVC remote, snapshots) and run the batches on two Dask "
            "workers, all on 127.0.0.1, stopped at the end (default --limit "
            f"{SCALE_LIMIT}).",
        ),
    ] = False,
    workers: Annotated[int, typer.Option(help="Dask workers with --scale.", min=1, max=16)] = 2,
) -> None:
    """Run the whole loop on the bundled data through Dagster: land and ingest batches, train
    and promote a champion, score and publish a snapshot, judge a challenger, monitor, serve."""
    if limit is None and (env := os.environ.get("SCORELOOP_DEMO_LIMIT")):
        limit = int(env)
    console = Console()
    if not scale:
        _demo(console, limit=limit, fresh=fresh)
        return
    from scoreloop.scale_stack import StackUnavailable, scale_stack

    try:
        with scale_stack(workers=workers) as stack:
            console.rule("[bold]scale-out stack (127.0.0.1, stopped at the end)")
            for line in stack.describe():
                console.print(line)
            saved = {key: os.environ.get(key) for key in stack.environment()}
            os.environ.update(stack.environment())
            try:
                _demo(
                    console,
                    limit=SCALE_LIMIT if limit is None else limit,
                    fresh=fresh,
                    workers=workers,
                )
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
            console.print(
                f"stopping PostgreSQL (pid {stack.postgres.pid}) and S3 (pid {stack.s3.pid})"
            )
    except StackUnavailable as exc:
        console.print(f"[red]scale demo cannot start:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(
        "scale-out stack stopped: its database and bucket were throwaway (`make ui` afterwards "
        "opens an empty instance; use `make demo` for one that stays)"
    )


def _demo(console: Console, *, limit: int | None, fresh: bool, workers: int = 0) -> None:
    from scoreloop.demo import reset_state_root, run_demo

    settings = get_settings()
    if fresh:
        for warning in reset_state_root(settings):
            console.print(f"[yellow]warning:[/yellow] {warning}")
        console.print(f"fresh state root: {settings.state_root}")
    run_demo(limit=limit, settings=settings, console=console, workers=workers)


def ui_command(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 3000,
) -> None:
    """Open the Dagster UI (``dagster dev``) on the demo's persistent instance. Its own output
    (webserver, daemon and code server logs, Dagster's warnings) goes to a log file under the
    instance folder, whose path is printed; the terminal only shows where to look."""
    from scoreloop.demo import ensure_dagster_home

    settings = get_settings()
    home = ensure_dagster_home(settings.dagster, settings.dagster_pg_url)
    # not <DAGSTER_HOME>/logs: Dagster's telemetry moves that folder's files away and deletes them
    log = home / "ui-logs" / "dagster-dev.log"
    dagster = Path(sys.executable).with_name("dagster")
    executable = str(dagster) if dagster.exists() else shutil.which("dagster")
    if executable is None:
        raise typer.BadParameter("the dagster executable is not installed in this environment")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    # A shell started in the background leaves SIGINT ignored, and dagster dev then ignores
    # Ctrl-C and SIGTERM (STACK.md trap 6): hand it the default handler.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    argv = [executable, "dev", "-m", "assets.definitions", "-h", host, "-p", str(port)]
    log.parent.mkdir(parents=True, exist_ok=True)
    console = Console()
    console.print(f"Dagster UI: http://{host}:{port} (instance {home}); Ctrl-C stops it")
    console.print(f"its log (webserver, daemon, code server, warnings): {log}")
    sys.stdout.flush()
    sys.stderr.flush()
    # `dagster dev` logs every daemon tick at INFO and warns that `dg dev` supersedes it: all of
    # that goes to the log file, the terminal stays quiet.
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.execve(executable, argv, env)
