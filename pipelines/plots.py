"""The one way pipelines draw a PNG: a matplotlib figure on the Agg canvas, saved at one dpi.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas attached rather than
through ``pyplot``: no global backend switch, no figure registry to close, so drawing is safe in
a Dagster worker, a DVC stage or a test alike. PNGs carry no timestamp, so the same figure gives
the same bytes (evaluation plots are DVC outputs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Every PNG is saved at this resolution.
DPI = 80
#: Height of a plot over batches, and its minimum width (inches).
HEIGHT = 4.0
MIN_WIDTH = 6.0
#: Width given to each batch of a plot over batches, so the batch labels stay readable.
WIDTH_PER_BATCH = 0.35


def new_figure(width: float = MIN_WIDTH, height: float = HEIGHT) -> tuple[Figure, Axes]:
    """A figure with one axes, drawn by the Agg backend (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def batches_figure(batches: Sequence[str]) -> tuple[Figure, Axes]:
    """A figure for a series over ``batches``: x positions 0..n-1 labelled with the batch ids."""
    fig, ax = new_figure(max(MIN_WIDTH, WIDTH_PER_BATCH * len(batches)), HEIGHT)
    ax.set_xticks(range(len(batches)), list(batches), rotation=60, fontsize=7)
    return fig, ax


def save_png(fig: Figure, path: Path) -> Path:
    """Lay out ``fig`` and write it to ``path`` as a PNG (folders created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    # No "Software" entry: the same figure gives the same bytes (a DVC hash, a data version).
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    return path
