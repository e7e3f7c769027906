"""Dagster metadata values shared by the asset modules: how scoreloop reads in the UI.

What the Dagster 1.13 UI renders where (``ui-core/src/metadata/MetadataEntry.tsx``):

- ``MetadataValue.table`` is drawn as a table right in the materialisation's metadata, always;
  comparisons, confusion matrices, histograms and per-feature numbers are tables
  (:func:`table`, :func:`frame_table`).
- ``MetadataValue.md`` is drawn in place only when shorter than 1,000 characters; longer (every
  inline image) is a "[Show Markdown]" link that opens it. There is no image metadata type, so a
  plot is a base64 PNG in markdown (:func:`png_markdown`), one entry per plot, named ``plot_*``
  or for what it shows.
- floats are printed with every digit they carry: :func:`number` rounds them first (4 significant
  digits), and they stay floats so the asset's "Plots" tab draws them over partitions.
"""

import base64
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

#: Significant digits of every float shown.
DIGITS = 4


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


def rounded(value: float, digits: int = DIGITS) -> float:
    """``value`` to ``digits`` significant digits (0.09996510816468947 -> 0.09997)."""
    if not math.isfinite(value) or value == 0:
        return float(value)
    return float(f"{value:.{digits}g}")


def number(value: float | None, missing: str = "unknown", digits: int = DIGITS) -> Any:
    """A rounded float metadata value, or the text ``missing`` when there is no number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return dg.MetadataValue.float(rounded(float(value), digits))


def cell(value: Any, digits: int = DIGITS) -> str | int | bool:
    """A table cell: floats rounded and printed as such, None empty, the rest as it is."""
    if value is None:
        return ""
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{rounded(value, digits):g}"
    return str(value)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> dg.MetadataValue:
    """A table shown in place: ``columns`` x ``rows`` (cells through :func:`cell`)."""
    records = [
        dg.TableRecord({c: cell(v) for c, v in zip(columns, row, strict=True)}) for row in rows
    ]

    def kind(column: str) -> str:
        values = [r.data[column] for r in records]
        if values and all(isinstance(v, bool) for v in values):
            return "bool"
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "int"
        return "string"

    schema = dg.TableSchema(columns=[dg.TableColumn(c, kind(c)) for c in columns])
    return dg.MetadataValue.table(records, schema=schema)


def frame_table(frame: pl.DataFrame) -> dg.MetadataValue:
    """A small polars frame as a table shown in place."""
    return table(frame.columns, frame.iter_rows())


# ---------------------------------------------------------------- evaluation


#: Rows of the evaluation comparison table (after the ``version`` row; ``rows`` closes it).
COMPARED_METRICS = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "precision",
    "recall",
    "f1",
    "threshold",
    "positive_rate",
)
#: The comparison's model columns, in this order (those present).
ROLES = ("challenger", "champion", "baseline")


def _signed(value: float) -> str:
    return f"{rounded(value, 3):+g}"


def comparison_table(evaluation: Mapping[str, Any]) -> dg.MetadataValue:
    """The evaluation as one table: a row per metric, a column per model (challenger, champion,
    baseline) and ``delta`` = challenger - champion (challenger - baseline without a champion).
    The first row names each model's version."""
    models = evaluation["models"]
    roles = [r for r in ROLES if r in models] + [r for r in models if r not in ROLES]
    against = "champion" if "champion" in models else "baseline"
    columns = ["metric", *roles, f"delta vs {against}"]
    rows: list[list[Any]] = [
        ["version", *(models[r].get("version") or "-" for r in roles), ""],
    ]
    for metric in COMPARED_METRICS:
        values = [models[r]["overall"].get(metric) for r in roles]
        challenger = models.get("challenger", {}).get("overall", {}).get(metric)
        other = models.get(against, {}).get("overall", {}).get(metric)
        delta = (
            _signed(float(challenger) - float(other))
            if challenger is not None and other is not None
            else ""
        )
        rows.append([metric, *values, delta])
    rows.append(["rows", *(f"{models[r]['overall']['rows']:,}" for r in roles), ""])
    return table(columns, rows)


def confusion_table(evaluation: Mapping[str, Any]) -> dg.MetadataValue:
    """Each model's confusion matrix at its own threshold, one row per model."""
    columns = ["model", "threshold", "tp", "fp", "fn", "tn", "precision", "recall"]
    rows = []
    for role, data in evaluation["models"].items():
        o = data["overall"]
        label = f"{role} {data['version']}" if data.get("version") else role
        rows.append([label, *(o[c] for c in columns[1:])])
    return table(columns, rows)


# ---------------------------------------------------------------- scores

#: Width in characters of the longest bar of a histogram table.
BAR_WIDTH = 30


def histogram_table(histogram: Mapping[str, int]) -> dg.MetadataValue:
    """A histogram (bin label -> rows) as a table with a share and a text bar per bin."""
    total = sum(histogram.values()) or 1
    most = max(histogram.values(), default=0) or 1
    rows = [
        [label, count, f"{count / total:.1%}", "█" * round(BAR_WIDTH * count / most)]
        for label, count in histogram.items()
    ]
    return table(["score", "rows", "share", "bar"], rows)
