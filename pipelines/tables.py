"""Delta Lake tables partitioned by batch: one atomic commit per batch, schema enforced on write.

Readers of a Delta table only ever see committed versions, so a crash between writing files and
committing leaves the previous version visible. A batch is (re)written with a predicate overwrite,
which replaces exactly that partition in one commit: re-processing never duplicates.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from pipelines.errors import ScoreloopError
from pipelines.settings import get_settings

log = logging.getLogger(__name__)

BATCH_COLUMN = "batch_id"
#: Attempts at one commit when concurrent writers (other batches, other runs) commit first.
COMMIT_ATTEMPTS = 8
#: First back-off before retrying a conflicting commit (doubled each time, with jitter).
COMMIT_BACKOFF_SECONDS = 0.05

T = TypeVar("T")


class TableSchemaError(ScoreloopError, ValueError):
    """A frame does not match the declared schema of the table it is written to."""


class CommitConflictError(ScoreloopError, RuntimeError):
    """A commit kept conflicting with concurrent writers after every retry."""


def retry_commit(
    commit: Callable[[], T],
    *,
    table: str,
    attempts: int = COMMIT_ATTEMPTS,
    backoff: float = COMMIT_BACKOFF_SECONDS,
) -> T:
    """Run ``commit`` (an idempotent write), retrying Delta commit conflicts with backoff.

    A predicate overwrite that loses the race to a concurrent commit fails with
    ``CommitFailedError`` and commits nothing, so running it again is safe. Raises
    :class:`CommitConflictError` naming the table when every attempt conflicted.
    """
    for attempt in range(1, attempts + 1):
        try:
            return commit()
        except CommitFailedError as exc:
            if attempt == attempts:
                raise CommitConflictError(
                    f"table {table!r}: the commit conflicted with concurrent writers "
                    f"{attempts} times ({exc}); nothing was committed, run it again"
                ) from exc
            delay = (
                backoff * 2 ** (attempt - 1) * (1 + random.random())
            )  # jitter spreads the retries
            log.warning("table %s: concurrent commit (%s), retrying in %.2fs", table, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def table_uri(root: str, name: str) -> str:
    """Location of table ``name`` under a local root or an object-store URI."""
    return f"{root.rstrip('/')}/{name}"


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _options(uri: str, storage_options: Mapping[str, str] | None) -> dict[str, str]:
    """Explicit options, else the configured object-store options for a remote ``uri``.

    Callers pass only a URI; the endpoint and region come from the settings
    (``SCORELOOP_S3_ENDPOINT_URL``, ``SCORELOOP_S3_REGION``), so an ``s3://`` table root is a
    configuration change, not a code change.
    """
    if storage_options is not None:
        return dict(storage_options)
    return {} if _is_local(uri) else get_settings().storage_options()


def table_exists(uri: str, storage_options: Mapping[str, str] | None = None) -> bool:
    storage_options = _options(uri, storage_options)
    if _is_local(uri) and not (Path(uri.removeprefix("file://")) / "_delta_log").exists():
        return False
    try:
        DeltaTable(uri, storage_options=dict(storage_options or {}))
    except TableNotFoundError:
        return False
    return True


def conform(df: pl.DataFrame, schema: Mapping[str, pl.DataType], table: str) -> pl.DataFrame:
    """Check ``df`` against the declared schema: same columns, same types, no silent casts.

    Integer widths may be widened (an Int32 id becomes Int64) because that loses nothing;
    any other difference is an error naming the table and the column.
    """
    missing = [c for c in schema if c not in df.columns]
    extra = [c for c in df.columns if c not in schema]
    if missing or extra:
        raise TableSchemaError(f"table {table!r}: missing columns {missing}, unexpected {extra}")
    casts = []
    for name, dtype in schema.items():
        actual = df.schema[name]
        if actual == dtype:
            casts.append(pl.col(name))
        elif (actual.is_integer() and dtype.is_integer()) or actual == pl.Null:
            casts.append(pl.col(name).cast(dtype, strict=True))
        else:
            raise TableSchemaError(
                f"table {table!r}: column {name!r} is {actual}, the table declares {dtype}"
            )
    return df.select(casts)


def write_batch(
    uri: str,
    df: pl.DataFrame,
    batch_id: str,
    schema: Mapping[str, pl.DataType],
    *,
    table: str,
    storage_options: Mapping[str, str] | None = None,
) -> int:
    """Replace partition ``batch_id`` of the table with ``df`` in one commit. Returns the version.

    Every row must carry ``batch_id``; an empty frame removes the partition's rows.
    """
    df = conform(df, schema, table)
    if df.height and (df[BATCH_COLUMN] != batch_id).any():
        raise ValueError(f"table {table!r}: rows of another batch in the write for {batch_id!r}")
    options = _options(uri, storage_options)
    predicate = f"{BATCH_COLUMN} = '{_quote(batch_id)}'"
    data = df.to_arrow()

    def commit() -> int:
        if not table_exists(uri, options):
            try:
                write_deltalake(
                    uri, data, mode="error", partition_by=[BATCH_COLUMN], storage_options=options
                )
                return int(DeltaTable(uri, storage_options=options).version())
            except Exception:
                # a concurrent first writer created the table: overwrite our partition instead
                if not table_exists(uri, options):
                    raise
        write_deltalake(
            uri,
            data,
            mode="overwrite",
            predicate=predicate,
            partition_by=[BATCH_COLUMN],
            storage_options=options,
        )
        return int(DeltaTable(uri, storage_options=options).version())

    return retry_commit(commit, table=table)


def write_batch_stream(
    uri: str,
    frames: Callable[[], Iterable[pl.DataFrame]],
    batch_id: str,
    schema: Mapping[str, pl.DataType],
    *,
    table: str,
    storage_options: Mapping[str, str] | None = None,
) -> int:
    """:func:`write_batch` for a batch streamed in chunks (``frames()`` starts the stream again
    on each attempt): partition ``batch_id`` replaced in one commit, commit conflicts retried,
    an empty stream removes the partition's rows. Memory holds one chunk, not the batch."""
    return retry_commit(
        lambda: write_partition_stream(
            uri,
            frames(),
            {BATCH_COLUMN: batch_id},
            schema,
            table=table,
            storage_options=storage_options,
        ),
        table=table,
    )


def write_partition_stream(
    uri: str,
    frames: Iterable[pl.DataFrame],
    match: Mapping[str, str],
    schema: Mapping[str, pl.DataType],
    *,
    table: str,
    partition_by: Sequence[str] | None = None,
    storage_options: Mapping[str, str] | None = None,
    target_file_size: int | None = None,
) -> int:
    """Replace the rows where each ``match`` column equals its value with ``frames``, in ONE commit.

    ``frames`` is consumed lazily (a generator of chunks is streamed to Delta, so a partition far
    larger than memory can be written); each chunk is conformed to ``schema`` and must carry the
    ``match`` values. If the iterator raises, or the process dies, nothing is committed and
    readers keep the previous version. ``partition_by`` defaults to the ``match`` columns.
    ``target_file_size`` (bytes) caps the data files; delta-rs buffers a whole file in memory
    before writing it out, so a smaller target bounds the writer's memory (default: delta-rs's).
    Returns the new table version.
    """
    options = _options(uri, storage_options)
    partitions = list(partition_by or match)
    predicate = " AND ".join(f"{column} = '{_quote(value)}'" for column, value in match.items())
    arrow_schema = pl.DataFrame(schema=dict(schema)).to_arrow().schema

    failures: list[Exception] = []

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for frame in frames:
                chunk = conform(frame, schema, table)
                for column, value in match.items():
                    if chunk.height and (chunk[column] != value).any():
                        raise ValueError(
                            f"table {table!r}: rows with {column} other than {value!r} in the "
                            f"write for {dict(match)}"
                        )
                for batch in chunk.to_arrow().to_batches():
                    yield batch if batch.schema == arrow_schema else batch.cast(arrow_schema)
        except Exception as exc:
            failures.append(exc)
            raise

    _create_if_missing(uri, arrow_schema, partitions, options)
    reader = pa.RecordBatchReader.from_batches(arrow_schema, batches())
    try:
        write_deltalake(
            uri,
            reader,
            mode="overwrite",
            predicate=predicate,
            partition_by=partitions,
            storage_options=options,
            target_file_size=target_file_size,
        )
    except Exception:
        # delta-rs reports an error raised by the iterator as a generic DeltaError carrying its
        # traceback text; raise the original instead (nothing was committed either way).
        if failures:
            raise failures[0] from None
        raise
    return int(DeltaTable(uri, storage_options=options).version())


def _create_if_missing(
    uri: str, schema: pa.Schema, partitions: list[str], options: dict[str, str]
) -> None:
    """Create an empty table (one cheap commit) so concurrent first writers do not race.

    Two processes streaming their first partitions at once would both try to create the table
    and one would fail after consuming its stream; creating it empty first makes the race cheap
    and harmless (the loser finds the table there), and every data write a predicate overwrite.
    """
    if table_exists(uri, options):
        return
    try:
        write_deltalake(
            uri,
            schema.empty_table(),
            mode="error",
            partition_by=partitions,
            storage_options=options,
        )
    except Exception:
        if not table_exists(uri, options):
            raise


def _quote(value: str) -> str:
    return value.replace("'", "''")


def read_table(
    uri: str,
    *,
    batch_id: str | None = None,
    schema: Mapping[str, pl.DataType] | None = None,
    version: int | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Read a table (optionally one batch, optionally at a past version).

    A table that does not exist yet reads as an empty frame of ``schema`` when one is given.
    """
    options = _options(uri, storage_options)
    if not table_exists(uri, options):
        if schema is None:
            raise FileNotFoundError(f"no Delta table at {uri}")
        return pl.DataFrame(schema=dict(schema))
    lf = pl.scan_delta(uri, version=version, storage_options=options or None)
    if batch_id is not None:
        lf = lf.filter(pl.col(BATCH_COLUMN) == batch_id)
    return lf.collect()


def read_batches(
    uri: str,
    batch_ids: Sequence[str],
    schema: Mapping[str, pl.DataType],
    *,
    where: Mapping[str, str] | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The ``schema`` columns of the rows of ``batch_ids`` whose columns equal ``where``.

    A table that does not exist yet (or no batch asked for) reads as an empty frame of ``schema``.
    """
    options = _options(uri, storage_options)
    if not batch_ids or not table_exists(uri, options):
        return pl.DataFrame(schema=dict(schema))
    condition = pl.col(BATCH_COLUMN).is_in(list(batch_ids))
    for column, value in (where or {}).items():
        condition &= pl.col(column) == value
    return (
        pl.scan_delta(uri, storage_options=options or None)
        .filter(condition)
        .select(list(schema))
        .collect()
    )


def scan_table(uri: str, storage_options: Mapping[str, str] | None = None) -> pl.LazyFrame:
    """A lazy scan of the table at ``uri`` (which must exist), on local disk or the store."""
    options = _options(uri, storage_options)
    return pl.scan_delta(uri, storage_options=options or None)


def open_table(uri: str, storage_options: Mapping[str, str] | None = None) -> DeltaTable:
    """The delta-rs handle of the table at ``uri`` with the configured storage options."""
    return DeltaTable(uri, storage_options=_options(uri, storage_options))


def table_version(uri: str, storage_options: Mapping[str, str] | None = None) -> int | None:
    options = _options(uri, storage_options)
    if not table_exists(uri, options):
        return None
    return int(DeltaTable(uri, storage_options=options).version())


def batch_ids(uri: str, storage_options: Mapping[str, str] | None = None) -> list[str]:
    """Distinct batch ids present in the table, sorted."""
    options = _options(uri, storage_options)
    if not table_exists(uri, options):
        return []
    ids = (
        pl.scan_delta(uri, storage_options=options or None)
        .select(pl.col(BATCH_COLUMN).unique())
        .collect()[BATCH_COLUMN]
    )
    return sorted(ids.to_list())
