"""``scoreloop maintain``: vacuum old Delta files and remove leftovers of killed writes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from pipelines.maintain import DEFAULT_RETENTION_HOURS, DEFAULT_STAGING_MINUTES
from pipelines.settings import get_settings

console = Console()


def maintain_command(
    retention_hours: Annotated[
        int, typer.Option(help="Keep Delta files a table stopped using less than this long ago.")
    ] = DEFAULT_RETENTION_HOURS,
    staging_minutes: Annotated[
        float, typer.Option(help="Remove .staging-* snapshot folders older than this.")
    ] = DEFAULT_STAGING_MINUTES,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would go.")] = False,
) -> None:
    """Vacuum the Delta tables (keeping what training-set selections pin), remove 0-byte part
    files and stale snapshot staging folders; print what went and the space freed."""
    from pipelines.maintain import maintain

    report = maintain(
        get_settings(),
        retention_hours=retention_hours,
        staging_minutes=staging_minutes,
        dry_run=dry_run,
    )
    verb = "would remove" if dry_run else "removed"
    for item in report.removed:
        console.print(f"{verb} {escape(item.path)} ({item.bytes:,} bytes): {item.why}")
    pins = ", ".join(f"{name} {versions}" for name, versions in report.pinned.items() if versions)
    console.print(f"pinned by training sets: {pins or 'none'}")
    console.print(
        f"{verb} {len(report.removed)} item(s), {report.bytes_freed:,} bytes "
        f"({report.bytes_freed / 2**20:.1f} MiB) freed"
    )
