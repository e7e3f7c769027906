"""``dataset infer``: draft a spec, a batching plan and dataset-sized params from a file as found.

The draft streams the WHOLE file (polars lazy scans, streaming engine) in three passes: column
statistics (and, for CSV text, which types every value parses as), ranges and value sets, and the
time column's rows per day. Nothing is sampled except the first values a time format is guessed
from (the guess is then checked on every row).

The heuristics, each documented in docs/data.md:

* **Types (CSV).** A text column is ``int`` when every non-missing value parses as an integer,
  else ``float`` when every value parses as a number, else ``string``.
* **Codes vs counts.** An integer column is numeric unless it is a code: at most
  :data:`MAX_INFERRED_CATEGORIES` distinct values and either a name that says so (``code``,
  ``type``, ``category``, ``class``, ``status``, ``group``, ``zip``, ...) or values sparse over
  their range (fewer than half the integers between min and max occur, e.g. 110, 220, 950).
* **Ranges** are the file's min/max widened by :data:`RANGE_SLACK` of the range on each side
  (never below 0 for a column that has no negative value), so tomorrow's slightly larger value is
  not quarantined. **Allowed values** are every value of the file.
* **Positive class**: the rarer class, unless ``--positive`` names one.
* **Batching**: see :func:`plan_batching`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import polars as pl

from pipelines.reading import SourceSpec, scan_source, sniff_source
from pipelines.spec import (
    BatchBy,
    ColumnSpec,
    DatasetSpec,
    DType,
    KeySpec,
    SpecError,
)

#: Above this many distinct values an integer or string column is not drafted as categorical.
MAX_INFERRED_CATEGORIES = 64
#: Share of a numeric column's range added below its min and above its max.
RANGE_SLACK = 0.1
#: Name parts that say an integer column holds codes, not quantities.
CODE_NAME = re.compile(
    r"(code|type|categ|class|status|group|kind|zip|postal|region|state|country|flag|cd$|_id$)",
    re.IGNORECASE,
)
#: The simulator never lands more batches than this (a warning and a refusal, never thousands
#: of one-row files).
MAX_BATCHES = 500
#: An explicit ``--batch-by`` whose median batch would have fewer rows is refused.
MIN_BATCH_ROWS = 20
#: The default batching aims for batches of at least this many rows ...
DEFAULT_BATCH_ROWS = 100
#: ... and for this many batches in all (a training window of 12 plus newer batches to score).
DEFAULT_BATCHES = (16, 60)
#: Gate floor written for a dataset's first model: ROC AUC 0.5 is chance; demand a clear margin.
FIRST_MODEL_FLOOR = 0.55
#: First rows read before the pass (time format guess, which columns can be categorical).
HEAD_ROWS = 2000
#: Rows of the time column a format is guessed from (the guess is then checked on every row).
FORMAT_SAMPLE = 500
#: strptime formats tried, in this order (month-first before day-first: pass --time-format for
#: day-first dates that would also parse month-first).
TIME_FORMATS: tuple[str, ...] = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
    "%Y-%m",
    "%Y/%m",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%m/%d/%y %H:%M:%S",
    "%m/%d/%y %H:%M",
    "%m/%d/%y",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%d %b %Y",
    "%b %d %Y",
    "%Y%m%d",
)
ISO_DATETIME = "%Y-%m-%dT%H:%M:%S"
GENERATED_ID = "row_id"

TimeKind = Literal["datetime", "year", "integer"]


class InferError(SpecError):
    """The file cannot be drafted as asked; the message names the column and the fix."""


@dataclass
class BatchPlan:
    """How the simulator will cut the table: ``by`` periods, each into ``per_period`` batches."""

    by: BatchBy
    per_period: int
    periods: int
    rows: int
    smallest: int
    median: int
    reason: str

    @property
    def batches(self) -> int:
        return self.periods * self.per_period if self.by != "rows" else self.per_period


@dataclass
class TimeProfile:
    """The time column read as time: its kind, span and rows per day (or per value)."""

    kind: TimeKind
    format: str | None
    start: object
    end: object
    counts: pl.DataFrame  # columns: key, len (key: a date, or the integer value)


@dataclass
class InferResult:
    """The draft spec, the params sized for it, and what a person should read."""

    spec: DatasetSpec
    params: dict[str, dict[str, Any]]
    rows: int
    target_counts: dict[str, int]
    positive_reason: str
    plan: BatchPlan
    time: TimeProfile | None
    guesses: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def report(self) -> list[str]:
        """The short report ``dataset infer`` prints."""
        spec = self.spec
        numeric = [c.name for c in spec.features if not c.categorical]
        codes = [c.name for c in spec.features if c.categorical and c.allowed is not None]
        text = [c.name for c in spec.features if c.categorical and c.allowed is None]
        total = sum(self.target_counts.values())
        balance = ", ".join(
            f"{value}: {count:,} ({count / total:.1%})"
            for value, count in self.target_counts.items()
        )
        lines = [
            f"{self.rows:,} rows; id {spec.id.name!r}"
            + (" (made: row position)" if spec.id.generated else "")
            + f", target {spec.target.name!r}, model name {spec.registered_name!r}",
            f"columns: {len(numeric)} numeric {numeric}",
            f"         {len(codes)} categorical with allowed values {codes}",
            f"         {len(text)} free-text categorical {text}",
            f"target balance: {balance}",
            f"positive class: {spec.positive_label!r} ({self.positive_reason})",
        ]
        plan = self.plan
        if self.time is not None:
            fmt = f", format {self.time.format!r}" if self.time.format else ""
            lines.append(
                f"time {spec.time.name!r} ({self.time.kind}{fmt}): {self.time.start} .. "
                f"{self.time.end}"
            )
        lines.append(
            f"batches: {plan.batches} ({plan.reason}); rows per batch: median {plan.median:,}, "
            f"smallest {plan.smallest:,}"
        )
        split, gate = self.params["split"], self.params["gate"]
        lines.append(
            f"params: split window {split['window_batches']} batches (validation "
            f"{split['validation_batches']}, holdout {split['holdout_batches']}), min_rows "
            f"{split['min_rows']}; gate absolute_floor {gate['absolute_floor']} (a first model "
            f"must beat chance, 0.5, clearly; raise it once you know the achievable AUC)"
        )
        lines += [f"guessed: {g}" for g in self.guesses]
        lines += [f"skipped: {s}" for s in self.skipped]
        lines += [f"check: {c}" for c in self.checks]
        return lines


def _collect(frame: pl.LazyFrame) -> pl.DataFrame:
    # Streamed (the file may be larger than memory). Common-subexpression elimination is off:
    # with dozens of aggregations over one scan it costs more than it saves (measured).
    return frame.collect(
        engine="streaming", optimizations=pl.QueryOptFlags(comm_subexpr_elim=False)
    )


def as_number(text: pl.Expr) -> pl.Expr:
    """CSV text as a number, the way polars' CSV reader parses one: leading spaces and tabs are
    skipped (trailing ones are not); null where it is not a number."""
    return text.str.strip_chars_start(" \t").cast(pl.Float64, strict=False)


def _refused_column(message: str, columns: list[str]) -> str | None:
    """The column a CSV reader's parse error names (``... at column 'x' (column number 3)``)."""
    found = re.search(r"at column '.*' \(column number (\d+)\)", message)
    if found is None or not 1 <= int(found[1]) <= len(columns):
        return None
    return columns[int(found[1]) - 1]


def _number_stats(column: str, number: pl.Expr) -> list[pl.Expr]:
    """How many of ``number`` (a column parsed as Float64, null where it does not parse) are
    numbers and whole numbers, and their min and max."""
    return [
        number.count().alias(f"{column}§float"),
        (number == number.floor()).sum().alias(f"{column}§int"),
        number.min().alias(f"{column}§min"),
        number.max().alias(f"{column}§max"),
    ]


def model_slug(name: str) -> str:
    """A registry-safe model name (GTO: lowercase letters, digits, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "model"


def _dtype_of(dtype: pl.DataType) -> DType | None:
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if dtype == pl.Boolean:
        return "bool"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "string"
    return None


def _sorted_categories(values: Sequence[str]) -> list[str]:
    """Numeric codes in numeric order ('2' before '10'), anything else alphabetically."""
    if all(v.lstrip("-").isdigit() for v in values):
        return sorted(values, key=int)
    return sorted(values)


def is_code(name: str, n_unique: int, lo: int, hi: int) -> bool:
    """Whether an integer column holds codes (categorical) rather than quantities (numeric)."""
    if n_unique > MAX_INFERRED_CATEGORIES:
        return False
    if CODE_NAME.search(name):
        return True
    return n_unique < 0.5 * (hi - lo + 1)


def widen(lo: float, hi: float, dtype: DType) -> tuple[float, float]:
    """The range a column is allowed: [lo, hi] widened by :data:`RANGE_SLACK` on each side."""
    slack = RANGE_SLACK * (hi - lo) if hi > lo else max(1.0, abs(hi) * RANGE_SLACK)
    low, high = lo - slack, hi + slack
    if lo >= 0:
        low = max(0.0, low)
    if dtype == "int":
        low, high = float(math.floor(low)), float(math.ceil(high))
    return low, high


def _guess_format(sample: pl.Series, column: str) -> str:
    for fmt in TIME_FORMATS:
        try:
            parsed = sample.str.strptime(pl.Datetime("us"), fmt, strict=True)
        except pl.exceptions.PolarsError:
            continue
        # %Y also reads "13" as the year 13: a 2-digit year must match %y instead
        if int(parsed.dt.year().min()) >= 1000:  # type: ignore[arg-type]
            return fmt
    raise InferError(
        f"time column {column!r}: values like {sample.head(3).to_list()} match none of the common "
        f"date/time formats; pass --time-format (strptime, e.g. '%d/%m/%Y %H:%M')"
    )


def time_expr(column: str, kind: TimeKind, fmt: str | None, dtype: pl.DataType) -> pl.Expr:
    """The time column as a polars Datetime (datetime kind) or Int64 (year, integer kinds)."""
    col = pl.col(column)
    if kind != "datetime":
        return col.cast(pl.Int64)
    if dtype == pl.String:
        return col.str.strptime(pl.Datetime("us"), fmt, strict=False)
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return col.dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(pl.Datetime("us"))
    return col.cast(pl.Datetime("us"))


@dataclass
class _TimeReading:
    """How the time column is read, decided before the one pass over the file."""

    column: str
    kind: TimeKind  # "integer" may become "year" once the values are known
    format: str | None
    key: pl.Expr  # the day (datetime kind) or the integer value; null when unparseable


def read_time(
    head: pl.DataFrame, column: str, dtype: pl.DataType, time_format: str | None
) -> _TimeReading:
    """Decide how to read the time column (a format is guessed from its first values, then
    checked on every row in the pass)."""
    if isinstance(dtype, (pl.Datetime, pl.Date)):
        parsed = time_expr(column, "datetime", None, dtype)
        return _TimeReading(column, "datetime", None, parsed.dt.date())
    if dtype.is_integer() and time_format is None:
        return _TimeReading(column, "integer", None, pl.col(column).cast(pl.Int64))
    if dtype == pl.String or dtype.is_integer():
        sample = head[column].cast(pl.String).drop_nulls().head(FORMAT_SAMPLE)
        if sample.is_empty():
            raise InferError(f"time column {column!r} has no values")
        fmt = time_format or _guess_format(sample, column)
        text = pl.col(column).cast(pl.String)
        # polars' cache of parsed values pays when values repeat (dates) and costs when nearly
        # every value is new (timestamps to the minute); the first rows tell which
        cache = sample.n_unique() < len(sample) // 2
        parsed = text.str.strptime(pl.Datetime("us"), fmt, strict=False, cache=cache)
        return _TimeReading(column, "datetime", fmt, parsed.dt.date())
    raise InferError(
        f"time column {column!r} has type {dtype}; use a datetime, date, text or integer "
        f"(e.g. year) column, or leave --time out to batch by row order"
    )


TIME_KEY = "§key"


def time_aggregations(reading: _TimeReading) -> list[pl.Expr]:
    """The time column's part of the one pass: rows per key (the parsed key is a column of the
    scanned frame, :data:`TIME_KEY`, so each value is parsed once) and missing values."""
    return [
        pl.col(TIME_KEY).alias("key").value_counts(name="len").implode().alias("§time"),
        pl.col(reading.column).null_count().alias("§time_nulls"),
    ]


def time_profile(reading: _TimeReading, row: dict[str, Any], frame: pl.LazyFrame) -> TimeProfile:
    """The time profile from the pass's results; refuses missing or unparseable times."""
    column = reading.column
    if row["§time_nulls"]:
        raise InferError(
            f"time column {column!r} has {row['§time_nulls']:,} missing values; every row needs "
            f"an event time (fill them, or leave --time out to batch by row order)"
        )
    unparsed = sum(r["len"] for r in row["§time"] if r["key"] is None)
    if unparsed:
        example = _collect(
            frame.filter(reading.key.is_null()).select(pl.col(column).cast(pl.String)).head(1)
        )[column][0]
        raise InferError(
            f"time column {column!r}: {unparsed:,} values do not match format "
            f"{reading.format!r} (e.g. {example!r}); pass the right --time-format"
        )
    counts = pl.DataFrame(
        [(r["key"], r["len"]) for r in row["§time"]], schema=["key", "len"], orient="row"
    ).sort("key")
    kind = reading.kind
    start, end = counts["key"].min(), counts["key"].max()
    if kind == "integer" and 1000 <= start <= 9999 and 1000 <= end <= 9999:  # type: ignore[operator]
        kind = "year"
    return TimeProfile(kind, reading.format, start, end, counts)


def period_labels(key: pl.Expr, by: BatchBy) -> pl.Expr:
    """Period ids that sort in time order: 2013, 2013-01, 2013-W02, 2013-01-13."""
    if by == "year":
        return key.dt.strftime("%Y")
    if by == "month":
        return key.dt.strftime("%Y-%m")
    if by == "week":
        return key.dt.strftime("%G-W%V")
    return key.dt.strftime("%Y-%m-%d")


def _period_rows(profile: TimeProfile, by: BatchBy) -> list[int]:
    counts = profile.counts
    if profile.kind != "datetime":
        if by != "year":
            raise InferError(f"--batch-by {by} needs a date/time column; use a number of batches")
        return counts["len"].to_list()
    grouped = counts.group_by(period_labels(pl.col("key"), by).alias("p")).agg(pl.col("len").sum())
    return cast(list[int], grouped["len"].to_list())


def _plan(by: BatchBy, per_period: int, period_rows: list[int], reason: str) -> BatchPlan:
    if by == "rows":
        total = sum(period_rows)
        size = total // max(1, per_period)
        return BatchPlan(by, per_period, 1, total, size, size, reason)
    ordered = sorted(period_rows)
    return BatchPlan(
        by,
        per_period,
        len(period_rows),
        sum(period_rows),
        ordered[0] // per_period,
        ordered[len(ordered) // 2] // per_period,
        reason,
    )


def _per_period(periods: int, median: int) -> int:
    """Batches per period so the table makes at least DEFAULT_BATCHES[0] batches in all."""
    wanted = math.ceil(DEFAULT_BATCHES[0] / periods)
    return max(1, min(12, wanted, median // DEFAULT_BATCH_ROWS))


def _rows_plan(rows: int, reason: str) -> BatchPlan:
    count = max(3, min(24, rows // DEFAULT_BATCH_ROWS))
    return _plan("rows", count, [rows], reason)


def _refuse_absurd(plan: BatchPlan, asked: str) -> None:
    if plan.batches > MAX_BATCHES or plan.median < MIN_BATCH_ROWS:
        raise InferError(
            f"--batch-by {asked} would make {plan.batches:,} batches with a median of "
            f"{plan.median:,} rows (limits: at most {MAX_BATCHES} batches, at least "
            f"{MIN_BATCH_ROWS} rows each); choose a coarser period or fewer batches"
        )


def plan_batching(rows: int, profile: TimeProfile | None, batch_by: str | None) -> BatchPlan:
    """Choose how the table is cut into batches.

    ``batch_by`` is ``year``, ``month``, ``week``, ``day``, or a number N (N batches of equal size
    in time order, or row order without a time column). By default the finest calendar period
    that gives at most ``DEFAULT_BATCHES[1]`` periods of at least ``DEFAULT_BATCH_ROWS`` rows
    (median) is taken, each period cut so the table makes at least ``DEFAULT_BATCHES[0]``
    batches; failing that, N batches of about ``DEFAULT_BATCH_ROWS`` rows (3 to 24). An explicit
    choice that makes more than ``MAX_BATCHES`` batches or a median batch under
    ``MIN_BATCH_ROWS`` rows is refused.
    """
    if batch_by is not None and batch_by.isdigit():
        count = int(batch_by)
        if count < 1:
            raise InferError("--batch-by N needs N >= 1")
        plan = _plan("rows", count, [rows], f"--batch-by {count}: equal batches in time order")
        _refuse_absurd(plan, batch_by)
        return plan
    if batch_by is not None and batch_by not in ("year", "month", "week", "day"):
        raise InferError(f"--batch-by {batch_by!r}: use year, month, week, day or a number")
    if profile is None:
        if batch_by is not None:
            raise InferError(f"--batch-by {batch_by} needs --time; without it use a number")
        return _rows_plan(rows, "no time column: equal batches in row order")
    if batch_by is not None:
        by = cast(BatchBy, batch_by)
        period_rows = _period_rows(profile, by)
        median = sorted(period_rows)[len(period_rows) // 2]
        plan = _plan(by, _per_period(len(period_rows), median), period_rows, f"--batch-by {by}")
        _refuse_absurd(plan, batch_by)
        return plan
    candidates: list[BatchBy] = (
        ["day", "week", "month", "year"] if profile.kind == "datetime" else ["year"]
    )
    if profile.kind != "integer":
        for by in candidates:
            period_rows = _period_rows(profile, by)
            median = sorted(period_rows)[len(period_rows) // 2]
            if len(period_rows) <= DEFAULT_BATCHES[1] and median >= DEFAULT_BATCH_ROWS:
                per = _per_period(len(period_rows), median)
                why = f"by {by}: {len(period_rows)} period(s) of median {median:,} rows" + (
                    f", each cut into {per}" if per > 1 else ""
                )
                return _plan(by, per, period_rows, why)
    return _rows_plan(rows, "no calendar period fits: equal batches in time order")


def size_params(
    plan: BatchPlan, positive_share: float, base_gate: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """params.yaml sections sized for this table (the rest of params.yaml stays as it is)."""
    batches = plan.batches
    if batches < 3:
        raise InferError(
            f"the table makes only {batches} batch(es); training needs at least 3 (train, "
            f"validation, holdout): use a finer --batch-by or a larger table"
        )
    window = min(12, batches)
    rows = max(1, plan.median)
    holdout = 2 if window >= 5 else 1
    # Enough positives in the holdout to measure AUC: about 30 expected.
    while holdout < window - 2 and holdout * rows * positive_share < 30:
        holdout += 1
    min_rows = max(1, min(200, plan.smallest // 2))
    gate = dict(base_gate)
    gate["absolute_floor"] = FIRST_MODEL_FLOOR
    gate["slice_min_rows"] = max(10, min(200, holdout * rows // 5))
    return {
        "simulate": {"batches_per_period": plan.per_period},
        "split": {
            "window_batches": window,
            "validation_batches": 1,
            "holdout_batches": holdout,
            "min_rows": min_rows,
        },
        "gate": gate,
    }


def _positive(counts: dict[Any, int], positive: str | None, target: str) -> tuple[Any, Any, str]:
    values = sorted(counts, key=str)
    if positive is not None:
        matches = [v for v in values if str(v).lower() == positive.lower()]
        if not matches:
            raise InferError(
                f"--positive {positive!r} is not a value of target {target!r} (values: "
                f"{[str(v) for v in values]})"
            )
        pos = matches[0]
        return pos, next(v for v in values if v != pos), "given by --positive"
    a, b = values
    if counts[a] != counts[b]:
        pos = a if counts[a] < counts[b] else b
        share = counts[pos] / (counts[a] + counts[b])
        return pos, (b if pos == a else a), f"the rarer class, {share:.1%} of labelled rows"
    texts = {str(v).lower() for v in values}
    usual_names = ("2",) if texts == {"1", "2"} else ("1", "true", "yes", "y")
    usual = [v for v in values if str(v).lower() in usual_names]
    pos = usual[0] if usual else values[-1]
    why = "classes are balanced; took " + ("the usual positive value" if usual else "the last")
    return pos, (b if pos == a else a), why + " (pass --positive to choose)"


def infer_dataset(
    path: str | Path,
    *,
    target: str,
    id_column: str | None = None,
    time_column: str | None = None,
    positive: str | None = None,
    time_format: str | None = None,
    batch_by: str | None = None,
    header: bool | None = None,
    name: str | None = None,
    slices: Sequence[str] = (),
    base_gate: dict[str, Any] | None = None,
) -> InferResult:
    """Draft a spec and dataset-sized params from ``path`` (parquet or CSV as found)."""
    path = Path(path)
    source: SourceSpec = sniff_source(path, header=header)
    frame = scan_source(path, source)
    schema = frame.collect_schema()
    columns = list(schema)
    for needed in (target, id_column, time_column, *slices):
        if needed is not None and needed not in schema:
            raise InferError(f"column {needed!r} is not in {path} (columns: {columns})")
    guesses: list[str] = []
    checks: list[str] = []
    if source.format == "csv":
        sep = {"\t": "tab"}.get(source.separator, repr(source.separator))
        guesses.append(
            f"CSV, separator {sep}, "
            + ("a header line" if source.header else f"no header (names {columns[0]}..)")
            + f", values trimmed, missing markers {source.missing_values}"
        )
        checks.append("the missing markers in the spec's source.missing_values")
    # The one pass over the whole file (streamed): counts, value sets, ranges, types of CSV
    # text, the target's classes and the time column's rows per day.
    text = source.format == "csv"
    head = _collect(frame.head(HEAD_ROWS))
    reading = (
        read_time(head, time_column, schema[time_column], time_format) if time_column else None
    )
    # A column with more distinct values in its first rows than a category set may hold is not
    # categorical whatever the rest says: only the others have their value sets collected (the
    # costly part of the pass), and those sets are then complete for the whole file.
    few = {c for c in columns if head[c].drop_nulls().n_unique() <= MAX_INFERRED_CATEGORIES}
    # Likewise a CSV column with a non-number in its first rows is text: it is not parsed.
    numeric_text = {
        c
        for c in columns
        if text and head[c].null_count() == head.select(as_number(pl.col(c)))[c].null_count()
    }
    # Columns with many values that look numeric are parsed by the CSV reader itself (much
    # cheaper than reading text and parsing it); a column the reader refuses somewhere in the
    # file is read again as text (the pass is run again).
    by_reader = (
        {c for c in numeric_text - few if c != time_column}
        if text and source.header and not source.trim
        else set()
    )

    def one_pass(by_reader: set[str]) -> dict[str, Any]:
        scan = scan_source(path, source, numbers=sorted(by_reader)) if by_reader else frame
        exprs: list[pl.Expr] = [pl.len().alias("§rows")]
        parsed: dict[str, pl.Expr] = {}  # values parsed once, as columns, for several aggregations
        for column in columns:
            if column == time_column:
                continue
            col = pl.col(column)
            exprs.append(col.null_count().alias(f"{column}§nulls"))
            if column in few and column != target:
                # the target's classes come from its value counts below
                values = col.drop_nulls().unique().head(MAX_INFERRED_CATEGORIES + 1)
                exprs.append(values.implode().alias(f"{column}§values"))
            number = None
            if column in by_reader:
                number = col
            elif column in numeric_text and column not in few:
                # One parse per row: a number when it parses as a float, an integer when every
                # number is whole (parsing again as Int64 would double the cost of the pass). A
                # column with few values is typed from its value set instead (see below).
                parsed[f"{column}§num"] = as_number(col)
                number = pl.col(f"{column}§num")
            if number is not None:
                exprs += _number_stats(column, number)
            elif schema[column].is_numeric():
                exprs += [
                    col.min().cast(pl.Float64).alias(f"{column}§min"),
                    col.max().cast(pl.Float64).alias(f"{column}§max"),
                ]
            if column == id_column:
                # The ids themselves (parsed numbers where the column has them), for an exact
                # count of distinct values after the pass: see _distinct_ids.
                exprs.append(
                    (number if number is not None else col).implode().alias(f"{column}§ids")
                )
        if target in few:  # else it has too many values, refused below
            exprs.append(pl.col(target).drop_nulls().value_counts().implode().alias("§target"))
        if reading is not None:
            parsed[TIME_KEY] = reading.key
            exprs += time_aggregations(reading)
        scanned = scan.with_columns(**parsed) if parsed else scan
        try:
            result = _collect(scanned.select(exprs))
        except pl.exceptions.ComputeError as exc:
            refused = _refused_column(str(exc), columns)
            if refused is None or refused not in by_reader:
                if not by_reader:
                    raise
                return one_pass(set())
            return one_pass(by_reader - {refused})
        ids = f"{id_column}§ids"
        if ids not in result.columns:
            return result.row(0, named=True)
        # kept a Series (a row would make it a Python list of every id)
        return {**result.drop(ids).row(0, named=True), ids: result[ids][0]}

    row = one_pass(by_reader)
    rows = int(row["§rows"])
    if id_column is not None:
        row[f"{id_column}§unique"] = _distinct_ids(row.pop(f"{id_column}§ids"))
    if rows == 0:
        raise InferError(f"{path} has no rows")
    if "§target" in row:
        row[f"{target}§values"] = [r[target] for r in row["§target"]]
    # A text column with few values is typed from its value set: every row parses as a number
    # exactly when every distinct value does, and min/max are those of the set. A column whose
    # set turned out to be larger than a category set may hold is typed row by row (another
    # pass, only for such columns).
    overflowed: list[str] = []
    for column in sorted(c for c in numeric_text & few if c != time_column):
        values = row[f"{column}§values"]
        if len(values) > MAX_INFERRED_CATEGORIES:
            overflowed.append(column)
            continue
        stats = pl.DataFrame({column: pl.Series(values, dtype=pl.String)})
        stats = stats.select(_number_stats(column, as_number(pl.col(column))))
        set_row = stats.row(0, named=True)
        present = rows - row[f"{column}§nulls"]
        for part in ("float", "int"):  # counts of the set, as counts of the rows
            set_row[f"{column}§{part}"] = (
                present if set_row[f"{column}§{part}"] == len(values) else -1
            )
        row.update(set_row)
    if overflowed:
        again = [e for c in overflowed for e in _number_stats(c, as_number(pl.col(c)))]
        row.update(_collect(frame.select(again)).row(0, named=True))
    if id_column is not None and row[f"{id_column}§unique"] != rows:
        texts = frame.select(pl.col(id_column).n_unique().alias("n"))
        row[f"{id_column}§unique"] = _collect(texts)["n"][0]

    def dtype_of(column: str) -> DType | None:
        if not text:
            return _dtype_of(schema[column])
        if column not in numeric_text:
            return "string"
        present = rows - row[f"{column}§nulls"]
        if present and row[f"{column}§int"] == present:
            return "int"
        if present and row[f"{column}§float"] == present:
            return "float"
        return "string"

    many = [None] * (MAX_INFERRED_CATEGORIES + 1)
    target_values = row.get(f"{target}§values", many)
    if len(target_values) != 2:
        found = f"{len(target_values)}" if len(target_values) <= MAX_INFERRED_CATEGORIES else "many"
        raise InferError(
            f"target {target!r} must have exactly two classes, found {found}: "
            f"{target_values[:10]}; pick a two-valued column or map it to two classes first"
        )
    if row[f"{target}§nulls"]:
        checks.append(f"{row[f'{target}§nulls']:,} rows have no target value")
    if id_column is not None and row[f"{id_column}§unique"] != rows:
        raise InferError(
            f"id column {id_column!r} is not unique ({row[f'{id_column}§unique']:,} "
            f"distinct values in {rows:,} rows); leave --id out to have a row id made"
        )
    keys = {target, *(k for k in (id_column, time_column) if k)}
    skipped: list[str] = []
    features: list[ColumnSpec] = []
    coded: list[str] = []
    for column in columns:
        if column in keys:
            continue
        dtype = dtype_of(column)
        if dtype is None or row[f"{column}§nulls"] == rows:
            what = "all values missing" if dtype else f"type {schema[column]}"
            skipped.append(f"{column!r} ({what}; a spec cannot describe it)")
            continue
        nullable = row[f"{column}§nulls"] > 0
        raw = row.get(f"{column}§values", many)
        n_unique = len(raw)
        # the text a value gets when validation casts it to String ("true", not "True")
        as_text = (
            pl.Series(raw, dtype=schema[column]).cast(pl.String).to_list()
            if n_unique <= MAX_INFERRED_CATEGORIES
            else []
        )
        if dtype in ("int", "float"):
            lo, hi = row[f"{column}§min"], row[f"{column}§max"]
            if dtype == "int" and is_code(column, n_unique, int(lo), int(hi)):
                coded.append(column)
                features.append(
                    ColumnSpec(
                        name=column,
                        dtype="string",
                        categorical=True,
                        nullable=nullable,
                        allowed=_sorted_categories(as_text),
                    )
                )
                continue
            low_bound, high_bound = widen(lo, hi, dtype)
            features.append(
                ColumnSpec(
                    name=column, dtype=dtype, nullable=nullable, min=low_bound, max=high_bound
                )
            )
            continue
        allowed = _sorted_categories(as_text) if n_unique <= MAX_INFERRED_CATEGORIES else None
        features.append(
            ColumnSpec(
                name=column, dtype="string", categorical=True, nullable=nullable, allowed=allowed
            )
        )
    if not features:
        raise InferError(f"{path}: no feature columns are left besides the keys {sorted(keys)}")
    if coded:
        guesses.append(f"integer columns read as codes (categorical): {coded}")
    target_dtype = dtype_of(target) or "string"
    if target_dtype == "float":
        target_dtype = "string"
    counts = {
        (int(r[target]) if text and target_dtype == "int" else r[target]): int(r["count"])
        for r in row["§target"]
    }
    pos, neg, positive_reason = _positive(counts, positive, target)
    profile = time_profile(reading, row, frame) if reading is not None else None
    plan = plan_batching(rows, profile, batch_by)
    if plan.batches > MAX_BATCHES:
        raise InferError(f"{plan.batches} batches is more than {MAX_BATCHES}")
    if batch_by is None:
        guesses.append(f"batching {plan.reason} (change with --batch-by)")
    if profile is not None and profile.format and time_format is None:
        guesses.append(f"time format {profile.format!r} (change with --time-format)")
    id_spec = _id_spec(id_column, dtype_of(id_column) if id_column else None, columns)
    if id_spec.generated:
        guesses.append(
            f"no id column: made {id_spec.name!r}, the row's 0-based position in the file"
        )
    time_spec = _time_spec(time_column, profile, plan)
    dataset_name = name or path.stem
    spec = DatasetSpec(
        name=dataset_name,
        model_name=model_slug(dataset_name),
        source=source,
        id=id_spec,
        time=time_spec,
        target=KeySpec(name=target, dtype=target_dtype),
        positive_label=pos,
        negative_label=neg,
        features=features,
        slices=list(slices),
    )
    share = counts[pos] / sum(counts.values())
    params = size_params(plan, share, base_gate or {})
    checks.append("ranges (widened by 10%) and allowed values; unseen values are quarantined")
    if share < 0.05:
        checks.append(f"positive class is rare ({share:.1%}); consider class_weights: balanced")
    return InferResult(
        spec=spec,
        params=params,
        rows=rows,
        target_counts={str(k): v for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))},
        positive_reason=positive_reason,
        plan=plan,
        time=profile,
        guesses=guesses,
        checks=checks,
        skipped=skipped,
    )


def _distinct_ids(ids: pl.Series) -> int:
    """How many distinct values ``ids`` holds, exactly (a null counts as one value, as in
    ``n_unique``). Ids that strictly increase down the file (row numbers, auto-increment keys:
    the usual case) are all distinct, which one comparison per row proves; any others are
    counted with ``n_unique``. Distinct parsed numbers are at most as many as distinct texts, so
    as many as the rows proves the texts unique; otherwise the texts are counted by the caller."""
    if len(ids) < 2:
        return len(ids)
    if not ids.has_nulls() and bool((ids.slice(1) > ids.slice(0, len(ids) - 1)).all()):
        return len(ids)
    return ids.n_unique()


def _id_spec(id_column: str | None, dtype: DType | None, columns: list[str]) -> KeySpec:
    if id_column is not None:
        if dtype not in ("int", "string"):
            raise InferError(f"id column {id_column!r} has type {dtype}; use integers or text")
        return KeySpec(name=id_column, dtype=dtype)
    name = GENERATED_ID
    while name in columns:
        name = f"_{name}"
    return KeySpec(name=name, dtype="int", generated=True)


def _time_spec(column: str | None, profile: TimeProfile | None, plan: BatchPlan) -> KeySpec:
    if column is None or profile is None:
        return KeySpec(name="batch", dtype="string", batch_by="rows")
    dtype: DType = "string" if profile.kind == "datetime" else "int"
    return KeySpec(name=column, dtype=dtype, format=profile.format, batch_by=plan.by)
