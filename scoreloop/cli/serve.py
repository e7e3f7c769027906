"""``scoreloop serve``: the lookup service (serving/ is imported only when the command runs)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)


def serve_command(
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 in a container).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8000,
    dev: Annotated[
        bool, typer.Option("--dev", help="Allow a missing admin token (SCORELOOP_DEV_MODE=1).")
    ] = False,
    reload_interval: Annotated[
        float | None,
        typer.Option(help="Seconds between CURRENT polls (default SCORELOOP_RELOAD_INTERVAL_S)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    server: Annotated[
        str, typer.Option(help="uvicorn (default, in the lock) or granian (if installed).")
    ] = "uvicorn",
) -> None:
    """Serve score lookups and on-demand scoring from the current serving snapshot."""
    from serving.config import ConfigError
    from serving.main import run

    if server not in ("uvicorn", "granian"):
        console.print(f"[red]error:[/red] --server must be uvicorn or granian, not {server!r}")
        raise typer.Exit(2)
    try:
        run(
            host=host,
            port=port,
            dev_mode=True if dev else None,
            reload_interval_s=reload_interval,
            log_level=log_level,
            server="granian" if server == "granian" else "uvicorn",
        )
    except ConfigError as exc:
        console.print("[red]error:[/red]", escape(str(exc)), soft_wrap=True)  # one line to copy
        raise typer.Exit(2) from exc
