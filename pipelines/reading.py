"""Reading a source table as found: parquet, or CSV in whatever dialect it was written.

A CSV file is sniffed once (by :func:`sniff_source`) from its first bytes: separator (``,``,
``;``, tab, ``|``, and ``", "`` which is read as ``,`` with the values trimmed), whether the first
line is a header, and which missing-value markers occur. The result is a :class:`SourceSpec`
recorded in the dataset spec, so every later reader (the simulator, validation of CSV batch
files) applies the same reading. CSV is scanned as text (``infer_schema=False``) and typed later
from the whole file, so a value far down the file can never change a type guessed from the first
rows.

Everything here returns LazyFrames: a draft streams the file (it may be larger than memory).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from pipelines.errors import ScoreloopError

#: Values read as missing (after trimming), in every CSV source and CSV batch file.
DEFAULT_MISSING_MARKERS: tuple[str, ...] = ("", "?", "NA", "N/A", "NaN", "null", "NULL", "None")
#: Separators tried when sniffing (``", "`` is ``,`` plus trimming).
SEPARATORS: tuple[str, ...] = (",", ";", "\t", "|")
#: Bytes read from the start of a CSV file to sniff its dialect.
SNIFF_BYTES = 1 << 16

PARQUET_SUFFIXES = {".parquet", ".pq"}
CSV_SUFFIXES = {".csv", ".txt", ".tsv", ".data"}


class SourceError(ScoreloopError, ValueError):
    """A source file cannot be read as a table."""


class SourceSpec(BaseModel):
    """How the source file is read; recorded in the spec by ``dataset infer``."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["parquet", "csv"]
    separator: str = ","
    header: bool = True
    columns: list[str] | None = Field(
        default=None, description="Column names given to a header-less CSV file."
    )
    trim: bool = Field(True, description="Leading/trailing whitespace is stripped from values.")
    missing_values: list[str] = Field(
        default_factory=list, description="Values (after trimming) read as missing."
    )


def source_format(path: Path) -> Literal["parquet", "csv"]:
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        return "csv"
    raise SourceError(f"{path}: unsupported format {suffix!r} (use .parquet or .csv)")


def _head_lines(path: Path) -> list[str]:
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    text = head.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if len(head) == SNIFF_BYTES and lines:
        lines = lines[:-1]  # the last line may be cut
    return [line for line in lines if line.strip()]


def _split(lines: list[str], separator: str) -> list[list[str]]:
    return [[v.strip() for v in row] for row in csv.reader(lines, delimiter=separator)]


def _sniff_separator(lines: list[str], path: Path) -> str:
    """The separator that splits every sniffed line into the same number (> 1) of fields."""
    best: tuple[int, str] | None = None
    for separator in SEPARATORS:
        widths = {len(row) for row in _split(lines, separator)}
        if len(widths) == 1 and (width := widths.pop()) > 1 and (best is None or width > best[0]):
            best = (width, separator)
    if best is None:
        raise SourceError(
            f"{path}: cannot tell the separator: no one of {[*SEPARATORS]} splits the first "
            f"{len(lines)} lines into the same number of fields"
        )
    return best[1]


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _looks_like_header(rows: list[list[str]], markers: set[str]) -> bool:
    """A header when the first row is all distinct non-numeric names and some column below it
    holds numbers (or, in an all-text table, when no first-row value occurs again in its column)."""
    first, body = rows[0], rows[1:]
    if not body or len(set(first)) != len(first) or any(v in markers for v in first):
        return not body and not any(_is_number(v) for v in first)
    if any(_is_number(v) for v in first):
        return False
    numeric_below = any(
        all(_is_number(row[i]) for row in body if row[i] not in markers) for i in range(len(first))
    )
    if numeric_below:
        return True
    return all(all(row[i] != first[i] for row in body) for i in range(len(first)))


def sniff_source(path: str | Path, *, header: bool | None = None) -> SourceSpec:
    """Sniff how ``path`` is read: format, and for CSV separator, header and missing markers.

    Args:
        path: a parquet or CSV file.
        header: force (True) or deny (False, ``--no-header``) a header line; None detects it.
    """
    path = Path(path)
    if not path.exists():
        raise SourceError(f"file not found: {path}")
    fmt = source_format(path)
    if fmt == "parquet":
        return SourceSpec(format="parquet", trim=False)
    lines = _head_lines(path)
    if not lines:
        raise SourceError(f"{path}: the file is empty")
    separator = _sniff_separator(lines, path)
    rows = _split(lines, separator)
    markers = set(DEFAULT_MISSING_MARKERS)
    has_header = _looks_like_header(rows, markers) if header is None else header
    body = rows[1:] if has_header else rows
    seen = sorted({v for row in body for v in row if v in markers})
    columns = None if has_header else [f"column_{i + 1}" for i in range(len(rows[0]))]
    # Empty is always missing (an empty field has no other reading); the others are listed as
    # found in the sniffed lines and may be edited in the spec.
    missing = sorted({"", *seen, "?", "NA", "N/A"})
    # Trimming costs a pass over every value: on when the sniffed lines have padded values.
    raw = csv.reader(lines, delimiter=separator)
    padded = any(v != v.strip() for row in raw for v in row)
    return SourceSpec(
        format="csv",
        separator=separator,
        header=has_header,
        columns=columns,
        trim=padded,
        missing_values=missing,
    )


def clean_text(frame: pl.LazyFrame, source: SourceSpec) -> pl.LazyFrame:
    """Trim string values and map the source's missing markers to null."""
    strings = [name for name, dtype in frame.collect_schema().items() if dtype == pl.String]
    if not strings:
        return frame
    exprs = []
    for name in strings:
        value = pl.col(name).str.strip_chars(" \t") if source.trim else pl.col(name)
        if source.missing_values:
            value = pl.when(value.is_in(source.missing_values)).then(None).otherwise(value)
        exprs.append(value.alias(name))
    return frame.with_columns(exprs)


def scan_source(
    path: str | Path, source: SourceSpec | None = None, *, numbers: Sequence[str] = ()
) -> pl.LazyFrame:
    """Scan the source lazily: parquet as typed, CSV as trimmed text with missing markers null.

    ``numbers`` (CSV only): columns the reader parses as Float64 instead of text (a value that
    is not a number then fails the collect, naming the column).
    """
    path = Path(path)
    if not path.exists():
        raise SourceError(f"file not found: {path}")
    source = source or SourceSpec(format=source_format(path), trim=False)
    if source.format == "parquet":
        return pl.scan_parquet(path)
    # Markers are matched by the reader itself (much faster than matching every value after
    # trimming): as found, and, in a trimmed source, also after the one space of ", "; then the
    # values are trimmed. An untrimmed source matches them as found only, as ``clean_text`` does
    # for its batch files (every marker costs a comparison per value read).
    padded = [f" {m}" for m in source.missing_values] if source.trim else []
    markers = [*source.missing_values, *padded]
    frame = pl.scan_csv(
        path,
        separator=source.separator,
        has_header=source.header,
        new_columns=source.columns,
        infer_schema=False,
        null_values=markers or None,
        encoding="utf8",
        schema_overrides=dict.fromkeys(numbers, pl.Float64) or None,
    )
    if not source.trim:
        return frame
    names = frame.collect_schema().names()
    return clean_text(frame.rename({name: name.strip() for name in names}), source)


def read_source(path: str | Path, source: SourceSpec | None = None) -> pl.DataFrame:
    """Read the whole source (see :func:`scan_source`)."""
    return scan_source(path, source).collect()
