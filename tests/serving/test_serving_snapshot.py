"""publish_snapshot / read_current / load_snapshot: the contract batch scoring and serving share."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from pipelines.settings import BUNDLED_SPEC
from pipelines.snapshot import (
    CURRENT_FILE,
    MANIFEST_FILE,
    SCORES_FILE,
    SnapshotError,
    load_snapshot,
    publish_snapshot,
    read_current,
)


def test_publish_writes_sorted_arrow_bundle_spec_manifest_and_current(
    tmp_path: Path, bundle_v1: Path, scores_v1: pl.DataFrame
) -> None:
    directory = tmp_path / "snaps"
    assert read_current(directory) is None
    manifest = publish_snapshot(scores_v1, bundle_v1, BUNDLED_SPEC, directory)

    assert read_current(directory) == manifest
    assert (directory / CURRENT_FILE).read_text().strip() == manifest.snapshot_id
    folder = directory / manifest.snapshot_id
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["scores.arrow", "model.cbm", "metadata.json", "card.md", "spec.yaml", "manifest.json"]
    )
    assert manifest.row_count == scores_v1.height
    assert (manifest.model_name, manifest.model_version) == ("employment", "v0.0.1")
    assert manifest.id_dtype == "int"
    assert manifest.columns[0] == "entity_id"
    with pa.memory_map(str(folder / SCORES_FILE)) as source:
        reader = ipc.open_file(source)
        assert reader.num_record_batches == 1
        ids = reader.read_all().column("entity_id").to_pylist()
    assert ids == sorted(scores_v1["entity_id"].to_list())

    loaded = load_snapshot(directory, manifest)
    assert loaded.bundle.metadata.version == "v0.0.1"
    assert loaded.scores.num_rows == scores_v1.height


def test_refuses_two_model_versions_and_duplicate_ids(
    tmp_path: Path, bundle_v1: Path, scores_v1: pl.DataFrame
) -> None:
    mixed = scores_v1.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit("v9.9.9"))
        .otherwise(pl.col("model_version"))
        .alias("model_version")
    )
    with pytest.raises(SnapshotError, match="2 model versions"):
        publish_snapshot(mixed, bundle_v1, BUNDLED_SPEC, tmp_path)
    doubled = pl.concat([scores_v1, scores_v1.head(2)])
    with pytest.raises(SnapshotError, match="2 duplicate entity id"):
        publish_snapshot(doubled, bundle_v1, BUNDLED_SPEC, tmp_path)
    with pytest.raises(SnapshotError, match="lacks scores-table column"):
        publish_snapshot(scores_v1.drop("reasons"), bundle_v1, BUNDLED_SPEC, tmp_path)
    with pytest.raises(SnapshotError, match=r"bundle .* is version 'v0.0.1'"):
        publish_snapshot(
            scores_v1.with_columns(pl.lit("v0.0.7").alias("model_version")),
            bundle_v1,
            BUNDLED_SPEC,
            tmp_path,
        )
    # Nothing was published by any of the refused calls.
    assert read_current(tmp_path) is None
    assert [p.name for p in tmp_path.iterdir()] == []


def test_prunes_to_keep_and_current_moves(
    tmp_path: Path, bundle_v1: Path, scores_v1: pl.DataFrame
) -> None:
    ids = [
        publish_snapshot(scores_v1, bundle_v1, BUNDLED_SPEC, tmp_path, keep=2).snapshot_id
        for _ in range(4)
    ]
    kept = sorted(p.name for p in tmp_path.iterdir() if (p / MANIFEST_FILE).exists())
    assert kept == sorted(ids[-2:])
    current = read_current(tmp_path)
    assert current is not None and current.snapshot_id == ids[-1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_load_refuses_corrupt_scores_and_wrong_id_type(
    tmp_path: Path, bundle_v1: Path, scores_v1: pl.DataFrame
) -> None:
    manifest = publish_snapshot(scores_v1, bundle_v1, BUNDLED_SPEC, tmp_path)
    with pytest.raises(SnapshotError, match="serves 'string' ids"):
        load_snapshot(tmp_path, manifest, expected_id_dtype="string")
    path = tmp_path / manifest.snapshot_id / SCORES_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="sha256"):
        load_snapshot(tmp_path, manifest)


def test_load_refuses_schema_mismatch_even_with_matching_checksum(
    tmp_path: Path, bundle_v1: Path, scores_v1: pl.DataFrame
) -> None:
    manifest = publish_snapshot(scores_v1, bundle_v1, BUNDLED_SPEC, tmp_path)
    folder = tmp_path / manifest.snapshot_id
    table = pa.table({"entity_id": pa.array([1, 2], pa.int64()), "score": [0.1, 0.2]})
    with (
        pa.OSFile(str(folder / SCORES_FILE), "wb") as sink,
        ipc.new_file(sink, table.schema) as writer,
    ):
        writer.write_table(table)
    from pipelines.snapshot import _sha256

    fixed = manifest.model_copy(update={"sha256": _sha256(folder / SCORES_FILE)})
    (folder / MANIFEST_FILE).write_text(fixed.model_dump_json())
    with pytest.raises(SnapshotError, match="schema mismatch"):
        load_snapshot(tmp_path, fixed)


def test_read_current_reports_corrupt_manifest(
    tmp_path: Path, bundle_v1: Path, scores_v1: pl.DataFrame
) -> None:
    manifest = publish_snapshot(scores_v1, bundle_v1, BUNDLED_SPEC, tmp_path)
    (tmp_path / manifest.snapshot_id / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(SnapshotError, match="corrupt"):
        read_current(tmp_path)
    os.replace(tmp_path / CURRENT_FILE, tmp_path / "elsewhere")
    assert read_current(tmp_path) is None
