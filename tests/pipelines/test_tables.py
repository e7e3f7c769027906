"""Delta tables partitioned by batch: atomic, idempotent, schema-enforced, crash-safe."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from pipelines.settings import PROJECT_ROOT
from pipelines.tables import (
    TableSchemaError,
    batch_ids,
    read_table,
    table_exists,
    table_uri,
    table_version,
    write_batch,
)

SCHEMA: dict[str, pl.DataType] = {"x": pl.Int64(), "s": pl.String(), "batch_id": pl.String()}


def frame(batch: str, xs: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"x": xs, "s": [f"v{x}" for x in xs], "batch_id": [batch] * len(xs)}, schema=SCHEMA
    )


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return table_uri(str(tmp_path / "tables"), "t")


def test_missing_table_reads_empty_with_schema_or_raises(uri: str) -> None:
    assert not table_exists(uri)
    assert table_version(uri) is None
    assert batch_ids(uri) == []
    assert read_table(uri, schema=SCHEMA).schema == pl.Schema(SCHEMA)
    with pytest.raises(FileNotFoundError, match="no Delta table"):
        read_table(uri)


def test_rewriting_a_batch_replaces_it_and_leaves_others(uri: str) -> None:
    assert write_batch(uri, frame("a", [1, 2]), "a", SCHEMA, table="t") == 0
    write_batch(uri, frame("b", [3]), "b", SCHEMA, table="t")
    write_batch(uri, frame("a", [1, 2]), "a", SCHEMA, table="t")  # same batch again
    assert read_table(uri).sort("x")["x"].to_list() == [1, 2, 3]
    write_batch(uri, frame("a", [7]), "a", SCHEMA, table="t")
    assert read_table(uri).sort("x")["x"].to_list() == [3, 7]
    assert read_table(uri, batch_id="a")["x"].to_list() == [7]
    assert batch_ids(uri) == ["a", "b"]
    assert table_version(uri) == 3
    # time travel: version 1 still has the first write of batch a
    assert read_table(uri, version=1).sort("x")["x"].to_list() == [1, 2, 3]


def test_empty_write_removes_the_partition(uri: str) -> None:
    write_batch(uri, frame("a", [1]), "a", SCHEMA, table="t")
    write_batch(uri, frame("b", [2]), "b", SCHEMA, table="t")
    write_batch(uri, frame("a", []), "a", SCHEMA, table="t")
    assert read_table(uri)["x"].to_list() == [2]


def test_batch_id_with_quote_is_escaped(uri: str) -> None:
    write_batch(uri, frame("o'k", [1]), "o'k", SCHEMA, table="t")
    write_batch(uri, frame("o'k", [2]), "o'k", SCHEMA, table="t")
    assert read_table(uri)["x"].to_list() == [2]


def test_schema_is_enforced_before_writing(uri: str) -> None:
    write_batch(uri, frame("a", [1]), "a", SCHEMA, table="t")
    as_float = frame("b", [2]).with_columns(pl.col("x").cast(pl.Float64))
    with pytest.raises(TableSchemaError, match="'x' is Float64"):
        write_batch(uri, as_float, "b", SCHEMA, table="t")
    with pytest.raises(TableSchemaError, match="unexpected"):
        write_batch(uri, frame("b", [2]).with_columns(y=1), "b", SCHEMA, table="t")
    with pytest.raises(ValueError, match="rows of another batch"):
        write_batch(uri, frame("c", [2]), "b", SCHEMA, table="t")
    narrow = frame("b", [2]).with_columns(pl.col("x").cast(pl.Int32))  # widening is lossless
    write_batch(uri, narrow, "b", SCHEMA, table="t")
    assert read_table(uri).schema == pl.Schema(SCHEMA)
    assert table_version(uri) == 1


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    import polars as pl
    import pyarrow as pa

    import pipelines.tables as tables

    uri, rows = sys.argv[1], int(sys.argv[2])
    real_write = tables.write_deltalake


    def write_then_die(table_or_uri, data, **kwargs):
        # Stream the frame in chunks; once Delta has put new data files on disk (and so
        # cannot have committed, the stream is not finished), SIGKILL this process.
        part = Path(table_or_uri) / "batch_id=big"
        before = set(part.glob("*.parquet"))
        chunks = data.to_batches(max_chunksize=20_000)

        def stream():
            for chunk in chunks:
                yield chunk
                if set(part.glob("*.parquet")) - before:
                    print("killing", flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)

        reader = pa.RecordBatchReader.from_batches(data.schema, stream())
        return real_write(table_or_uri, reader, target_file_size=256 * 1024, **kwargs)


    tables.write_deltalake = write_then_die
    xs = pl.int_range(rows, eager=True)
    df = pl.DataFrame({"x": xs, "s": xs.cast(pl.String), "batch_id": ["big"] * rows})
    schema = {"x": pl.Int64(), "s": pl.String(), "batch_id": pl.String()}
    tables.write_batch(uri, df, "big", schema, table="t")
    print("committed", flush=True)
    """
)


@pytest.mark.slow
def test_a_write_killed_before_commit_leaves_the_table_as_it_was(uri: str, tmp_path: Path) -> None:
    write_batch(uri, frame("a", [1, 2]), "a", SCHEMA, table="t")
    write_batch(uri, frame("big", [3]), "big", SCHEMA, table="t")
    before = read_table(uri).sort("x")
    version = table_version(uri)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.run(
        [sys.executable, str(script), uri, "400000"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert child.returncode == -9, child.stderr
    assert "killing" in child.stdout and "committed" not in child.stdout
    orphans = list((Path(uri) / "batch_id=big").glob("*.parquet"))
    assert len(orphans) > 1  # the killed write did leave data files behind...
    assert table_version(uri) == version  # ...but no commit
    assert read_table(uri).sort("x").equals(before)  # readers see exactly the old table
    # and the batch can simply be written again
    write_batch(uri, frame("big", [4, 5]), "big", SCHEMA, table="t")
    assert read_table(uri).sort("x")["x"].to_list() == [1, 2, 4, 5]


def test_streamed_write_commits_once_or_not_at_all(uri: str) -> None:
    from pipelines.tables import write_partition_stream

    write_batch(uri, frame("a", [1]), "a", SCHEMA, table="t")
    version = write_partition_stream(
        uri, (frame("b", [i, i + 1]) for i in (10, 20)), {"batch_id": "b"}, SCHEMA, table="t"
    )
    assert version == 1
    assert read_table(uri).sort("x")["x"].to_list() == [1, 10, 11, 20, 21]

    def broken() -> Iterator[pl.DataFrame]:
        yield frame("b", [99])
        raise RuntimeError("source died")

    # the iterator's own error is re-raised (delta-rs would wrap it in a generic DeltaError)
    with pytest.raises(RuntimeError, match="source died"):
        write_partition_stream(uri, broken(), {"batch_id": "b"}, SCHEMA, table="t")
    assert table_version(uri) == 1
    assert read_table(uri).sort("x")["x"].to_list() == [1, 10, 11, 20, 21]


def test_streamed_write_names_partitions_as_delta_rs_does_and_cleans_up_a_failure(
    tmp_path: Path,
) -> None:
    """Batch ids with spaces, quotes, slashes, percent signs and non-ASCII letters round-trip.

    The stream writes its own parquet files and commits them in one transaction; the files of a
    stream that failed part-way are removed (they belong to no version).
    """
    from pipelines.tables import write_partition_stream

    uri = str(tmp_path / "t")
    odd = ["a b", "o'k", "x/y", "p%20q", "ü"]
    for batch in odd:
        for xs in ([1, 2], [3]):  # the second write replaces the first
            write_partition_stream(
                uri,
                iter([frame(batch, xs), frame(batch, [])]),
                {"batch_id": batch},
                SCHEMA,
                table="t",
                target_file_size=1,  # one file per chunk
            )
    got = read_table(uri).sort("batch_id")
    assert got["batch_id"].to_list() == sorted(odd)
    assert got["x"].to_list() == [3] * len(odd)
    assert read_table(uri, batch_id="x/y")["s"].to_list() == ["v3"]
    files = {p for p in Path(uri).rglob("*.parquet")}

    def broken() -> Iterator[pl.DataFrame]:
        yield frame("a b", [7])
        yield frame("a b", [8])
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):
        write_partition_stream(
            uri, broken(), {"batch_id": "a b"}, SCHEMA, table="t", target_file_size=1
        )
    assert {p for p in Path(uri).rglob("*.parquet")} == files
    assert read_table(uri, batch_id="a b")["x"].to_list() == [3]
