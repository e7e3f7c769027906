"""landing_sensor: partitions, one run per new file, a cursor, and no crash on bad input."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from assets.ingestion import landing_sensor
from assets.partitions import batch_partitions
from assets.resources import ScoreloopResource
from assets.runner import materialize_batch
from pipelines.settings import Settings

Land = Callable[..., Path]


def tick(
    instance: dg.DagsterInstance, cursor: str | None = None
) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"scoreloop": ScoreloopResource()}
    )
    result = landing_sensor(context)
    assert isinstance(result, dg.SensorResult | dg.SkipReason)
    return result


def apply(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """What the daemon does with the partition requests."""
    for request in result.dynamic_partitions_requests or []:
        assert isinstance(request, dg.AddDynamicPartitionsRequest)
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def selected(request: dg.RunRequest) -> tuple[str, ...]:
    return tuple(k.to_user_string() for k in request.asset_selection or [])


def test_new_files_become_partitions_and_one_run_each(
    land: Land, landing: Path, instance: dg.DagsterInstance
) -> None:
    land("2015-01", rows=10)
    land("2015-02", rows=10)
    os.utime(landing / "batch_2015-02.parquet", ns=(2_000_000_000_000_000_000,) * 2)
    land("2015-01", rows=10, kind="labels")
    (landing / ".batch_2015-03.parquet.tmp").write_bytes(b"half written")
    (landing / "notes.txt").write_text("ignored")

    first = tick(instance)
    assert isinstance(first, dg.SensorResult)
    [add] = first.dynamic_partitions_requests or []
    assert isinstance(add, dg.AddDynamicPartitionsRequest)
    assert add.partitions_def_name == batch_partitions.name
    assert sorted(add.partition_keys) == ["2015-01", "2015-02"]
    requests = first.run_requests or []
    records = ("raw_batch", "validated_batch", "quarantine")
    assert [(r.job_name, r.partition_key, selected(r)) for r in requests] == [
        ("ingest", "2015-01", records),
        ("ingest", "2015-01", ("labels",)),
        ("ingest", "2015-02", records),  # landed last (newest mtime)
    ]
    assert len({r.run_key for r in requests}) == 3
    assert first.cursor is not None
    assert set(json.loads(first.cursor)) == {
        "batch_2015-01.parquet",
        "batch_2015-02.parquet",
        "labels_2015-01.parquet",
        "?notes.txt",  # reported once as not ingested (tests/reliability/ingest)
    }
    apply(instance, first)

    second = tick(instance, first.cursor)
    assert isinstance(second, dg.SkipReason)

    # a new file and a re-landed (changed) file are requested; known partitions are not re-added
    land("2015-04", rows=10)
    land("2015-01", rows=12)
    third = tick(instance, first.cursor)
    assert isinstance(third, dg.SensorResult)
    assert sorted((r.job_name, r.partition_key) for r in third.run_requests or []) == [
        ("ingest", "2015-01"),
        ("ingest", "2015-04"),
    ]
    [add] = third.dynamic_partitions_requests or []
    assert isinstance(add, dg.AddDynamicPartitionsRequest)
    assert list(add.partition_keys) == ["2015-04"]
    old_keys = {r.run_key for r in requests}
    assert not old_keys & {r.run_key for r in third.run_requests or []}


def test_files_already_ingested_are_not_requested_again(
    land: Land, landing: Path, instance: dg.DagsterInstance
) -> None:
    land("2015-06", rows=20)
    land("2015-07", rows=20)
    assert materialize_batch(instance, "2015-06").success

    first = tick(instance)  # e.g. the sensor switched on after the demo
    assert isinstance(first, dg.SensorResult)
    assert [r.partition_key for r in first.run_requests or []] == ["2015-07"]

    land("2015-08", rows=20)
    assert materialize_batch(instance, "2015-08").success
    second = tick(instance, first.cursor)
    assert isinstance(second, dg.SensorResult)
    assert not second.run_requests and second.skip_reason is not None
    assert second.cursor is not None and "batch_2015-08.parquet" in second.cursor

    land("2015-06", rows=25)  # new content under an ingested name
    third = tick(instance, second.cursor)
    assert isinstance(third, dg.SensorResult)
    assert [r.partition_key for r in third.run_requests or []] == ["2015-06"]


def test_broken_file_is_still_requested(landing: Path, instance: dg.DagsterInstance) -> None:
    (landing / "batch_2016-01.csv").write_bytes(b"\x00\xff not,a\ncsv")
    result = tick(instance, "not json")
    assert isinstance(result, dg.SensorResult)
    assert [r.partition_key for r in result.run_requests or []] == ["2016-01"]


def test_missing_landing_folder_is_a_skip(settings: Settings, instance: dg.DagsterInstance) -> None:
    assert not settings.landing.exists()
    result = tick(instance)
    assert isinstance(result, dg.SkipReason)
    assert str(settings.landing) in (result.skip_message or "")
