"""The binary-search index over Arrow buffers: every present id found, every absent id not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from pipelines.snapshot import open_scores, scores_schema
from serving.index import ScoreIndex


def _frame(ids: list[int] | list[str], id_dtype: str) -> pl.DataFrame:
    n = len(ids)
    reasons = [
        [{"feature": "AGEP", "value": str(i), "contribution": float(i)}] * (i % 3) for i in range(n)
    ]
    return pl.DataFrame(
        {
            "entity_id": ids,
            "batch_id": [f"b{i}" for i in range(n)],
            "score": np.linspace(0, 1, n),
            "decision": [i % 2 == 0 for i in range(n)],
            "threshold": 0.5,
            "model_name": "m",
            "model_version": "v1",
            "reasons": reasons,
            "expected_value": -0.25,
            "scored_at": datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC),
            "data_version": "dv",
        },
        schema=scores_schema(id_dtype),  # type: ignore[arg-type]
    )


def _mmapped(frame: pl.DataFrame, tmp_path: Path) -> pa.Table:
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    path = tmp_path / "scores.arrow"
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return open_scores(path)


def test_int_index_finds_every_id_and_only_those(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    ids = np.unique(rng.integers(-(10**12), 10**12, 5000)).tolist()
    index = ScoreIndex(_mmapped(_frame(ids, "int"), tmp_path))
    for pos, entity in enumerate(ids):
        assert index.position(entity) == pos
    present = set(ids)
    for probe in rng.integers(-(10**12), 10**12, 2000).tolist():
        if probe not in present:
            assert index.get(probe) is None
    assert index.get(min(ids) - 1) is None and index.get(max(ids) + 1) is None
    assert index.get(2**64) is None and index.get("12") is None


def test_row_values_round_trip(tmp_path: Path) -> None:
    ids = [3, 7, 11]
    frame = _frame(ids, "int")
    index = ScoreIndex(_mmapped(frame, tmp_path))
    for i, expected in enumerate(frame.iter_rows(named=True)):
        row = index.row(i)
        assert row["scored_at"] == "2026-03-04T05:06:07.891011+00:00"
        assert {k: v for k, v in row.items() if k != "scored_at"} == {
            k: v for k, v in expected.items() if k != "scored_at"
        }


def test_string_index(tmp_path: Path) -> None:
    ids = sorted(["a", "ab", "b", "é", "z" * 40, "", "0001", "10"], key=lambda s: s.encode())
    index = ScoreIndex(_mmapped(_frame(ids, "string"), tmp_path))
    for pos, entity in enumerate(ids):
        assert index.position(entity) == pos
        row = index.get(entity)
        assert row is not None and row["entity_id"] == entity
    for absent in ["aa", "c", "00010", "é2", " "]:
        assert index.get(absent) is None
    assert index.get(1) is None


def test_nulls_in_optional_columns_fall_back(tmp_path: Path) -> None:
    frame = _frame([1, 2], "int").with_columns(
        pl.when(pl.col("entity_id") == 2).then(None).otherwise(pl.col("reasons")).alias("reasons"),
        pl.lit(None, dtype=pl.Float64).alias("expected_value"),
    )
    index = ScoreIndex(_mmapped(frame, tmp_path))
    first, second = index.get(1), index.get(2)
    assert first is not None and second is not None
    assert first["reasons"] == []  # row 0 has an empty list, row 1 a null: both answer []
    assert second["reasons"] == []
    assert first["expected_value"] is None and second["expected_value"] is None
    assert second["score"] == 1.0


def test_json_is_the_row(tmp_path: Path) -> None:
    """The JSON the lookup route sends has the values of ``row`` (also with non-ASCII text)."""
    ids = sorted(["a", "é", 'q"uote', "z\\"], key=lambda s: s.encode())
    frame = _frame(ids, "string").with_columns(
        pl.Series(
            "reasons",
            [
                [
                    {"feature": "AGEP", "value": v, "contribution": 0.5},
                    {"feature": "SCHL", "value": "x", "contribution": -1e-05},
                ]
                for v in ["35.0", "ünï", "", "a\nb"]
            ],
            dtype=scores_schema("string")["reasons"],
        )
    )
    (tmp_path / "s").mkdir()
    index = ScoreIndex(_mmapped(frame, tmp_path / "s"))
    for i in range(len(ids)):
        assert json.loads(index.json(i)) == index.row(i)
        assert index.row(i)["reasons"][0]["value"] == ["35.0", "ünï", "", "a\nb"][i]
    (tmp_path / "i").mkdir()
    index = ScoreIndex(_mmapped(_frame([3, 7, 11], "int"), tmp_path / "i"))
    assert [json.loads(index.json(i)) for i in range(3)] == [index.row(i) for i in range(3)]
    assert index.get_json(4) is None


def test_json_refuses_non_finite_numbers_and_handles_nulls(tmp_path: Path) -> None:
    nan = pl.when(pl.col("entity_id") == 2).then(float("nan")).otherwise(pl.col("score"))
    (tmp_path / "fast").mkdir()
    index = ScoreIndex(
        _mmapped(_frame([1, 2], "int").with_columns(nan.alias("score")), tmp_path / "fast")
    )
    assert index.json(0)
    with pytest.raises(ValueError, match="non-finite"):
        index.json(1)
    frame = _frame([1, 2], "int").with_columns(
        pl.when(pl.col("entity_id") == 2)
        .then(float("nan"))
        .otherwise(pl.col("score"))
        .alias("score"),
        pl.lit(None, dtype=pl.Float64).alias("expected_value"),
    )
    index = ScoreIndex(_mmapped(frame, tmp_path))
    assert json.loads(index.json(0))["expected_value"] is None
    with pytest.raises(ValueError, match="non-finite"):
        index.json(1)
