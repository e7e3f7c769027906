"""Delta Lake tables partitioned by batch: one atomic commit per batch, schema enforced on write.

Readers of a Delta table only ever see committed versions, so a crash between writing files and
committing leaves the previous version visible. A batch is (re)written with a predicate overwrite,
which replaces exactly that partition in one commit: re-processing never duplicates.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction

from pipelines.errors import ScoreloopError
from pipelines.object_store import filesystem_for
from pipelines.settings import get_settings

log = logging.getLogger(__name__)

BATCH_COLUMN = "batch_id"
#: Attempts at one commit when concurrent writers (other batches, other runs) commit first.
COMMIT_ATTEMPTS = 8
#: First back-off before retrying a conflicting commit (doubled each time, with jitter).
COMMIT_BACKOFF_SECONDS = 0.05
#: Default target size of the data files a stream writes (a file is closed once it reaches this).
STREAM_FILE_BYTES = 64 * 1024 * 1024

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

    ``frames`` is consumed lazily (a generator of chunks is streamed to parquet files, so a
    partition far larger than memory can be written); each chunk is conformed to ``schema`` and
    must carry the ``match`` values. If the iterator raises, or the process dies, nothing is
    committed and readers keep the previous version. ``partition_by`` (default: the ``match``
    columns) must be the ``match`` columns: the stream fills exactly one partition.
    ``target_file_size`` (bytes) caps the data files (default :data:`STREAM_FILE_BYTES`).
    Returns the new table version.

    The data files are written here, chunk by chunk, with pyarrow's ``ParquetWriter`` (nothing
    is kept once a chunk is written), and committed with delta-rs as one transaction that replaces
    the partition (``create_write_transaction``, mode overwrite with the partition's filters).
    delta-rs's own streaming writer held about 350 MB above one chunk while writing 200k-row
    chunks of scores and grew with the rows written (19 MB per million); this path holds one chunk.
    """
    options = _options(uri, storage_options)
    partitions = list(partition_by or match)
    if set(partitions) != set(match):
        raise ValueError(
            f"table {table!r}: a stream fills one partition: partition_by {partitions} must be "
            f"the match columns {list(match)}"
        )
    arrow_schema = pl.DataFrame(schema=dict(schema)).to_arrow().schema
    file_schema = pa.schema([f for f in arrow_schema if f.name not in partitions])
    _create_if_missing(uri, arrow_schema, partitions, options)
    filesystem, (root,) = filesystem_for([uri])
    if _is_local(uri):
        root = str(Path(root).resolve())
    # Hive-style partition directories, percent-escaped as delta-rs's own writer names them.
    directory = "/".join(f"{column}={_escape(match[column])}" for column in partitions)
    target = target_file_size or STREAM_FILE_BYTES
    written: list[tuple[str, int, int]] = []  # (relative path, bytes, rows)
    sink: pa.NativeFile | None = None
    writer: pq.ParquetWriter | None = None
    relative, rows = "", 0

    def finish() -> None:
        nonlocal sink, writer
        if writer is None or sink is None:
            return
        writer.close()
        sink.close()
        size = filesystem.get_file_info(f"{root}/{relative}").size
        written.append((relative, int(size), rows))
        sink, writer = None, None

    try:
        for frame in frames:
            chunk = conform(frame, schema, table)
            for column, value in match.items():
                if chunk.height and (chunk[column] != value).any():
                    raise ValueError(
                        f"table {table!r}: rows with {column} other than {value!r} in the "
                        f"write for {dict(match)}"
                    )
            if chunk.height == 0:
                continue
            data = chunk.drop(partitions).to_arrow()
            data = data if data.schema == file_schema else data.cast(file_schema)
            if writer is None:
                relative = f"{directory}/part-{uuid.uuid4()}-c000.snappy.parquet"
                rows = 0
                filesystem.create_dir(f"{root}/{directory}", recursive=True)
                sink = filesystem.open_output_stream(f"{root}/{relative}")
                writer = pq.ParquetWriter(sink, file_schema, compression="snappy")
            writer.write_table(data)
            rows += data.num_rows
            del data, chunk
            if sink is not None and sink.tell() >= target:
                finish()
        finish()
    except BaseException:
        # nothing is committed; the files written so far are not part of any version: remove them
        if writer is not None:
            writer.close()
        if sink is not None:
            sink.close()
        for path in [relative, *(w[0] for w in written)]:
            if path:
                with contextlib.suppress(OSError):
                    filesystem.delete_file(f"{root}/{path}")
        raise
    now_ms = int(time.time() * 1000)
    actions: list[AddAction | RemoveAction] = [
        AddAction(
            path,  # as on disk: delta-rs URL-encodes it in the log (as its own writer does)
            size,
            dict(match),
            now_ms,
            True,
            json.dumps({"numRecords": count}),
        )
        for path, size, count in written
    ]
    filters: list[tuple[str, str, Any]] = [(column, "=", match[column]) for column in partitions]

    def commit() -> int:
        handle = DeltaTable(uri, storage_options=options)
        handle.create_write_transaction(
            actions,
            mode="overwrite",
            schema=arrow_schema,
            partition_by=partitions,
            partition_filters=filters,
        )
        return int(DeltaTable(uri, storage_options=options).version())

    # the files are written once; a commit that lost a race is simply made again
    return retry_commit(commit, table=table)


def _escape(value: str) -> str:
    """A partition value as a directory name (Hive-style percent-escaping)."""
    return quote(value, safe="")


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
