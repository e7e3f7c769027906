"""Delta tables on a real S3 endpoint (moto): configuration only, and safe under concurrency."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path

import polars as pl
import pytest
from botocore.exceptions import ClientError
from support.scoring import land_batch
from support.servers import S3State

from pipelines.ingest import VALIDATED, ingest_file, read_ingest_log
from pipelines.settings import get_settings
from pipelines.spec import DatasetSpec
from pipelines.tables import (
    batch_ids,
    open_table,
    read_table,
    table_uri,
    write_batch,
    write_partition_stream,
)

ROWS = 300
WRITERS = 3
STREAM_SCHEMA = {"batch_id": pl.String(), "x": pl.Int64()}


def _ingest(path: str, barrier: Barrier) -> None:
    """One writer process: ingest one landed batch into the shared S3 tables, all at once."""
    from pipelines.settings import get_settings
    from pipelines.spec import load_spec

    settings = get_settings()
    spec = load_spec(settings.spec_path)
    barrier.wait(timeout=120)  # every writer imported and ready: the writes really overlap
    ingest_file(Path(path), spec, settings.tables, max_reject_rate=0.05)


def _stall_mid_write(uri: str, started: Event) -> None:
    """Stream a partition, then hang inside the write (the parent kills us there)."""

    def frames() -> Iterator[pl.DataFrame]:
        yield pl.DataFrame({"batch_id": ["b"] * 50_000, "x": list(range(50_000))})
        started.set()
        time.sleep(600)
        yield pl.DataFrame(schema=STREAM_SCHEMA)

    write_partition_stream(uri, frames(), {"batch_id": "b"}, STREAM_SCHEMA, table="stream")


def _keys(s3_state: S3State, prefix: str) -> list[str]:
    pages = (
        s3_state.client()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=s3_state.bucket, Prefix=prefix)
    )
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_tables_root_follows_the_object_store_block(
    s3_state: S3State, acs: pl.DataFrame, spec: DatasetSpec
) -> None:
    settings = get_settings()
    assert settings.tables == f"{s3_state.store}/tables"
    path = land_batch(settings, acs, spec, "2015-01", start=0, rows=ROWS, bad=3)
    result = ingest_file(path, spec, settings.tables, max_reject_rate=0.05)

    assert result.status == "accepted"
    assert read_table(table_uri(settings.tables, VALIDATED)).height == ROWS - 3
    # the objects really are in the bucket, not on the local disk
    assert any(k.endswith(".parquet") for k in _keys(s3_state, "prod/tables/validated/"))
    assert not (s3_state.root / "tables").exists()


def test_the_endpoint_refuses_a_second_commit_of_the_same_version(s3_state: S3State) -> None:
    """delta-rs commits version N with a conditional put; this endpoint must honour it."""
    client = s3_state.client()
    key = "prod/tables/probe/_delta_log/00000000000000000000.json"
    client.put_object(Bucket=s3_state.bucket, Key=key, Body=b"{}", IfNoneMatch="*")
    with pytest.raises(ClientError, match="PreconditionFailed"):
        client.put_object(Bucket=s3_state.bucket, Key=key, Body=b"{}", IfNoneMatch="*")


def _land_all(s3_state: S3State, acs: pl.DataFrame, spec: DatasetSpec, n: int) -> list[Path]:
    settings = get_settings()
    return [
        land_batch(settings, acs, spec, f"2016-{i + 1:02d}", start=i * ROWS, rows=ROWS)
        for i in range(n)
    ]


def test_concurrent_writers_lose_no_commit(
    s3_state: S3State, acs: pl.DataFrame, spec: DatasetSpec
) -> None:
    paths = _land_all(s3_state, acs, spec, WRITERS)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WRITERS)
    writers = [context.Process(target=_ingest, args=(str(p), barrier)) for p in paths]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=240)
        assert writer.exitcode == 0, f"writer {writer.pid} exited with {writer.exitcode}"

    settings = get_settings()
    uri = table_uri(settings.tables, VALIDATED)
    expected = [f"2016-{i + 1:02d}" for i in range(WRITERS)]
    assert batch_ids(uri) == expected
    validated = read_table(uri)
    assert validated.height == WRITERS * ROWS
    assert validated.group_by("batch_id").len()["len"].to_list() == [ROWS] * WRITERS
    assert validated[spec.id.name].n_unique() == WRITERS * ROWS  # no duplicate row
    # one commit per writer, none lost, none doubled, after the one commit creating the empty
    # table (streamed writes create it first, so racing first writers cannot both create it)
    modes = [entry["operationParameters"]["mode"] for entry in open_table(uri).history()]
    assert sorted(modes) == ["ErrorIfExists"] + ["Overwrite"] * WRITERS
    assert sorted(read_ingest_log(settings.tables)["batch_id"].to_list()) == expected


def test_a_writer_killed_mid_write_leaves_nothing_and_reruns_cleanly(s3_state: S3State) -> None:
    uri = table_uri(get_settings().tables, "stream")
    write_batch(uri, pl.DataFrame({"batch_id": ["a"], "x": [1]}), "a", STREAM_SCHEMA, table="t")
    before = open_table(uri).version()

    context = multiprocessing.get_context("spawn")
    started = context.Event()
    writer = context.Process(target=_stall_mid_write, args=(uri, started))
    writer.start()
    assert started.wait(timeout=120), "the writer never reached the middle of its write"
    assert writer.pid is not None
    os.kill(writer.pid, signal.SIGKILL)
    writer.join(timeout=30)
    assert writer.exitcode == -signal.SIGKILL

    assert open_table(uri).version() == before  # nothing committed, readers see batch a only
    assert read_table(uri)["batch_id"].to_list() == ["a"]
    rerun = pl.DataFrame({"batch_id": ["b"] * 3, "x": [1, 2, 3]})
    write_partition_stream(uri, [rerun], {"batch_id": "b"}, STREAM_SCHEMA, table="stream")
    after = read_table(uri).sort("batch_id", "x")
    assert after.group_by("batch_id").len().sort("batch_id")["len"].to_list() == [1, 3]
    assert open_table(uri).version() == before + 1
