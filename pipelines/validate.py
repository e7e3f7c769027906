"""Reading landed batch files and validating them against the spec (pandera, polars backend).

Validation is lazy (every failure at once) and checks data, not only the schema. Rows that fail go
to quarantine with every reason (column, check, offending value); the rest are accepted, unless
the batch's reject rate is above ``max_reject_rate``, in which case the whole batch is refused and
all of its rows are quarantined (nothing is lost, nothing downstream uses it).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandera.polars as pa
import polars as pl
from pandera.config import ValidationDepth, config_context
from pandera.errors import SchemaError, SchemaErrors

from pipelines.errors import ScoreloopError
from pipelines.reading import clean_text
from pipelines.spec import ColumnSpec, DatasetSpec, SpecError

Kind = Literal["records", "labels"]
Status = Literal["accepted", "refused"]

#: Free-text categorical values longer than this are rejected (guards the tables and the model).
MAX_STRING_LENGTH = 256
#: Offending values are kept in a reason, and text values in quarantine's ``record``, up to this
#: many characters (a clipped value says how long it was), so a 20 MB value is never stored whole.
MAX_REASON_VALUE = 200

ROW_COLUMN = "__row"
#: Rows read and checked at a time by :func:`validate_file`: memory holds one chunk as text plus
#: the typed rows that pass, never the whole file as text.
CHUNK_ROWS = 200_000
#: pandera's name for a failed ``unique=True`` column check (an id delivered twice in a batch).
UNIQUENESS_CHECK = "field_uniqueness"
REASON_DTYPE = pl.Struct({"column": pl.String, "check": pl.String, "value": pl.String})
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "batch_id": pl.String(),
    "kind": pl.String(),
    "source_file": pl.String(),
    "row": pl.Int64(),
    "entity_id": pl.String(),
    "reasons": pl.List(REASON_DTYPE),
    "record": pl.String(),
    "quarantined_at": pl.Datetime("us", "UTC"),
}


class BatchReadError(ScoreloopError, ValueError):
    """A landed file cannot be read as a batch at all (the whole batch fails)."""

    def __init__(self, path: Path, cause: str) -> None:
        super().__init__(f"{path}: {cause}")
        self.path = path
        self.cause = cause


def file_version(path: Path) -> str:
    """Content hash of a landed file (md5, as DVC uses): the batch's data version."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_schema(spec: DatasetSpec, kind: Kind) -> dict[str, pl.DataType]:
    return spec.record_schema if kind == "records" else spec.label_schema


def _read_error(path: Path, exc: Exception) -> BatchReadError:
    kind_of = "parquet" if path.suffix.lower() in {".parquet", ".pq"} else "CSV"
    return BatchReadError(path, f"cannot be read as {kind_of} ({type(exc).__name__}: {exc})")


def scan_batch_file(path: Path, spec: DatasetSpec, kind: Kind = "records") -> pl.LazyFrame:
    """A landed parquet or CSV file as a LazyFrame, checked to hold the columns the spec requires.

    CSV is read as text so that a bad value fails one row (in validation), not the whole file,
    with the reading the spec records (trimmed values, its missing markers as null). Raises
    :class:`BatchReadError` naming the file and the cause when it cannot be read at all.
    """
    path = Path(path)
    if not path.exists():
        raise BatchReadError(path, "file not found")
    if path.stat().st_size == 0:
        raise BatchReadError(path, "file is empty (0 bytes)")
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            lf = pl.scan_parquet(path)
        elif suffix == ".csv":
            lf = pl.scan_csv(path, infer_schema=False, encoding="utf8")
            if spec.source is not None:
                lf = clean_text(lf, spec.source)
        else:
            raise BatchReadError(path, f"unsupported format {suffix!r} (use .parquet or .csv)")
        columns = lf.collect_schema().names()
    except BatchReadError:
        raise
    except Exception as exc:  # polars raises several types for corrupt input; name the cause
        raise _read_error(path, exc) from exc
    expected = expected_schema(spec, kind)
    missing = [c for c in expected if c not in columns]
    if missing:
        try:  # a file in another encoding misreads its header: say that, not "missing columns"
            lf.head(CHUNK_ROWS).collect()
        except Exception as exc:
            raise _read_error(path, exc) from exc
        raise BatchReadError(
            path, f"missing column(s) {missing}; the spec {spec.name!r} requires {list(expected)}"
        )
    return lf


def _no_rows(path: Path) -> BatchReadError:
    return BatchReadError(path, "file has a header but no rows")


def read_batch_file(path: Path, spec: DatasetSpec, kind: Kind = "records") -> pl.DataFrame:
    """Read a landed file whole (:func:`scan_batch_file`'s reading); :func:`validate_file` reads
    it in chunks instead."""
    path = Path(path)
    lf = scan_batch_file(path, spec, kind)
    try:
        df = lf.collect()
    except Exception as exc:
        raise _read_error(path, exc) from exc
    if df.height == 0:
        raise _no_rows(path)
    return df


def _file_chunks(path: Path, lf: pl.LazyFrame, chunk_rows: int) -> Iterator[pl.DataFrame]:
    try:
        for chunk in lf.collect_batches(chunk_size=chunk_rows):
            if chunk.height:
                yield chunk
    except BatchReadError:
        raise
    except Exception as exc:  # a value or a line the reader cannot take, far down the file
        raise _read_error(path, exc) from exc


@dataclass
class ValidationResult:
    """The outcome of validating one batch."""

    batch_id: str
    kind: Kind
    source_file: str
    status: Status
    #: The rows that pass, typed as the spec declares (none when the batch is refused): a frame in
    #: memory, or for :func:`validate_file` a scan of the typed chunks it spilled to local disk
    #: (stream them with ``collect_batches``; :meth:`close` removes the spill).
    valid_rows: pl.LazyFrame
    quarantine: pl.DataFrame
    rows: int
    rejected: int
    max_reject_rate: float
    ignored_columns: list[str] = field(default_factory=list)
    spill: Path | None = None

    @property
    def valid(self) -> pl.DataFrame:
        """The valid rows in memory (small batches, tests; ingest streams :attr:`valid_rows`)."""
        return self.valid_rows.collect()

    @property
    def reject_rate(self) -> float:
        return self.rejected / self.rows if self.rows else 0.0

    @property
    def accepted(self) -> int:
        return 0 if self.status == "refused" else self.rows - self.rejected

    def close(self) -> None:
        """Remove the spilled chunks (after the valid rows are written): :attr:`valid_rows` keeps
        their schema only, the rows are in the table by then."""
        if self.spill is not None:
            self.valid_rows = pl.LazyFrame(schema=self.valid_rows.collect_schema())
            shutil.rmtree(self.spill, ignore_errors=True)
            self.spill = None

    def __enter__(self) -> ValidationResult:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def top_reasons(self, k: int = 10) -> pl.DataFrame:
        """Most frequent (column, check) reasons with up to three offending values, each quoted
        (``'n/a', 'unknown'``: a value that reads like "missing" is shown as the value it is)."""
        if self.quarantine.is_empty():
            return pl.DataFrame(
                schema={
                    "column": pl.String,
                    "check": pl.String,
                    "rows": pl.UInt32,
                    "example": pl.String,
                }
            )
        return (
            self.quarantine.select(pl.col("reasons").explode())
            .unnest("reasons")
            .group_by("column", "check")
            .agg(pl.len().alias("rows"), example_values(pl.col("value")).alias("example"))
            .sort(["rows", "column", "check"], descending=[True, False, False])
            .head(k)
        )


#: Offending values shown per quarantine reason.
EXAMPLES = 3


def example_values(value: pl.Expr, n: int = EXAMPLES) -> pl.Expr:
    """Aggregation: the first ``n`` distinct offending values, quoted and comma-separated
    (``missing`` when every value is null)."""
    quoted = pl.lit("'") + value.drop_nulls().unique(maintain_order=True).head(n) + pl.lit("'")
    joined = quoted.str.join(", ")
    return pl.when(joined == "").then(pl.lit("missing")).otherwise(joined)


@dataclass(frozen=True)
class _RowCheck:
    """One value-level check, defined once for pandera and for the fused pre-pass.

    ``passes`` maps a column expression to "this value passes"; a null result is a pass (pandera's
    ``ignore_na``: missing values are the nullability check's business).
    """

    error: str
    passes: Callable[[pl.Expr], pl.Expr]

    def pandera(self) -> pa.Check:
        passes = self.passes
        # ``error=`` is what pandera reports as the check's name in failure cases.
        return pa.Check(
            lambda data: data.lazyframe.select(passes(pl.col(data.key))),
            name=self.error,
            error=self.error,
        )

    def fails(self, column: pl.Expr) -> pl.Expr:
        return (~self.passes(column)).fill_null(False)


@dataclass(frozen=True)
class _ColumnRules:
    """What one column of a batch must satisfy: type, nullability, uniqueness, value checks."""

    name: str
    dtype: pl.DataType
    nullable: bool = False
    unique: bool = False
    checks: tuple[_RowCheck, ...] = ()

    def pandera(self) -> pa.Column:
        return pa.Column(
            self.dtype,
            nullable=self.nullable,
            unique=self.unique,
            checks=[check.pandera() for check in self.checks],
        )

    def suspect(self) -> pl.Expr:
        """True where pandera can report a row-level failure of this column (a superset)."""
        column = pl.col(self.name)
        flags = [check.fails(column) for check in self.checks]
        if not self.nullable:
            # pandera's not-null check counts NaN as missing in float columns.
            missing = column.is_null()
            flags.append(missing | column.is_nan() if self.dtype.is_float() else missing)
        if self.unique:
            # Every copy of a duplicated id is flagged, so the copies meet again in the subset.
            flags.append(column.is_duplicated())
        return pl.any_horizontal(flags) if flags else pl.lit(False)


def _typed_allowed(column: ColumnSpec) -> list[str] | list[int] | list[bool]:
    """The spec writes allowed values as strings; compare them in the column's own type."""
    values = column.allowed or []
    try:
        if column.dtype == "int":
            return [int(v) for v in values]
        if column.dtype == "bool":
            truth = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
            return [truth[v.strip().lower()] for v in values]
    except (KeyError, ValueError) as exc:
        raise SpecError(
            f"column {column.name!r}: allowed values {values} are not all {column.dtype}"
        ) from exc
    return list(values)


def _allowed(values: Sequence[object]) -> _RowCheck:
    allowed = list(values)
    return _RowCheck("allowed_values", lambda col: col.is_in(allowed))


def _column_checks(column: ColumnSpec) -> tuple[_RowCheck, ...]:
    checks: list[_RowCheck] = []
    if column.dtype == "float":
        checks.append(_RowCheck("finite", lambda col: col.is_finite()))
    if (low := column.min) is not None:
        checks.append(_RowCheck(f"min({low:g})", lambda col: col.ge(low)))
    if (high := column.max) is not None:
        checks.append(_RowCheck(f"max({high:g})", lambda col: col.le(high)))
    if column.allowed is not None:
        checks.append(_allowed(_typed_allowed(column)))
    elif column.dtype == "string":
        checks.append(
            _RowCheck(
                f"max_length({MAX_STRING_LENGTH})",
                lambda col: col.str.len_chars().le(MAX_STRING_LENGTH),
            )
        )
    return tuple(checks)


def _rules(spec: DatasetSpec, kind: Kind) -> list[_ColumnRules]:
    """The spec's rules for a batch of ``kind``, column by column (in schema order)."""
    identity = _ColumnRules(spec.id.name, spec.id.polars_dtype, unique=True)
    if kind == "labels":
        labels = [spec.negative_label, spec.positive_label]
        return [
            identity,
            _ColumnRules(spec.target.name, spec.target.polars_dtype, checks=(_allowed(labels),)),
        ]
    return [
        identity,
        _ColumnRules(spec.time.name, spec.time.polars_dtype),
        *(
            _ColumnRules(
                column.name,
                column.polars_dtype,
                nullable=column.nullable,
                checks=_column_checks(column),
            )
            for column in spec.features
        ),
    ]


def _suspects(frame: pl.DataFrame, rules: Sequence[_ColumnRules]) -> pl.DataFrame:
    """One flag column per rule: True where a row can fail a row-level check of that rule."""
    # One flag column per rule: polars evaluates the columns of a select in parallel, the terms of
    # a single filter predicate one after the other.
    return frame.select(rule.suspect().alias(rule.name) for rule in rules)


def _pruned(rules: Sequence[_ColumnRules], flags: pl.DataFrame) -> list[_ColumnRules]:
    """``rules`` without the row-level checks of columns where no row is suspect.

    A column none of whose rows the pre-pass flagged cannot fail its nullability, uniqueness or
    value checks (the flags are a superset of those failures), so pandera checks only its type
    there; every check of a flagged column still runs on the suspect rows.
    """
    flagged = flags.select(pl.all().any()).row(0, named=True)
    return [
        rule if flagged[rule.name] else _ColumnRules(rule.name, rule.dtype, nullable=True)
        for rule in rules
    ]


def build_schema(spec: DatasetSpec, kind: Kind = "records") -> pa.DataFrameSchema:
    """The pandera schema derived from the spec: types, nullability, ranges, allowed sets, ids."""
    return _schema(spec, kind, _rules(spec, kind))


def _schema(spec: DatasetSpec, kind: Kind, rules: Sequence[_ColumnRules]) -> pa.DataFrameSchema:
    columns = {rule.name: rule.pandera() for rule in rules}
    return pa.DataFrameSchema(columns, strict=True, name=f"{spec.name}:{kind}")


def _convertible(source: pl.DataType) -> bool:
    return (
        source.is_numeric()
        or source in (pl.String, pl.Boolean, pl.Null, pl.Categorical)
        or isinstance(source, pl.Enum)
    )


def _coerce(
    df: pl.DataFrame, expected: dict[str, pl.DataType], source_file: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast each column to its declared type; values that do not convert become row failures.

    A column whose type cannot hold the declared one at all (a list, a struct, binary) fails the
    whole file with :class:`BatchReadError`. Failures name their rows by ``ROW_COLUMN`` when
    ``df`` has it (kept in the result too), else by position counted from 1.
    """
    casts: list[pl.Expr] = []
    failures: list[pl.Expr] = []
    numbered = ROW_COLUMN in df.columns
    for name, dtype in expected.items():
        source = df.schema[name]
        if source == dtype:
            casts.append(pl.col(name))
            continue
        if not _convertible(source):
            raise BatchReadError(
                Path(source_file),
                f"column {name!r} has type {source}, which cannot be read as {dtype}",
            )
        col = pl.col(name)
        if dtype == pl.String:
            converted = col.cast(pl.String, strict=False)
        elif source == pl.String and dtype == pl.Boolean:
            lowered = col.str.strip_chars().str.to_lowercase()
            converted = (
                pl.when(lowered.is_in(["true", "1", "yes"]))
                .then(True)
                .when(lowered.is_in(["false", "0", "no"]))
                .then(False)
                .otherwise(None)
            )
        elif source == pl.String:
            converted = col.str.strip_chars().cast(dtype, strict=False)
        else:
            converted = col.cast(dtype, strict=False)
        lossy = col.is_not_null() & converted.is_null()
        if dtype.is_integer() and (source.is_float() or source == pl.String):
            as_float = col.cast(pl.Float64, strict=False)
            lossy = lossy | (as_float.is_not_null() & (as_float != as_float.floor()))
            converted = pl.when(lossy).then(None).otherwise(converted)
        casts.append(converted.cast(dtype).alias(name))
        failures.append(
            pl.when(lossy)
            .then(
                pl.struct(
                    pl.lit(name).alias("column"),
                    pl.lit(f"dtype({dtype})").alias("check"),
                    col.cast(pl.String).alias("value"),
                )
            )
            .alias(name)
        )
    coerced = df.select(*([pl.col(ROW_COLUMN)] if numbered else []), *casts)
    if not failures:
        return coerced, pl.DataFrame(schema={ROW_COLUMN: pl.Int64, "reason": REASON_DTYPE})
    rows = (
        pl.col(ROW_COLUMN)
        if numbered
        else pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(ROW_COLUMN)
    )
    reasons = (
        df.select(rows, *failures)
        .unpivot(index=ROW_COLUMN, value_name="reason")
        .drop("variable")
        .drop_nulls("reason")
    )
    return coerced, reasons


def _schema_failures(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> pl.DataFrame:
    """Run pandera lazily on data and return (row, reason) pairs."""
    try:
        with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA):
            schema.validate(frame.drop(ROW_COLUMN), lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
    except SchemaError as exc:  # pragma: no cover - lazy=True collects, kept for safety
        raise ValueError(str(exc)) from exc
    else:
        return pl.DataFrame(schema={ROW_COLUMN: pl.Int64, "reason": REASON_DTYPE})
    row_level = cases.filter(pl.col("index").is_not_null())
    frame_level = cases.filter(pl.col("index").is_null())
    if frame_level.height:
        raise ValueError(
            "schema-level failures: "
            + "; ".join(
                f"{r['column']}: {r['check']} ({r['failure_case']})"
                for r in frame_level.iter_rows(named=True)
            )
        )
    positions = row_level["index"].cast(pl.Int64)
    return pl.DataFrame(
        {
            ROW_COLUMN: frame[ROW_COLUMN].gather(positions),
            "reason": row_level.select(
                pl.struct(pl.col("column"), pl.col("check"), pl.col("failure_case").alias("value"))
            ).to_series(),
        },
        schema={ROW_COLUMN: pl.Int64, "reason": REASON_DTYPE},
    )


def validate_batch(
    df: pl.DataFrame,
    spec: DatasetSpec,
    *,
    batch_id: str,
    source_file: str,
    max_reject_rate: float,
    kind: Kind = "records",
    now: datetime | None = None,
) -> ValidationResult:
    """Validate a batch held as one frame (a request's records, a file read whole)."""
    return _validate_chunks(
        lambda: iter([df]),
        spec,
        batch_id=batch_id,
        source_file=source_file,
        max_reject_rate=max_reject_rate,
        kind=kind,
        now=now,
    )


def validate_file(
    path: Path,
    spec: DatasetSpec,
    *,
    batch_id: str,
    max_reject_rate: float,
    kind: Kind = "records",
    now: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ValidationResult:
    """Validate a landed file ``chunk_rows`` rows at a time: the same outcome as validating it
    whole (row numbers, every reason, ids duplicated across chunks, the batch's reject rate),
    while memory holds one chunk as text plus the typed rows that pass, never the file as text.

    Raises :class:`BatchReadError` when the file cannot be read (:func:`scan_batch_file`).
    """
    path = Path(path)
    lf = scan_batch_file(path, spec, kind)
    spill = Path(tempfile.mkdtemp(prefix="scoreloop-validate-"))
    try:
        result = _validate_chunks(
            lambda: _file_chunks(path, lf, chunk_rows),
            spec,
            batch_id=batch_id,
            source_file=str(path),
            max_reject_rate=max_reject_rate,
            kind=kind,
            now=now,
            spill=spill,
        )
    except BaseException:
        shutil.rmtree(spill, ignore_errors=True)
        raise
    if result.rows == 0:
        result.close()
        raise _no_rows(path)
    return result


def _check_chunk(
    frame: pl.DataFrame,
    offset: int,
    spec: DatasetSpec,
    kind: Kind,
    rules: Sequence[_ColumnRules],
    source_file: str,
    *,
    first: bool = True,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The typed chunk and its failures, one (row, reason) per failure; rows are numbered from
    ``offset + 1`` (the chunk's place in the batch).

    pandera reports every failure, but costs a pass (and a collect) per check. One fused polars
    pass over the same checks flags the rows that can fail (a superset); pandera then checks those
    rows (and the whole frame's schema: columns and types are the same on the subset), with every
    check of each column where some row was flagged, so every failure case is still pandera's,
    found at about the cost of one polars pass. pandera runs on the first chunk of a batch (its
    frame-level checks) and on every chunk with suspect rows; a later chunk without suspects has
    no row that could fail, so pandera's fixed cost is skipped there."""
    coerced, dtype_reasons = _coerce(frame, expected_schema(spec, kind), source_file)
    flags = _suspects(coerced, rules)
    suspect = flags.select(pl.any_horizontal(pl.all())).to_series()
    positions = suspect.arg_true()
    if first or positions.len():
        subset = coerced.filter(suspect).with_columns(
            (positions.cast(pl.Int64) + 1).alias(ROW_COLUMN)
        )
        schema_reasons = _schema_failures(subset, _schema(spec, kind, _pruned(rules, flags)))
    else:
        schema_reasons = pl.DataFrame(schema={ROW_COLUMN: pl.Int64, "reason": REASON_DTYPE})
    # A value that failed to convert is null after coercion; its not-null failure is the same fault.
    flagged = dtype_reasons.select(
        ROW_COLUMN, pl.col("reason").struct.field("column").alias("__column")
    )
    schema_reasons = schema_reasons.join(
        flagged,
        left_on=[ROW_COLUMN, pl.col("reason").struct.field("column")],
        right_on=[ROW_COLUMN, "__column"],
        how="anti",
    )
    reasons = pl.concat([dtype_reasons, schema_reasons]).with_columns(
        pl.col(ROW_COLUMN) + offset,
        pl.col("reason").struct.with_fields(_clip(pl.field("value")).alias("value")),
    )
    return coerced, reasons


def _duplicates_across_chunks(
    ids: list[pl.Series], reasons: pl.DataFrame, id_name: str
) -> pl.DataFrame:
    """Uniqueness failures pandera could not see: copies of an id that fell in different chunks
    (copies within one chunk are pandera's already), as pandera words them."""
    if len(ids) < 2:
        return reasons.clear()
    every = pl.DataFrame(pl.concat(ids)).with_row_index(ROW_COLUMN, offset=1)
    every = every.with_columns(pl.col(ROW_COLUMN).cast(pl.Int64))
    copies = every.filter(pl.col(id_name).is_not_null() & pl.col(id_name).is_duplicated())
    seen = reasons.filter(
        (pl.col("reason").struct.field("column") == id_name)
        & (pl.col("reason").struct.field("check") == UNIQUENESS_CHECK)
    ).select(ROW_COLUMN)
    return (
        copies.join(seen, on=ROW_COLUMN, how="anti")
        .select(
            pl.col(ROW_COLUMN),
            pl.struct(
                pl.lit(id_name).alias("column"),
                pl.lit(UNIQUENESS_CHECK).alias("check"),
                pl.col(id_name).cast(pl.String).alias("value"),
            ).alias("reason"),
        )
        .cast({"reason": REASON_DTYPE})
    )


def _validate_chunks(
    chunks: Callable[[], Iterator[pl.DataFrame]],
    spec: DatasetSpec,
    *,
    batch_id: str,
    source_file: str,
    max_reject_rate: float,
    kind: Kind,
    now: datetime | None,
    spill: Path | None = None,
) -> ValidationResult:
    """Validate a batch delivered as chunks (``chunks()`` starts them again from the first; it is
    called a second time only to rebuild quarantine when it needs rows no longer held: a refused
    batch, or copies of an id found in different chunks). With ``spill``, each chunk's typed rows
    are written there as parquet instead of being held, so memory stays one chunk's worth."""
    expected = expected_schema(spec, kind)
    rules = _rules(spec, kind)
    stamp = now or datetime.now(UTC)
    id_name = spec.id.name
    typed: list[pl.LazyFrame | pl.DataFrame] = []
    heights: list[int] = []
    found: list[pl.DataFrame] = []
    parts: list[pl.DataFrame] = []
    ids: list[pl.Series] = []
    ignored: list[str] | None = None
    rows = 0

    def quarantine_of(text: pl.DataFrame, offset: int, per_row: pl.DataFrame) -> pl.DataFrame:
        mine = per_row.filter(pl.col(ROW_COLUMN).is_between(offset + 1, offset + text.height))
        bad = text.gather(mine[ROW_COLUMN] - offset - 1).hstack(mine)
        return _quarantine(bad, expected, batch_id, kind, source_file, id_name, stamp)

    for chunk in chunks():
        if ignored is None:
            missing = [c for c in expected if c not in chunk.columns]
            if missing:
                raise BatchReadError(
                    Path(source_file),
                    f"missing column(s) {missing}; the spec {spec.name!r} requires "
                    f"{list(expected)}",
                )
            ignored = [c for c in chunk.columns if c not in expected]
        text = chunk.select(*expected)
        del chunk
        coerced, reasons = _check_chunk(text, rows, spec, kind, rules, source_file, first=not typed)
        if spill is None:
            typed.append(coerced)
        else:
            spilled = spill / f"part-{len(typed):06d}.parquet"
            coerced.write_parquet(spilled, compression="lz4", statistics=False)
            typed.append(pl.scan_parquet(spilled))
        heights.append(coerced.height)
        found.append(reasons)
        parts.append(quarantine_of(text, rows, _per_row(reasons)))
        if kind == "records":
            ids.append(coerced.get_column(id_name))  # no copy; numbered only if chunks > 1
        rows += text.height
        del text
    reasons = (
        pl.concat(found)
        if found
        else pl.DataFrame(schema={ROW_COLUMN: pl.Int64, "reason": REASON_DTYPE})
    )
    across = _duplicates_across_chunks(ids, reasons, id_name)
    per_row = _per_row(pl.concat([reasons, across]))
    rejected_rows = per_row[ROW_COLUMN]
    rejected = rejected_rows.len()
    rate = rejected / rows if rows else 0.0
    status: Status = "refused" if rate > max_reject_rate else "accepted"
    if status == "refused" or across.height:
        # quarantine needs rows no chunk kept as delivered: read the chunks again
        if status == "refused":
            refusal = {
                "column": "*",  # the batch, not one column
                "check": "batch_refused",
                "value": f"reject rate {rate:.4f} > max_reject_rate {max_reject_rate}",
            }
            per_row = (
                pl.DataFrame({ROW_COLUMN: pl.int_range(1, rows + 1, dtype=pl.Int64, eager=True)})
                .join(per_row, on=ROW_COLUMN, how="left", maintain_order="left")
                .with_columns(
                    pl.col("reasons").fill_null(pl.lit([refusal], dtype=pl.List(REASON_DTYPE)))
                )
            )
        parts, offset = [], 0
        for chunk in chunks():
            text = chunk.select(*expected)
            parts.append(quarantine_of(text, offset, per_row))
            offset += text.height
    quarantine = pl.concat(parts) if parts else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    if status == "refused" or not typed:
        # a schema, not a scan: nothing to read (the spill may be gone by then)
        schema = typed[0].collect_schema() if typed else pl.Schema(expected)
        valid: pl.LazyFrame = pl.LazyFrame(schema=schema)
    else:
        kept, offset = [], 0
        for part, height in zip(typed, heights, strict=True):
            gone = rejected_rows.filter(rejected_rows.is_between(offset + 1, offset + height))
            if gone.len() and isinstance(part, pl.DataFrame):
                keep = np.ones(height, dtype=bool)
                keep[(gone - offset - 1).to_numpy()] = False
                part = part.filter(pl.Series(keep))
            elif gone.len():
                part = part.filter(~pl.int_range(pl.len()).is_in((gone - offset - 1).implode()))
            kept.append(part.lazy())
            offset += height
        valid = pl.concat(kept) if len(kept) > 1 else kept[0]
    return ValidationResult(
        batch_id=batch_id,
        kind=kind,
        source_file=source_file,
        status=status,
        valid_rows=valid,
        quarantine=quarantine,
        rows=rows,
        rejected=rejected,
        max_reject_rate=max_reject_rate,
        ignored_columns=ignored or [],
        spill=spill,
    )


def _per_row(reasons: pl.DataFrame) -> pl.DataFrame:
    """One row per failing row (in row order), its reasons in the order they were found."""
    return (
        reasons.group_by(ROW_COLUMN, maintain_order=True)
        .agg(pl.col("reason").alias("reasons"))
        .sort(ROW_COLUMN)
    )


def _quarantine(
    bad: pl.DataFrame,
    expected: dict[str, pl.DataType],
    batch_id: str,
    kind: Kind,
    source_file: str,
    id_name: str,
    stamp: datetime,
) -> pl.DataFrame:
    """Quarantine rows: ``bad`` holds each rejected row as delivered, its number and reasons."""
    return bad.select(
        pl.lit(batch_id).alias("batch_id"),
        pl.lit(kind).alias("kind"),
        pl.lit(source_file).alias("source_file"),
        pl.col(ROW_COLUMN).alias("row"),
        pl.col(id_name).cast(pl.String).alias("entity_id"),
        pl.col("reasons"),
        pl.struct(
            *(
                _clip(pl.col(c)).alias(c) if bad.schema[c] == pl.String else pl.col(c)
                for c in expected
            )
        )
        .struct.json_encode()
        .alias("record"),
        pl.lit(stamp).cast(pl.Datetime("us", "UTC")).alias("quarantined_at"),
    )


def _clip(value: pl.Expr) -> pl.Expr:
    """Long offending values (10k-character strings) are cut, saying how long they were."""
    length = value.str.len_chars()
    return (
        pl.when(length > MAX_REASON_VALUE)
        .then(
            pl.concat_str(
                value.str.slice(0, MAX_REASON_VALUE),
                pl.lit("... ("),
                length.cast(pl.String),
                pl.lit(" characters)"),
            )
        )
        .otherwise(value)
    )
