"""Validation cost: ``validate_batch`` (pandera + quarantine) vs bare polars doing the same checks.

Both sides get the same 1M rows resampled from the bundled ACS data (0.5% of them corrupted so
that the quarantine path runs) and must find the same rejected rows: dtype, nulls, ranges,
finite floats, allowed sets, string lengths and unique ids. Warm-up, then the median of repeats
(alternating the two sides).

    .venv/bin/python benchmarks/validation.py      # SCORELOOP_BENCH_ROWS=200000 for a quick run
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import polars as pl

from pipelines.settings import BUNDLED_SPEC
from pipelines.spec import DatasetSpec, load_spec
from pipelines.validate import MAX_STRING_LENGTH, validate_batch

ROWS = int(os.environ.get("SCORELOOP_BENCH_ROWS", "1000000"))
REPEATS = int(os.environ.get("SCORELOOP_BENCH_REPEATS", "5"))
BAD_SHARE = 0.005


def make_rows(spec: DatasetSpec, rows: int) -> pl.DataFrame:
    source = pl.read_parquet(BUNDLED_SPEC.parent / "employment_MA.parquet")
    df = (
        source.select(spec.record_columns)
        .sample(rows, with_replacement=True, seed=11)
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(spec.id.name))
    )
    rng = np.random.default_rng(11)
    bad = rng.random(rows) < BAD_SHARE
    kind = rng.integers(0, 3, rows)
    return df.with_columns(
        pl.when(pl.Series(bad & (kind == 0)))
        .then(pl.lit(500.0))
        .otherwise(pl.col("AGEP"))
        .alias("AGEP"),
        pl.when(pl.Series(bad & (kind == 1)))
        .then(pl.lit("99"))
        .otherwise(pl.col("SCHL"))
        .alias("SCHL"),
        pl.when(pl.Series(bad & (kind == 2))).then(None).otherwise(pl.col("MAR")).alias("MAR"),
    )


def bare_polars(df: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """The same checks as plain polars expressions; returns the rejected rows with reasons."""
    schema = spec.record_schema
    wrong = [name for name, dtype in schema.items() if df.schema[name] != dtype]
    if wrong:
        raise TypeError(f"dtype check failed for {wrong}")
    failures: list[pl.Expr] = [
        pl.col(spec.id.name).is_null().alias("id:not_nullable"),
        pl.col(spec.id.name).is_duplicated().alias("id:unique"),
        pl.col(spec.time.name).is_null().alias("time:not_nullable"),
    ]
    for column in spec.features:
        col = pl.col(column.name)
        if not column.nullable:
            failures.append(col.is_null().alias(f"{column.name}:not_nullable"))
        if column.dtype == "float":
            failures.append((~col.is_finite()).fill_null(False).alias(f"{column.name}:finite"))
        if column.min is not None:
            failures.append((col < column.min).fill_null(False).alias(f"{column.name}:min"))
        if column.max is not None:
            failures.append((col > column.max).fill_null(False).alias(f"{column.name}:max"))
        if column.allowed is not None:
            failures.append(
                (~col.is_in(column.allowed)).fill_null(False).alias(f"{column.name}:allowed")
            )
        elif column.dtype == "string":
            failures.append(
                (col.str.len_chars() > MAX_STRING_LENGTH)
                .fill_null(False)
                .alias(f"{column.name}:max_length")
            )
    flagged = df.with_row_index("__row", offset=1).with_columns(failures)
    names = [f.meta.output_name() for f in failures]
    reasons = pl.concat_list(
        [pl.when(pl.col(n)).then(pl.lit(n)).otherwise(None) for n in names]
    ).list.drop_nulls()
    return flagged.filter(pl.any_horizontal(names)).select(
        "__row",
        reasons.alias("reasons"),
        pl.struct(spec.record_columns).struct.json_encode().alias("record"),
    )


def paired_medians(ours: Callable[[], object], bare: Callable[[], object]) -> tuple[float, float]:
    """Median seconds of each side; repeats alternate so machine noise hits both alike."""
    ours()  # warm-up
    bare()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEATS):
        for side, work in enumerate((ours, bare)):
            start = time.perf_counter()
            work()
            samples[side].append(time.perf_counter() - start)
    return statistics.median(samples[0]), statistics.median(samples[1])


def main() -> None:
    spec = load_spec(BUNDLED_SPEC)
    df = make_rows(spec, ROWS)
    ours = validate_batch(df, spec, batch_id="bench", source_file="bench", max_reject_rate=0.05)
    theirs = bare_polars(df, spec)
    if ours.rejected != theirs.height:
        raise SystemExit(
            f"the two sides disagree: validate_batch rejected {ours.rejected}, "
            f"polars {theirs.height}"
        )
    ours_s, theirs_s = paired_medians(
        # .valid: the valid rows materialised too (valid_rows is lazy), so nothing is left undone
        lambda: (
            validate_batch(
                df, spec, batch_id="bench", source_file="bench", max_reject_rate=0.05
            ).valid
        ),
        lambda: bare_polars(df, spec),
    )
    print(f"rows={ROWS} rejected={ours.rejected} repeats={REPEATS}")
    print(f"validate_batch: {ours_s:.3f} s   bare polars: {theirs_s:.3f} s")
    print(f"bench validation_vs_polars: {ours_s / theirs_s:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
