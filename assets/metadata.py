"""Dagster metadata values shared by the asset modules."""

import base64
from collections.abc import Iterable
from pathlib import Path

import dagster as dg


def png_image(path: Path) -> str:
    """The markdown of an inline image (base64)."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f"![{path.stem}](data:image/png;base64,{data})"


def png_markdown(path: Path) -> dg.MetadataValue:
    """An inline markdown image (base64), so the plot shows in the Dagster UI itself."""
    return dg.MetadataValue.md(png_image(path))


def bullet_list(lines: Iterable[str]) -> dg.MetadataValue:
    """A markdown bullet list, one item per line."""
    return dg.MetadataValue.md("\n".join(f"- {line}" for line in lines))
