"""Every plot scoreloop draws: one module, one look, PNGs that are the same bytes for the same data.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas attached rather than
through ``pyplot``: no global backend switch, no figure registry to close, so drawing is safe in
a Dagster worker, a DVC stage or a test alike. PNGs carry no timestamp, so the same figure gives
the same bytes (evaluation plots are DVC outputs).

Each plot is a ``*_figure`` function (data in, :class:`Figure` out: what the tests inspect) and a
``plot_*`` / :func:`evaluation_pngs` wrapper that saves it. The look, decided once here:

- models keep one style everywhere (:data:`ROLE_STYLES`): the challenger a solid red line with
  circles, the champion a dashed blue line with squares, the baseline a dotted grey line with
  triangles, so two curves on top of each other stay distinguishable;
- legends sit outside the axes (:func:`legend_outside`), never over the data;
- counts are in the labels (slice rows, confusion cells), intervals are drawn where they exist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from pipelines.metrics import auc_interval

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from pipelines.drift import DistributionView

#: Every PNG is saved at this resolution.
DPI = 80
#: Height of a plot over batches, and its minimum width (inches).
HEIGHT = 4.0
MIN_WIDTH = 6.0
#: Width given to each batch of a plot over batches, so the batch labels stay readable.
WIDTH_PER_BATCH = 0.35
#: Legend font size (every legend).
LEGEND_SIZE = 8


@dataclass(frozen=True)
class Style:
    """How one series is drawn: colour, line style, marker (and its z-order)."""

    color: str
    linestyle: str
    marker: str
    zorder: float = 2.0

    def kwargs(self) -> dict[str, Any]:
        return {
            "color": self.color,
            "linestyle": self.linestyle,
            "marker": self.marker,
            "zorder": self.zorder,
        }


#: One style per model role. The challenger is drawn on top (highest z-order) and solid; the
#: champion dashed and wider, so a challenger on the same curve still shows the champion's dashes.
ROLE_STYLES: dict[str, Style] = {
    "challenger": Style("#d62728", "-", "o", 3.0),
    "champion": Style("#1f77b4", "--", "s", 2.5),
    "baseline": Style("#7f7f7f", ":", "^", 2.0),
}
#: Styles for series without a role (features over batches): colours x line styles x markers.
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: Points of a curve that get a marker (markers every n points, so the line itself stays clean).
MARKERS_PER_CURVE = 10


def role_style(role: str) -> Style:
    """The style of a model role (an unknown role gets a series style of its own)."""
    if role in ROLE_STYLES:
        return ROLE_STYLES[role]
    return series_style(sum(map(ord, role)))


def series_style(i: int) -> Style:
    """The ``i``-th series style: no two of the first 32 share colour, line style and marker."""
    return Style(
        _COLORS[i % len(_COLORS)],
        _LINESTYLES[(i // len(_COLORS)) % len(_LINESTYLES)],
        _MARKERS[i % len(_MARKERS)],
    )


def new_figure(width: float = MIN_WIDTH, height: float = HEIGHT) -> tuple[Figure, Axes]:
    """A figure with one axes, drawn by the Agg backend (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def batches_figure(batches: Sequence[str], extra_width: float = 2.0) -> tuple[Figure, Axes]:
    """A figure for a series over ``batches``: x positions 0..n-1 labelled with the batch ids
    (``extra_width`` inches on the right for a legend outside the axes)."""
    fig, ax = new_figure(max(MIN_WIDTH, WIDTH_PER_BATCH * len(batches)) + extra_width, HEIGHT)
    ax.set_xticks(range(len(batches)), list(batches), rotation=60, fontsize=7)
    ax.grid(alpha=0.3)
    return fig, ax


def legend_outside(ax: Axes, title: str | None = None) -> None:
    """The legend to the right of the axes, outside the plot area (it never covers data)."""
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize=LEGEND_SIZE,
        title=title,
        title_fontsize=LEGEND_SIZE,
        frameon=False,
    )


def save_png(fig: Figure, path: Path) -> Path:
    """Lay out ``fig`` and write it to ``path`` as a PNG (folders created); returns ``path``.

    ``bbox_inches="tight"`` grows the image to hold a legend outside the axes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    # No "Software" entry: the same figure gives the same bytes (a DVC hash, a data version).
    fig.savefig(path, dpi=DPI, metadata={"Software": None}, bbox_inches="tight")
    return path


# ---------------------------------------------------------------- evaluation (challenger vs ...)


def _model_label(role: str, data: Mapping[str, Any]) -> str:
    version = data.get("version")
    return f"{role} {version}" if version else role


def _markevery(n: int) -> int:
    return max(1, n // MARKERS_PER_CURVE)


def _diagonal(ax: Axes, label: str) -> None:
    ax.plot([0, 1], [0, 1], color="black", linestyle=(0, (1, 3)), linewidth=0.8, label=label)


def _model_curve(
    ax: Axes,
    role: str,
    points: Sequence[Mapping[str, Any]],
    xy: tuple[str, str],
    label: str,
    *,
    markevery: bool = True,
) -> None:
    """One model's curve (its role's style; the champion drawn heavier, so a challenger on top
    of it stays visible)."""
    x, y = xy
    ax.plot(
        [p[x] for p in points],
        [p[y] for p in points],
        linewidth=2.2 if role == "champion" else 1.5,
        markevery=_markevery(len(points)) if markevery else None,
        markersize=5 if markevery else 6,
        label=label,
        **role_style(role).kwargs(),
    )


def _finish_unit_square(ax: Axes, xlabel: str, ylabel: str, title: str) -> None:
    """Axes labels, title, the [0, 1] square, a grid and the legend outside the plot."""
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.grid(alpha=0.3)
    legend_outside(ax)


def roc_figure(evaluation: Mapping[str, Any]) -> Figure:
    """ROC curve of every model on the holdout, AUC in the legend."""
    fig, ax = new_figure(6.5, 4.5)
    models = evaluation["models"]
    for role, curve in evaluation["curves"].items():
        auc = models[role]["overall"]["roc_auc"]
        label = f"{_model_label(role, models[role])} (AUC {_fmt(auc, 4)})"
        _model_curve(ax, role, curve["roc"], ("fpr", "tpr"), label)
    _diagonal(ax, "random (AUC 0.5)")
    _finish_unit_square(
        ax,
        "false positive rate",
        "true positive rate",
        f"ROC ({evaluation['holdout_rows']:,} holdout rows)",
    )
    return fig


def pr_figure(evaluation: Mapping[str, Any]) -> Figure:
    """Precision-recall curve of every model, PR AUC (average precision) in the legend."""
    fig, ax = new_figure(6.5, 4.5)
    models = evaluation["models"]
    for role, curve in evaluation["curves"].items():
        auc = models[role]["overall"]["pr_auc"]
        label = f"{_model_label(role, models[role])} (PR AUC {_fmt(auc, 4)})"
        _model_curve(ax, role, curve.get("pr", []), ("recall", "precision"), label)
    rate = next(iter(models.values()))["overall"]["positive_rate"]
    if rate is not None:
        ax.axhline(
            rate, color="black", linestyle=(0, (1, 3)), linewidth=0.8, label=f"random ({rate:.3f})"
        )
    _finish_unit_square(ax, "recall", "precision", "Precision-recall (holdout)")
    return fig


def calibration_figure(evaluation: Mapping[str, Any]) -> Figure:
    """Reliability curve of every model (one marker per score bin) against the diagonal."""
    fig, ax = new_figure(6.5, 4.5)
    for role, data in evaluation["models"].items():
        label = f"{_model_label(role, data)} (Brier {_fmt(data['overall'].get('brier'), 4)})"
        xy = ("mean_predicted", "fraction_positive")
        _model_curve(ax, role, data["calibration"], xy, label, markevery=False)
    _diagonal(ax, "perfectly calibrated")
    title = "Calibration (holdout, 10 score bins)"
    _finish_unit_square(ax, "mean predicted probability", "fraction positive", title)
    return fig


def confusion_figure(evaluation: Mapping[str, Any]) -> Figure:
    """Confusion matrix of every model at its own threshold: counts and share of the true class."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = evaluation["models"]
    fig = Figure(figsize=(3.2 * len(models), 3.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, (role, data) in zip(axes, models.items(), strict=True):
        o = data["overall"]
        cells = np.array([[o["tn"], o["fp"]], [o["fn"], o["tp"]]], dtype=np.float64)
        shares = cells / np.maximum(cells.sum(axis=1, keepdims=True), 1.0)
        ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for (i, j), count in np.ndenumerate(cells):
            ax.text(
                j,
                i,
                f"{int(count):,}\n{shares[i, j]:.1%}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if shares[i, j] > 0.6 else "black",
            )
        ax.set_xticks([0, 1], ["negative", "positive"], fontsize=8)
        ax.set_yticks([0, 1], ["negative", "positive"], fontsize=8)
        ax.set_xlabel("decision", fontsize=8)
        ax.set_ylabel("label", fontsize=8)
        ax.set_title(
            f"{_model_label(role, data)}\nthreshold {_fmt(o['threshold'], 3)}",
            fontsize=9,
            color=role_style(role).color,
        )
    return fig


def threshold_figure(evaluation: Mapping[str, Any], role: str = "challenger") -> Figure:
    """Precision, recall and reject rate (score < threshold) of one model over thresholds, its
    chosen threshold marked."""
    fig, ax = new_figure(6.5, 4.5)
    data = evaluation["models"][role]
    points = evaluation["curves"][role].get("thresholds", [])
    x = [p["threshold"] for p in points]
    series = (
        ("precision", "precision", series_style(0)),
        ("recall", "recall", series_style(1)),
        ("reject_rate", "reject rate (score < threshold)", series_style(2)),
    )
    for key, label, style in series:
        ax.plot(
            x,
            [math.nan if p[key] is None else p[key] for p in points],
            markevery=_markevery(len(points)),
            markersize=4,
            label=label,
            **style.kwargs(),
        )
    chosen = data["overall"]["threshold"]
    ax.axvline(chosen, color="black", linewidth=1.2, label=f"chosen threshold {_fmt(chosen, 3)}")
    title = f"{_model_label(role, data)}: precision / recall / reject rate"
    _finish_unit_square(ax, "threshold", "share", title)
    return fig


@dataclass(frozen=True)
class SliceRow:
    """One slice value of the slice plot: its label (with the row count) and each model's AUC."""

    label: str
    rows: int
    #: role -> (AUC, low, high) of the 95% interval.
    auc: dict[str, tuple[float, float, float]]


def slice_rows(evaluation: Mapping[str, Any]) -> tuple[list[SliceRow], list[str]]:
    """The slice values the slice plot shows (an AUC for some model) and those it cannot (one
    class only: no AUC), each labelled ``column=value (n=rows)``."""
    models = evaluation["models"]
    first = next(iter(models.values()))
    shown: list[SliceRow] = []
    skipped: list[str] = []
    for column, values in first["slices"].items():
        for value, metrics in values.items():
            label = f"{column}={value} (n={metrics['rows']:,})"
            auc: dict[str, tuple[float, float, float]] = {}
            for role, data in models.items():
                m = data["slices"][column].get(value)
                if m is None or m.get("roc_auc") is None:
                    continue
                positives = round(m["rows"] * (m["positive_rate"] or 0.0))
                low, high = auc_interval(m["roc_auc"], positives, m["rows"] - positives)
                auc[role] = (float(m["roc_auc"]), low, high)
            if auc:
                shown.append(SliceRow(label, int(metrics["rows"]), auc))
            else:
                skipped.append(label)
    return shown, skipped


def slices_figure(evaluation: Mapping[str, Any]) -> Figure:
    """ROC AUC per slice value, one row per value (with its row count), every model a marker with
    its 95% interval (Hanley-McNeil); values with one class only are listed, not drawn."""
    rows, skipped = slice_rows(evaluation)
    roles = list(evaluation["models"])
    fig, ax = new_figure(7.5, max(3.0, 0.32 * len(rows) + 1.6))
    offsets = np.linspace(-0.25, 0.25, len(roles)) if len(roles) > 1 else np.zeros(1)
    for offset, role in zip(offsets, roles, strict=True):
        ys, xs, lows, highs = [], [], [], []
        for i, row in enumerate(rows):
            if role in row.auc:
                auc, low, high = row.auc[role]
                ys.append(i + offset)
                xs.append(auc)
                lows.append(auc - low)
                highs.append(high - auc)
        style = role_style(role)
        ax.errorbar(
            xs,
            ys,
            xerr=[lows, highs],
            fmt=style.marker,
            color=style.color,
            ecolor=style.color,
            elinewidth=1.0,
            capsize=2,
            markersize=5,
            linestyle="none",
            zorder=style.zorder,
            label=_model_label(role, evaluation["models"][role]),
        )
    ax.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first slice on top, no empty band above or below
    lows_all = [v[1] for r in rows for v in r.auc.values()]
    highs_all = [v[2] for r in rows for v in r.auc.values()]
    if lows_all:
        ax.set_xlim(max(0.0, min(lows_all) - 0.02), min(1.0, max(highs_all)) + 0.01)
    title = "ROC AUC per slice (holdout, 95% interval)"
    if skipped:
        title += "\nnot drawn (one class only): " + ", ".join(skipped[:6])
        title += " …" if len(skipped) > 6 else ""
    ax.set(xlabel="ROC AUC", title=title)
    ax.title.set_fontsize(9)
    ax.grid(axis="x", alpha=0.3)
    legend_outside(ax)
    return fig


#: The evaluation PNGs, by the name of their path in :func:`evaluation_pngs`' result.
EVALUATION_FIGURES = {
    "roc_png": ("roc.png", roc_figure),
    "pr_png": ("pr.png", pr_figure),
    "calibration_png": ("calibration.png", calibration_figure),
    "confusion_png": ("confusion.png", confusion_figure),
    "threshold_png": ("threshold.png", threshold_figure),
    "slices_png": ("slices.png", slices_figure),
}
#: The evaluation PNG files (dvc.yaml outputs of the evaluate stage).
EVALUATION_FILES = tuple(name for name, _ in EVALUATION_FIGURES.values())


def evaluation_pngs(evaluation: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """Every evaluation PNG (:data:`EVALUATION_FIGURES`) written into ``folder``."""
    return {
        key: save_png(draw(evaluation), folder / name)
        for key, (name, draw) in EVALUATION_FIGURES.items()
    }


# ---------------------------------------------------------------- monitoring (over batches)


def drift_history_figure(
    drift: pl.DataFrame, *, threshold: float, metrics: Sequence[str], top: int = 8
) -> Figure:
    """PSI per feature across batches: the ``top`` features by their largest PSI."""
    frame = drift.filter(pl.col("metric").is_in(list(metrics))).sort("batch_id")
    batches = sorted(frame["batch_id"].unique().to_list())
    worst = (
        frame.group_by("feature")
        .agg(pl.col("value").max())
        .sort(["value", "feature"], descending=[True, False])
        .head(top)["feature"]
        .to_list()
    )
    fig, ax = batches_figure(batches)
    x = {b: i for i, b in enumerate(batches)}
    for i, feature in enumerate(worst):
        part = frame.filter(pl.col("feature") == feature)
        ax.plot(
            [x[b] for b in part["batch_id"].to_list()],
            part["value"].to_list(),
            markersize=4,
            label=feature,
            **series_style(i).kwargs(),
        )
    ax.axhline(threshold, linestyle="--", color="red", linewidth=1, label=f"threshold {threshold}")
    ax.set(xlabel="batch", ylabel="PSI vs training", title=f"Drift over batches (top {top} by PSI)")
    legend_outside(ax, title="feature")
    return fig


def plot_drift_history(
    drift: pl.DataFrame, path: Path, *, threshold: float, metrics: Sequence[str], top: int = 8
) -> Path:
    """PNG of :func:`drift_history_figure`."""
    return save_png(
        drift_history_figure(drift, threshold=threshold, metrics=metrics, top=top), path
    )


@dataclass(frozen=True)
class DriftGrid:
    """The drift heatmap's numbers: ``values[i, j]`` of feature ``i`` in batch ``j`` (NaN: not
    measured), and whether that cell drifted."""

    features: list[str]
    batches: list[str]
    values: np.ndarray
    drifted: np.ndarray


def drift_grid(drift: pl.DataFrame, metrics: Sequence[str], last: str | None = None) -> DriftGrid:
    """Features (alphabetical, ``last`` at the bottom) x batches of one metric per feature."""
    frame = drift.filter(pl.col("metric").is_in(list(metrics)))
    batches = sorted(frame["batch_id"].unique().to_list())
    names = sorted(set(frame["feature"].to_list()))
    features = [f for f in names if f != last] + ([last] if last in names else [])
    row = {f: i for i, f in enumerate(features)}
    col = {b: j for j, b in enumerate(batches)}
    values = np.full((len(features), len(batches)), np.nan)
    drifted = np.zeros((len(features), len(batches)), dtype=bool)
    for r in frame.iter_rows(named=True):
        i, j = row[r["feature"]], col[r["batch_id"]]
        values[i, j] = np.nan if r["value"] is None else r["value"]
        drifted[i, j] = bool(r["drifted"])
    return DriftGrid(features, batches, values, drifted)


#: Heatmaps with at most this many cells print each cell's value.
ANNOTATE_CELLS = 600


def drift_heatmap_figure(grid: DriftGrid, *, threshold: float, metric: str = "PSI") -> Figure:
    """Heatmap of ``grid`` (features x batches); drifted cells framed, values printed when the
    grid is small enough to read them."""
    from matplotlib.patches import Rectangle

    n_features, n_batches = grid.values.shape
    fig, ax = new_figure(max(MIN_WIDTH, 0.42 * n_batches + 3.0), max(3.0, 0.32 * n_features + 1.8))
    finite = grid.values[np.isfinite(grid.values)]
    top = max(2.0 * threshold, float(finite.max()) if finite.size else 0.0)
    image = ax.imshow(
        np.ma.masked_invalid(grid.values),
        cmap="YlOrRd",
        vmin=0.0,
        vmax=top,
        aspect="auto",
        interpolation="nearest",
    )
    colorbar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    colorbar.set_label(f"{metric} (drifted at {threshold:g})", fontsize=8)
    colorbar.ax.axhline(threshold, color="black", linewidth=1.5)
    if grid.values.size <= ANNOTATE_CELLS:
        for (i, j), value in np.ndenumerate(grid.values):
            if np.isfinite(value):
                ax.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if value > 0.7 * top else "black",
                    fontweight="bold" if grid.drifted[i, j] else "normal",
                )
    for i, j in zip(*np.nonzero(grid.drifted), strict=True):
        ax.add_patch(
            Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5)
        )
    ax.set_xticks(range(n_batches), grid.batches, rotation=60, fontsize=7)
    ax.set_yticks(range(n_features), grid.features, fontsize=8)
    ax.set(
        xlabel="batch",
        title=f"{metric} per feature and batch vs training (framed: drifted)",
    )
    ax.title.set_fontsize(10)
    return fig


def plot_drift_heatmap(grid: DriftGrid, path: Path, *, threshold: float) -> Path:
    """PNG of :func:`drift_heatmap_figure`."""
    return save_png(drift_heatmap_figure(grid, threshold=threshold), path)


def distribution_figure(view: DistributionView) -> Figure:
    """Reference vs batch shares of one feature, side by side per bin."""
    fig, ax = new_figure(max(6.0, 0.45 * len(view.labels)) + 2.0, 4.0)
    x = np.arange(len(view.labels))
    ax.bar(x - 0.2, view.reference, width=0.4, label="reference (training)", color="#7f7f7f")
    ax.bar(x + 0.2, view.current, width=0.4, label="batch", color="#d62728", hatch="//")
    ax.set_xticks(x, view.labels, rotation=60, fontsize=7)
    ax.set_xlim(-0.6, len(view.labels) - 0.4)
    ax.set(ylabel="share of rows", title=f"{view.feature}: reference vs batch")
    legend_outside(ax)
    return fig


def plot_distribution(view: DistributionView, path: Path) -> Path:
    """PNG of :func:`distribution_figure`."""
    return save_png(distribution_figure(view), path)


def _reference_lines(ax: Axes, reference_auc: float | None, tolerance: float | None) -> None:
    if reference_auc is None:
        return
    ax.axhline(reference_auc, color="grey", linestyle=":", label=f"reference {reference_auc:.3f}")
    if tolerance is not None:
        ax.axhline(
            reference_auc - tolerance,
            color="red",
            linestyle="--",
            linewidth=1,
            label=f"alert floor {reference_auc - tolerance:.3f}",
        )


def auc_history_figure(
    performance: pl.DataFrame, *, reference_auc: float | None, tolerance: float
) -> Figure:
    """Realised ROC AUC per batch, with the reference AUC and the alert floor."""
    frame = performance.sort("batch_id")
    batches = frame["batch_id"].to_list()
    fig, ax = batches_figure(batches)
    ax.plot(
        range(len(batches)),
        frame["roc_auc"].to_list(),
        label="realised ROC AUC",
        **series_style(0).kwargs(),
    )
    _reference_lines(ax, reference_auc, tolerance)
    ax.set(xlabel="batch", ylabel="ROC AUC", title="Realised performance over batches")
    legend_outside(ax)
    return fig


def plot_auc_history(
    performance: pl.DataFrame, path: Path, *, reference_auc: float | None, tolerance: float
) -> Path:
    """PNG of :func:`auc_history_figure`."""
    return save_png(
        auc_history_figure(performance, reference_auc=reference_auc, tolerance=tolerance), path
    )


def estimated_history_figure(frame: pl.DataFrame, *, reference_auc: float | None) -> Figure:
    """Estimated (CBPE) and realised ROC AUC per batch, and the reference AUC."""
    batches = frame["batch_id"].to_list()
    fig, ax = batches_figure(batches)
    x = list(range(len(batches)))
    ax.plot(
        x,
        frame["estimated_roc_auc"].to_list(),
        label="estimated ROC AUC (CBPE)",
        **series_style(1).kwargs(),
    )
    ax.plot(x, frame["roc_auc"].to_list(), label="realised ROC AUC", **series_style(0).kwargs())
    _reference_lines(ax, reference_auc, None)
    ax.set(xlabel="batch", ylabel="ROC AUC", title="Estimated vs realised performance")
    legend_outside(ax)
    return fig


def plot_estimated_history(frame: pl.DataFrame, path: Path, *, reference_auc: float | None) -> Path:
    """PNG of :func:`estimated_history_figure`."""
    return save_png(estimated_history_figure(frame, reference_auc=reference_auc), path)


def _fmt(value: float | None, digits: int) -> str:
    return "none" if value is None else f"{value:.{digits}f}"
