"""Reading landed batch files and validating them against the spec (pandera, polars backend).

Validation is lazy (every failure at once) and checks data, not only the schema. Rows that fail go
to quarantine with every reason (column, check, offending value); the rest are accepted, unless
the batch's reject rate is above ``max_reject_rate``, in which case the whole batch is refused and
all of its rows are quarantined (nothing is lost, nothing downstream uses it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
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


def read_batch_file(path: Path, spec: DatasetSpec, kind: Kind = "records") -> pl.DataFrame:
    """Read a landed parquet or CSV file, keeping the columns the spec knows, in spec order.

    CSV is read as text so that a bad value fails one row (in validation), not the whole file.
    Raises :class:`BatchReadError` naming the file and the cause when it cannot be read at all.
    """
    path = Path(path)
    if not path.exists():
        raise BatchReadError(path, "file not found")
    if path.stat().st_size == 0:
        raise BatchReadError(path, "file is empty (0 bytes)")
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            df = pl.read_parquet(path)
        elif suffix == ".csv":
            df = pl.read_csv(path, infer_schema=False, encoding="utf8")
            if spec.source is not None:
                # the reading the spec records (trimmed values, its missing markers as null)
                df = clean_text(df.lazy(), spec.source).collect()
        else:
            raise BatchReadError(path, f"unsupported format {suffix!r} (use .parquet or .csv)")
    except BatchReadError:
        raise
    except Exception as exc:  # polars raises several types for corrupt input; name the cause
        kind_of = "parquet" if suffix in {".parquet", ".pq"} else "CSV"
        raise BatchReadError(
            path, f"cannot be read as {kind_of} ({type(exc).__name__}: {exc})"
        ) from exc
    expected = expected_schema(spec, kind)
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise BatchReadError(
            path, f"missing column(s) {missing}; the spec {spec.name!r} requires {list(expected)}"
        )
    if df.height == 0:
        raise BatchReadError(path, "file has a header but no rows")
    return df


@dataclass
class ValidationResult:
    """The outcome of validating one batch."""

    batch_id: str
    kind: Kind
    source_file: str
    status: Status
    valid: pl.DataFrame
    quarantine: pl.DataFrame
    rows: int
    rejected: int
    max_reject_rate: float
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def reject_rate(self) -> float:
        return self.rejected / self.rows if self.rows else 0.0

    @property
    def accepted(self) -> int:
        return self.valid.height

    def top_reasons(self, k: int = 10) -> pl.DataFrame:
        """Most frequent (column, check) reasons with a sample offending value."""
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
            .agg(pl.len().alias("rows"), pl.col("value").first().alias("example"))
            .sort(["rows", "column", "check"], descending=[True, False, False])
            .head(k)
        )


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
    """Validate a batch read by :func:`read_batch_file`; split it into valid rows and quarantine."""
    expected = expected_schema(spec, kind)
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise BatchReadError(
            Path(source_file),
            f"missing column(s) {missing}; the spec {spec.name!r} requires {list(expected)}",
        )
    ignored = [c for c in df.columns if c not in expected]
    frame = df.select(*expected)
    coerced, dtype_reasons = _coerce(frame, expected, source_file)
    # pandera reports every failure, but costs a pass (and a collect) per check. One fused polars
    # pass over the same checks flags the rows that can fail (a superset); pandera then checks
    # those rows (and the whole frame's schema: columns and types are the same on the subset),
    # with every check of each column where some row was flagged, so every failure case is still
    # pandera's, found at about the cost of one polars pass.
    rules = _rules(spec, kind)
    flags = _suspects(coerced, rules)
    suspect = flags.select(pl.any_horizontal(pl.all())).to_series()
    positions = suspect.arg_true()
    subset = coerced.filter(suspect).with_columns((positions.cast(pl.Int64) + 1).alias(ROW_COLUMN))
    schema_reasons = _schema_failures(subset, _schema(spec, kind, _pruned(rules, flags)))
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
        pl.col("reason").struct.with_fields(_clip(pl.field("value")).alias("value"))
    )
    per_row = reasons.group_by(ROW_COLUMN).agg(pl.col("reason").alias("reasons")).sort(ROW_COLUMN)
    rejected_rows = per_row[ROW_COLUMN]
    rejected = rejected_rows.len()
    rate = rejected / frame.height if frame.height else 0.0
    status: Status = "refused" if rate > max_reject_rate else "accepted"
    if status == "refused":
        refusal = {
            "column": "*",  # the batch, not one column
            "check": "batch_refused",
            "value": f"reject rate {rate:.4f} > max_reject_rate {max_reject_rate}",
        }
        everyone = pl.DataFrame(
            {ROW_COLUMN: pl.int_range(1, frame.height + 1, dtype=pl.Int64, eager=True)}
        ).join(per_row, on=ROW_COLUMN, how="left", maintain_order="left")
        per_row = everyone.with_columns(
            pl.col("reasons").fill_null(pl.lit([refusal], dtype=pl.List(REASON_DTYPE)))
        )
        bad = frame.hstack(per_row)
    else:
        # the rejected rows as they arrived (before coercion), in row order
        bad = frame.gather(per_row[ROW_COLUMN] - 1).hstack(per_row)
    stamp = now or datetime.now(UTC)
    quarantine = bad.select(
        pl.lit(batch_id).alias("batch_id"),
        pl.lit(kind).alias("kind"),
        pl.lit(source_file).alias("source_file"),
        pl.col(ROW_COLUMN).alias("row"),
        pl.col(spec.id.name).cast(pl.String).alias("entity_id"),
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
    if status == "refused":
        valid = coerced.clear()
    elif rejected:
        keep = np.ones(frame.height, dtype=bool)
        keep[(rejected_rows - 1).to_numpy()] = False
        valid = coerced.filter(pl.Series(keep))
    else:
        valid = coerced
    return ValidationResult(
        batch_id=batch_id,
        kind=kind,
        source_file=source_file,
        status=status,
        valid=valid,
        quarantine=quarantine,
        rows=frame.height,
        rejected=rejected,
        max_reject_rate=max_reject_rate,
        ignored_columns=ignored,
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
