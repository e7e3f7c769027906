"""Replay a dataset into the landing folder as a stream of batch files, with optional faults.

The source is read the way the spec's ``source`` says (:func:`load_source`). Rows are replayed in
event-time order. With ``time.batch_by`` (written by ``dataset infer``) they are grouped by that
calendar period of the parsed time, or cut into N batches in time order (``rows``); otherwise
each distinct value of the spec's time column (a year of the ACS data) is cut into
``batches_per_period`` batches, and more than ``MAX_BATCHES`` batches are refused. When the
source has no time column (a spec drafted without ``--time`` names ``batch``), the rows are cut
into ``batches_per_period`` equal chunks and the column is filled with the batch id. Labels
(id + target) of batch N land as ``labels_<N>`` files ``label_lag`` batches later; the last ones
are flushed at the end.

Faults (:data:`FAULTS`) spoil one batch's file, except ``drift``: from the batch it names on,
every batch's rows (records and labels) drift (:func:`apply_drift`: a covariate shift by
resampling plus a concept shift in one segment's labels), the way a population and its
behaviour change over time.

Every write is atomic (a ``.tmp-`` file, then ``os.replace``), so a sensor never sees half a file,
and the same seed gives byte-identical files.
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.errors import ScoreloopError
from pipelines.infer import ISO_DATETIME, MAX_BATCHES, TimeKind, period_labels, time_expr
from pipelines.reading import SourceError, scan_source
from pipelines.spec import POLARS_DTYPES as POLARS
from pipelines.spec import DatasetSpec, KeySpec

#: Faults the simulator can inject into a batch's records file. The first eight are the core set;
#: the rest cover the remaining cases of the bad-input corpus (see docs/data.md).
FAULTS: tuple[str, ...] = (
    "corrupt_rows",  # some values out of range, NaN or inf
    "missing_column",  # one feature column dropped
    "wrong_types",  # strings in a numeric column (file written as CSV)
    "unseen_categories",  # categorical values outside the allowed set
    "duplicate_ids",  # some ids repeated within the batch
    "nulls",  # nulls in columns that do not allow them
    "empty_file",  # 0 bytes
    "truncated_file",  # parquet cut in half
    "nan_inf",  # NaN and +/-inf in float features
    "extra_columns",  # columns the spec does not know (ignored, reported)
    "long_strings",  # 10,000-character strings in string columns
    "wrong_id_type",  # ids like "abc" and 3.5 in an integer id (CSV)
    "not_parquet",  # a .parquet file that holds text
    "bad_encoding",  # CSV with invalid UTF-8 bytes
    "drift",  # from this batch on: covariate shift + concept shift (see apply_drift)
)

#: Faults that change the rows of a batch and of every later one (records and labels alike),
#: rather than one file.
STREAM_FAULTS: frozenset[str] = frozenset({"drift"})


@dataclass(frozen=True)
class DriftShape:
    """How hard the ``drift`` fault pushes (see :func:`apply_drift`).

    Covariate shift, by resampling rows (so P(target | features) of those rows is unchanged):
    a row is kept with probability ``keep_floor + (1 - keep_floor) * rank`` of its value of the
    first numeric feature (rank in [0, 1] within the batch: an older population for the ACS
    data), and rows holding the most frequent value of the first (and of the third) categorical
    feature are kept ``mode_keep`` times as often (those categories' shares fall, the modes being
    the batch's). Concept shift: in the segment holding the first allowed value of the second
    categorical feature (stable from batch to batch), ``flip_share`` of the positive labels
    become negative (that segment's outcome rate falls, so the relation between that feature and
    the target changes). For the ACS data, the most common levels of SCHL (education) and RELP
    (relationship) thin out, and the married (MAR 1) lose employment.
    """

    keep_floor: float = 0.4
    mode_keep: float = 0.4
    flip_share: float = 0.5


DRIFT = DriftShape()

#: Share of a batch's rows touched by a row-level fault (at least one row).
FAULT_ROW_SHARE: dict[str, float] = {
    "corrupt_rows": 0.02,
    "unseen_categories": 0.02,
    "duplicate_ids": 0.01,
    "nulls": 0.02,
    "nan_inf": 0.02,
    "long_strings": 0.02,
    "wrong_id_type": 0.02,
    # An upstream type change usually hits a column wholesale: enough rows to refuse the batch.
    "wrong_types": 0.10,
}

TMP_PREFIX = ".tmp-"
#: Helper columns of the planner (never written).
TIME_KEY = "__time"
PERIOD_KEY = "__period"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class SimulationError(ScoreloopError, ValueError):
    """The source or the requested faults do not fit the spec."""


@dataclass
class SimulationResult:
    """What the simulator landed."""

    batches: list[str]
    files: list[Path]
    rows: dict[str, int] = field(default_factory=dict)
    faults: dict[str, list[str]] = field(default_factory=dict)

    @property
    def records_files(self) -> list[Path]:
        return [p for p in self.files if p.name.startswith("batch_")]

    @property
    def label_files(self) -> list[Path]:
        return [p for p in self.files if p.name.startswith("labels_")]


@dataclass
class _Batch:
    batch_id: str
    records: pl.DataFrame
    labels: pl.DataFrame


def _is_year_like(values: pl.Series) -> bool:
    return (
        values.dtype.is_integer()
        and values.len() > 0
        and bool(values.min() >= 1000)  # type: ignore[operator]
        and bool(values.max() <= 9999)  # type: ignore[operator]
    )


def _batch_id(period: object, index: int, width: int) -> str:
    label = _UNSAFE.sub("_", str(period)).strip("_.-") or "t"
    return f"{label}-{index:0{width}d}"


def plan_batches(
    df: pl.DataFrame, spec: DatasetSpec, *, seed: int = 7, batches_per_period: int = 12
) -> list[tuple[str, pl.DataFrame]]:
    """Cut a source table into (batch id, rows) in event-time order.

    Within a period rows are shuffled with ``seed`` before cutting, so every batch of a period is
    a fair sample of it (the source's own row order may follow geography or ids).
    """
    if batches_per_period < 1:
        raise SimulationError("batches_per_period must be at least 1")
    for needed in (spec.id.name, spec.target.name, *spec.feature_names):
        if needed not in df.columns:
            raise SimulationError(f"source has no column {needed!r} required by spec {spec.name!r}")
    time = spec.time.name
    width = max(2, len(str(batches_per_period)))
    out: list[tuple[str, pl.DataFrame]] = []
    if time not in df.columns:
        if spec.time.dtype not in ("string", "int"):
            raise SimulationError(
                f"source has no time column {time!r}; the simulator can fill it only when the "
                f"spec declares it string or int (it declares {spec.time.dtype})"
            )
        size = -(-df.height // batches_per_period)
        for index in range(batches_per_period):
            chunk = df.slice(index * size, size)
            if chunk.is_empty():
                continue
            batch_id = _batch_id(time, index + 1, width)
            value: str | int = batch_id if spec.time.dtype == "string" else index + 1
            out.append(
                (
                    batch_id,
                    chunk.with_columns(pl.lit(value).cast(spec.time.polars_dtype).alias(time)),
                )
            )
        return out
    if df[time].null_count():
        raise SimulationError(f"time column {time!r} has nulls; every row needs an event time")
    if spec.time.batch_by is not None:
        return _plan_by_time(df, spec, seed, batches_per_period, width)
    periods = df[time].unique().sort()
    _cap(len(periods) * batches_per_period, f"{len(periods):,} distinct values of {time!r}")
    year_like = _is_year_like(periods)
    for number, period in enumerate(periods.to_list()):
        rows = df.filter(pl.col(time) == period)
        rng = np.random.default_rng([seed, number])
        order = rng.permutation(rows.height)
        rows = rows[order]
        cuts = np.linspace(0, rows.height, batches_per_period + 1).round().astype(int)
        for index in range(batches_per_period):
            start, stop = int(cuts[index]), int(cuts[index + 1])
            if stop <= start:
                continue
            batch_id = (
                f"{period}-{index + 1:0{width}d}"
                if year_like
                else _batch_id(period, index + 1, width)
            )
            out.append((batch_id, rows.slice(start, stop - start)))
    return out


def _cap(batches: int, what: str) -> None:
    if batches > MAX_BATCHES:
        raise SimulationError(
            f"this would land {batches:,} batches ({what} x batches per period), more than "
            f"{MAX_BATCHES}: set time.batch_by in the spec (year, month, week, day or rows) or run "
            f"`scoreloop dataset infer ... --batch-by` again"
        )


def _time_kind(key: KeySpec, batch_by: str) -> TimeKind:
    if key.dtype == "string":
        return "datetime"
    return "year" if batch_by == "year" else "integer"


def _plan_by_time(
    df: pl.DataFrame, spec: DatasetSpec, seed: int, per_period: int, width: int
) -> list[tuple[str, pl.DataFrame]]:
    """Batches by calendar period of the parsed time (or N batches in time order).

    Records carry the time as ISO text (``2013-01-13T07:45:00``); batch ids sort in time order.
    """
    time, by = spec.time.name, spec.time.batch_by
    assert by is not None
    kind = _time_kind(spec.time, by)
    try:
        parsed = df.select(time_expr(time, kind, spec.time.format, df.schema[time]).alias(TIME_KEY))
    except pl.exceptions.PolarsError as exc:
        raise SimulationError(f"time column {time!r} cannot be read as time: {exc}") from exc
    bad = parsed[TIME_KEY].null_count()
    if bad:
        raise SimulationError(
            f"time column {time!r}: {bad:,} values do not match format {spec.time.format!r}"
        )
    df = df.with_columns(parsed[TIME_KEY])
    if kind == "datetime":
        df = df.with_columns(pl.col(TIME_KEY).dt.strftime(ISO_DATETIME).alias(time))
    df = df.sort(TIME_KEY, maintain_order=True)
    if by == "rows":
        _cap(per_period, "rows batching")
        cuts = np.linspace(0, df.height, per_period + 1).round().astype(int)
        return [
            (_batch_id("batch", i + 1, width), df.slice(int(a), int(b - a)).drop(TIME_KEY))
            for i, (a, b) in enumerate(itertools.pairwise(cuts))
            if b > a
        ]
    label = (
        pl.col(TIME_KEY).cast(pl.String)
        if kind != "datetime"
        else period_labels(pl.col(TIME_KEY), by)
    )
    df = df.with_columns(label.alias(PERIOD_KEY))
    parts = df.partition_by(PERIOD_KEY, maintain_order=True, include_key=False)
    _cap(len(parts) * per_period, f"{len(parts):,} periods by {by}")
    labels = df[PERIOD_KEY].unique(maintain_order=True).to_list()
    out: list[tuple[str, pl.DataFrame]] = []
    sep = "-" if kind == "year" else "_"
    for number, (period, rows) in enumerate(zip(labels, parts, strict=True)):
        rows = rows.drop(TIME_KEY)
        rows = rows[np.random.default_rng([seed, number]).permutation(rows.height)]
        cuts = np.linspace(0, rows.height, per_period + 1).round().astype(int)
        for index, (a, b) in enumerate(itertools.pairwise(cuts)):
            if b > a:
                batch_id = period if per_period == 1 else f"{period}{sep}{index + 1:0{width}d}"
                out.append((batch_id, rows.slice(int(a), int(b - a))))
    return out


def _cast_to(column: str, dtype: str, source: pl.DataType) -> pl.Expr:
    col = pl.col(column)
    if dtype == "bool" and source == pl.String:
        return col.str.to_lowercase().replace_strict({"true": True, "false": False})
    if dtype in ("int", "float") and source == pl.String:
        # numbers in CSV text as infer read them: leading spaces and tabs skipped
        col = col.str.strip_chars_start(" \t")
    if dtype == "int" and source == pl.String:
        # CSV text drafted as int: "12", and whole numbers written "12.0" or "1e3"
        whole = col.cast(pl.Float64, strict=False)
        exact = col.cast(pl.Int64, strict=False)
        return (
            pl.when(col.is_null() | exact.is_not_null())
            .then(exact)
            .otherwise(pl.when(whole == whole.floor()).then(whole.cast(pl.Int64, strict=False)))
            .cast(pl.Int64)
        )
    return col.cast(POLARS[dtype])


def load_source(spec: DatasetSpec, source: Path) -> pl.DataFrame:
    """The source read the way the spec says (dialect, missing markers), typed as the spec says.

    A generated id (``id.generated``) is the row's 0-based position in the file.
    """
    try:
        frame = scan_source(source, spec.source)
        if spec.id.generated:
            frame = frame.with_row_index(spec.id.name).with_columns(
                pl.col(spec.id.name).cast(pl.Int64)
            )
        schema = frame.collect_schema()
    except (SourceError, pl.exceptions.PolarsError, OSError) as exc:
        raise SimulationError(f"{source}: cannot be read: {exc}") from exc
    typed: list[pl.Expr] = []
    keys = [spec.id, spec.target] + ([] if spec.time.batch_by else [spec.time])
    wanted = {k.name: k.dtype for k in keys} | {c.name: c.dtype for c in spec.features}
    for column, dtype in wanted.items():
        if column in schema and schema[column] != POLARS[dtype]:
            typed.append(_cast_to(column, dtype, schema[column]).alias(column))
    try:
        return frame.with_columns(typed).collect()
    except pl.exceptions.PolarsError as exc:
        raise SimulationError(
            f"{source}: values do not fit the types of spec {spec.name!r} ({exc}); draft the spec "
            f"from this file again (scoreloop dataset infer)"
        ) from exc


def _atomic_write(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def _parquet_bytes(df: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.write_parquet(buffer, statistics=False)
    return buffer.getvalue()


def _csv_bytes(df: pl.DataFrame) -> bytes:
    return df.select(pl.all().cast(pl.String)).write_csv().encode()


def _pick_rows(rng: np.random.Generator, height: int, share: float) -> np.ndarray:
    count = min(height, max(1, round(height * share)))
    return np.sort(rng.choice(height, size=count, replace=False))


def _set_values(
    df: pl.DataFrame, column: str, rows: np.ndarray, values: Sequence[object]
) -> pl.DataFrame:
    """Replace ``column`` at positions ``rows`` (values cycled); the column may change type."""
    cycled = [values[i % len(values)] for i in range(len(rows))]
    mask = np.zeros(df.height, dtype=bool)
    mask[rows] = True
    replacement: list[object] = [None] * df.height
    for position, value in zip(rows.tolist(), cycled, strict=True):
        replacement[position] = value
    sample = next((v for v in cycled if v is not None), None)
    if sample is None:
        dtype = df.schema[column]
    elif isinstance(sample, str):
        dtype = pl.String()
    elif isinstance(sample, float):
        dtype = pl.Float64() if df.schema[column].is_numeric() else pl.String()
    else:
        dtype = df.schema[column]
    base = df[column] if dtype == df.schema[column] else df[column].cast(dtype)
    new = pl.Series(column, replacement, dtype=dtype, strict=False)
    return df.with_columns(pl.when(pl.Series(mask)).then(new).otherwise(base).alias(column))


def _columns(spec: DatasetSpec, predicate: Callable[[str], bool]) -> list[str]:
    return [c.name for c in spec.features if predicate(c.name)]


def _need(columns: list[str], fault: str, what: str, spec: DatasetSpec) -> list[str]:
    if not columns:
        raise SimulationError(f"fault {fault!r} needs {what}; spec {spec.name!r} has none")
    return columns


def _pick_column(
    spec: DatasetSpec,
    rng: np.random.Generator,
    fault: str,
    predicate: Callable[[str], bool],
    what: str,
) -> str:
    """One feature matching ``predicate``, drawn with ``rng`` (the fault needs at least one)."""
    candidates = _need(_columns(spec, predicate), fault, what, spec)
    return candidates[int(rng.integers(len(candidates)))]


def _inject(
    fault: str, df: pl.DataFrame, spec: DatasetSpec, rng: np.random.Generator
) -> tuple[pl.DataFrame, str]:
    """Apply a row- or column-level fault; returns the frame and the file format to write."""
    share = FAULT_ROW_SHARE.get(fault, 0.0)
    fmt = "parquet"
    if fault == "corrupt_rows":
        numeric = _need(
            _columns(spec, lambda n: spec.feature(n).dtype in ("int", "float")),
            fault,
            "a numeric feature",
            spec,
        )
        for column in numeric:
            col = spec.feature(column)
            bad: list[object] = []
            if col.max is not None:
                bad.append(col.max + abs(col.max) + 1000)
            if col.min is not None:
                bad.append(col.min - abs(col.min) - 1000)
            if col.dtype == "float":
                bad += [float("nan"), float("inf")]
            if not bad:
                continue
            if col.dtype == "int":
                bad = [int(v) for v in bad if isinstance(v, float)]
            df = _set_values(df, column, _pick_rows(rng, df.height, share), bad)
    elif fault == "nan_inf":
        floats = _need(
            _columns(spec, lambda n: spec.feature(n).dtype == "float"),
            fault,
            "a float feature",
            spec,
        )
        for column in floats:
            df = _set_values(
                df,
                column,
                _pick_rows(rng, df.height, share),
                [float("nan"), float("inf"), float("-inf")],
            )
    elif fault == "missing_column":
        df = df.drop(spec.feature_names[int(rng.integers(len(spec.feature_names)))])
    elif fault == "wrong_types":
        column = _pick_column(
            spec,
            rng,
            fault,
            lambda n: spec.feature(n).dtype in ("int", "float", "bool"),
            "a numeric or boolean feature",
        )
        df = _set_values(
            df, column, _pick_rows(rng, df.height, share), ["n/a", "unknown", "12 years"]
        )
        fmt = "csv"
    elif fault == "unseen_categories":
        column = _pick_column(
            spec,
            rng,
            fault,
            lambda n: spec.feature(n).allowed is not None,
            "a categorical feature with an allowed set",
        )
        df = _set_values(df, column, _pick_rows(rng, df.height, share), ["UNSEEN_A", "UNSEEN_B"])
    elif fault == "duplicate_ids":
        rows = _pick_rows(rng, df.height, share)
        sources = (rows + 1 + rng.integers(df.height - 1, size=len(rows))) % df.height
        ids = df[spec.id.name].gather(sources.tolist()).to_list()
        df = _set_values(df, spec.id.name, rows, ids)
    elif fault == "nulls":
        required = [c.name for c in spec.features if not c.nullable] or [spec.id.name]
        column = required[int(rng.integers(len(required)))]
        df = _set_values(df, column, _pick_rows(rng, df.height, share), [None])
    elif fault == "extra_columns":
        df = df.with_columns(
            pl.lit("surprise").alias("unexpected_note"),
            pl.Series("unexpected_score", rng.random(df.height)),
        )
    elif fault == "long_strings":
        column = _pick_column(
            spec, rng, fault, lambda n: spec.feature(n).dtype == "string", "a string feature"
        )
        df = _set_values(df, column, _pick_rows(rng, df.height, share), ["x" * 10_000])
    elif fault == "wrong_id_type":
        if spec.id.dtype != "int":
            raise SimulationError(f"fault {fault!r} needs an integer id; spec has {spec.id.dtype}")
        df = _set_values(
            df, spec.id.name, _pick_rows(rng, df.height, share), ["abc", "3.5", "1e3x"]
        )
        fmt = "csv"
    return df, fmt


def _drift_columns(spec: DatasetSpec) -> tuple[str, list[str], str]:
    """The numeric feature, the categoricals whose mix shifts, the categorical of the concept
    shift's segment: the first numeric feature; the first and third categorical features with an
    allowed set (mix), the second (segment)."""

    def is_numeric(name: str) -> bool:
        column = spec.feature(name)
        return column.dtype in ("int", "float") and not column.categorical

    numeric = _columns(spec, is_numeric)
    categorical = _columns(spec, lambda n: spec.feature(n).allowed is not None)
    if not numeric or len(categorical) < 3:
        raise SimulationError(
            f"fault 'drift' needs a numeric feature and three categorical features with an "
            f"allowed set; spec {spec.name!r} has {len(numeric)} and {len(categorical)}"
        )
    return numeric[0], [categorical[0], categorical[2]], categorical[1]


def _mode(values: pl.Series) -> object:
    counts = values.value_counts(sort=True)
    top = counts.filter(pl.col("count") == counts["count"].max())
    return sorted(top[values.name].to_list(), key=str)[0]


def apply_drift(
    rows: pl.DataFrame, spec: DatasetSpec, rng: np.random.Generator, shape: DriftShape = DRIFT
) -> pl.DataFrame:
    """One batch's rows (id, features, target) after the ``drift`` fault (see :class:`DriftShape`).

    Deterministic given ``rng``; the batch keeps its ids (a subset), so its labels file carries
    the shifted target of the same rows.
    """
    numeric, mixed, segment = _drift_columns(spec)
    if rows.is_empty():
        return rows
    rank = rows[numeric].cast(pl.Float64).rank("average").to_numpy() / rows.height
    keep = shape.keep_floor + (1.0 - shape.keep_floor) * rank
    for column in mixed:
        is_mode = (rows[column] == _mode(rows[column])).to_numpy()
        keep = np.where(is_mode, keep * shape.mode_keep, keep)
    rows = rows.filter(pl.Series(rng.random(rows.height) < keep))
    target = spec.target.name
    dtype = rows.schema[target]
    allowed = spec.feature(segment).allowed
    assert allowed, "the segment column has an allowed set (_drift_columns)"
    in_segment = (rows[segment].cast(pl.String) == str(allowed[0])).to_numpy()
    positive = rows.select(pl.col(target) == pl.lit(spec.positive_label).cast(dtype))
    positive_rows = positive.to_series().to_numpy()
    flip = in_segment & positive_rows & (rng.random(rows.height) < shape.flip_share)
    return rows.with_columns(
        pl.when(pl.Series(flip))
        .then(pl.lit(spec.negative_label).cast(dtype))
        .otherwise(pl.col(target))
        .alias(target)
    )


def _file_bytes(
    fault_names: Sequence[str], df: pl.DataFrame, spec: DatasetSpec, rng: np.random.Generator
) -> tuple[bytes, str]:
    fmt = "parquet"
    for fault in fault_names:
        if fault in ("empty_file", "truncated_file", "not_parquet", "bad_encoding", *STREAM_FAULTS):
            continue
        df, wanted = _inject(fault, df, spec, rng)
        if wanted == "csv":
            fmt = "csv"
    data = _csv_bytes(df) if fmt == "csv" else _parquet_bytes(df)
    if "bad_encoding" in fault_names:
        fmt = "csv"
        text = _csv_bytes(df)
        cut = text.index(b"\n", len(text) // 2) + 1
        data = text[:cut] + b"\xff\xfe\xfa" + text[cut:]
    if "truncated_file" in fault_names:
        data = data[: len(data) // 2]
    if "not_parquet" in fault_names:
        fmt = "parquet"
        data = b"this is not a parquet file\n" * 10
    if "empty_file" in fault_names:
        data = b""
    return data, fmt


def simulate(
    spec: DatasetSpec,
    source: Path,
    landing: Path,
    *,
    seed: int = 7,
    batches_per_period: int = 12,
    label_lag: int = 2,
    faults: Mapping[str, Sequence[str]] | None = None,
    limit: int | None = None,
    on_file: Callable[[Path], None] | None = None,
) -> SimulationResult:
    """Land the source as batch and label files, in event-time order.

    Args:
        spec: the dataset spec (only its column names and types are used).
        source: parquet or CSV file holding id, features, target and (optionally) the time column.
        landing: folder to land files in (created if missing).
        seed: drives the within-period order and the fault rows; same seed, same bytes.
        batches_per_period: batches cut from each distinct time value (or chunks without one).
        label_lag: labels of batch N land right after batch N + label_lag.
        faults: batch id -> fault names from :data:`FAULTS`, applied to that batch's records file;
            ``drift`` applies to that batch and every later one, records and labels
            (:func:`apply_drift`), and is listed under each of them in the result.
        limit: land only the first N batches (and their labels).
        on_file: called with each landed file (progress reporting).
    """
    if label_lag < 0:
        raise SimulationError("label_lag must be >= 0")
    wanted: dict[str, list[str]] = {k: list(v) for k, v in (faults or {}).items()}
    unknown = sorted({f for names in wanted.values() for f in names} - set(FAULTS))
    if unknown:
        raise SimulationError(f"unknown fault(s) {unknown}; choose from {list(FAULTS)}")
    df = load_source(spec, Path(source))
    planned = plan_batches(df, spec, seed=seed, batches_per_period=batches_per_period)
    if limit is not None:
        planned = planned[: max(0, limit)]
    ids = [batch_id for batch_id, _ in planned]
    stray = sorted(set(wanted) - set(ids))
    if stray:
        raise SimulationError(
            f"faults name batch(es) {stray} that this run does not land (first: {ids[:3]}...)"
        )
    landing = Path(landing)
    landing.mkdir(parents=True, exist_ok=True)
    result = SimulationResult(batches=ids, files=[], faults={k: v for k, v in wanted.items() if v})

    def land(path: Path, data: bytes) -> None:
        _atomic_write(path, data)
        result.files.append(path)
        if on_file is not None:
            on_file(path)

    drift_from = next(
        (n for n, (batch_id, _) in enumerate(planned) if "drift" in wanted.get(batch_id, [])),
        None,
    )
    batches: list[_Batch] = []
    for number, (batch_id, rows) in enumerate(planned):
        if drift_from is not None and number >= drift_from:
            rows = apply_drift(rows, spec, np.random.default_rng([seed, 2_000_003, number]))
            listed = result.faults.setdefault(batch_id, [])
            if "drift" not in listed:
                listed.append("drift")
        records = rows.select(spec.record_columns)
        labels = rows.select(spec.id.name, spec.target.name)
        batches.append(_Batch(batch_id, records, labels))
        result.rows[batch_id] = rows.height
        names = wanted.get(batch_id, [])
        rng = np.random.default_rng([seed, 1_000_003, number])
        data, fmt = _file_bytes(names, records, spec, rng)
        land(landing / f"batch_{batch_id}.{fmt}", data)
        due = number - label_lag
        if due >= 0:
            land(
                landing / f"labels_{batches[due].batch_id}.parquet",
                _parquet_bytes(batches[due].labels),
            )
    for due in range(max(0, len(batches) - label_lag), len(batches)):
        land(
            landing / f"labels_{batches[due].batch_id}.parquet", _parquet_bytes(batches[due].labels)
        )
    return result


def parse_fault(text: str) -> tuple[str, str]:
    """``BATCH:FAULT`` from the command line."""
    batch_id, sep, fault = text.rpartition(":")
    if not sep or not batch_id or fault not in FAULTS:
        raise SimulationError(
            f"--fault {text!r}: expected BATCH:FAULT with FAULT one of {', '.join(FAULTS)}"
        )
    return batch_id, fault
