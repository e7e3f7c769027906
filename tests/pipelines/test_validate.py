"""Validation against the spec: lazy, every reason per row, refusal, unreadable files."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from pipelines.spec import ColumnSpec, DatasetSpec, KeySpec, SpecError
from pipelines.validate import (
    MAX_REASON_VALUE,
    QUARANTINE_SCHEMA,
    BatchReadError,
    Kind,
    ValidationResult,
    build_schema,
    file_version,
    read_batch_file,
    validate_batch,
    validate_file,
)


@pytest.fixture
def batch(acs: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """200 clean rows of 2016."""
    return acs.filter(pl.col("year") == 2016).head(200).select(spec.record_columns)


def run(
    df: pl.DataFrame, spec: DatasetSpec, rate: float = 0.5, kind: Kind = "records"
) -> ValidationResult:
    return validate_batch(
        df,
        spec,
        batch_id="2016-01",
        source_file="batch_2016-01.parquet",
        max_reject_rate=rate,
        kind=kind,
    )


def reasons_of(result: ValidationResult, row: int) -> set[tuple[str, str]]:
    found = result.quarantine.filter(pl.col("row") == row)
    assert found.height == 1, f"row {row} not quarantined exactly once"
    return {(r["column"], r["check"]) for r in found["reasons"][0]}


def test_bundled_data_passes_its_own_spec(acs: pl.DataFrame, spec: DatasetSpec) -> None:
    result = run(acs.select(spec.record_columns), spec, rate=0.0)
    assert result.status == "accepted"
    assert result.rejected == 0 and result.accepted == acs.height
    assert result.valid.schema == pl.Schema(spec.record_schema)


def test_every_failure_of_every_row_is_collected(batch: pl.DataFrame, spec: DatasetSpec) -> None:
    ids = batch["id"].to_list()
    bad = batch.with_columns(
        # row 3: three faults at once; row 5: NaN age; row 10: id duplicated from row 11
        pl.when(pl.int_range(pl.len()) == 2).then(500.0).otherwise(pl.col("AGEP")).alias("AGEP"),
        pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("99")).otherwise("SCHL").alias("SCHL"),
        pl.when(pl.int_range(pl.len()) == 2).then(None).otherwise("MAR").alias("MAR"),
        pl.when(pl.int_range(pl.len()) == 9).then(ids[10]).otherwise("id").alias("id"),
    ).with_columns(
        pl.when(pl.int_range(pl.len()) == 4)
        .then(float("nan"))
        .otherwise(pl.col("AGEP"))
        .alias("AGEP")
    )
    result = run(bad, spec)
    assert result.status == "accepted"
    assert result.rejected == 4
    assert result.accepted + result.quarantine.height == result.rows == 200
    assert reasons_of(result, 3) == {
        ("AGEP", "max(95)"),
        ("SCHL", "allowed_values"),
        ("MAR", "not_nullable"),
    }
    assert ("AGEP", "finite") in reasons_of(result, 5)
    assert reasons_of(result, 10) == {("id", "field_uniqueness")}
    assert reasons_of(result, 11) == {("id", "field_uniqueness")}
    q = result.quarantine
    assert q.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert set(q["batch_id"]) == {"2016-01"} and set(q["source_file"]) == {"batch_2016-01.parquet"}
    assert set(q["kind"]) == {"records"}
    row3 = q.filter(pl.col("row") == 3).row(0, named=True)
    assert row3["entity_id"] == str(ids[2])
    values = {r["column"]: r["value"] for r in row3["reasons"]}
    assert values["AGEP"] == "500.0" and values["SCHL"] == "99" and values["MAR"] is None
    record = json.loads(row3["record"])
    assert record["id"] == ids[2] and record["AGEP"] == 500.0 and record["MAR"] is None
    assert set(record) == set(spec.record_columns)
    # rejected rows are out of the valid frame, all the others are in it, in order
    assert result.valid["id"].to_list() == [
        v for i, v in enumerate(bad["id"].to_list()) if i not in {2, 4, 9, 10}
    ]
    top = {(r["column"], r["check"]): r["rows"] for r in result.top_reasons().to_dicts()}
    assert top[("id", "field_uniqueness")] == 2
    assert top[("AGEP", "max(95)")] == 2  # 500 and NaN


def test_batch_above_max_reject_rate_is_refused_whole(
    batch: pl.DataFrame, spec: DatasetSpec
) -> None:
    bad = batch.with_columns(
        pl.when(pl.int_range(pl.len()) < 20).then(pl.lit("7")).otherwise("SEX").alias("SEX")
    )
    result = run(bad, spec, rate=0.05)
    assert result.status == "refused"
    assert result.reject_rate == pytest.approx(0.10)
    assert result.valid.is_empty() and result.valid.schema == pl.Schema(spec.record_schema)
    assert result.quarantine.height == 200 and result.rejected == 20
    assert result.quarantine["row"].to_list() == list(range(1, 201))
    for row in (1, 20):
        assert reasons_of(result, row) == {("SEX", "allowed_values")}
    refusal = result.quarantine.filter(pl.col("row") == 21)["reasons"][0]
    assert [r["check"] for r in refusal] == ["batch_refused"]
    assert "0.1000 > max_reject_rate 0.05" in refusal[0]["value"]
    # the same batch at exactly the limit is accepted
    assert run(bad, spec, rate=0.10).status == "accepted"


def test_strings_that_do_not_convert_fail_their_row_only(
    batch: pl.DataFrame, spec: DatasetSpec
) -> None:
    text = batch.select(pl.all().cast(pl.String)).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("abc")).otherwise("AGEP").alias("AGEP"),
        pl.when(pl.int_range(pl.len()) == 1)
        .then(pl.lit("3.5"))
        .when(pl.int_range(pl.len()) == 2)
        .then(pl.lit(" 7 "))
        .otherwise("id")
        .alias("id"),
    )
    result = run(text, spec)
    assert reasons_of(result, 1) == {("AGEP", "dtype(Float64)")}
    assert reasons_of(result, 2) == {("id", "dtype(Int64)")}
    assert result.rejected == 2  # " 7 " converts to 7
    assert result.valid.schema == pl.Schema(spec.record_schema)
    assert 7 in result.valid["id"].to_list()


def test_top_reasons_quote_distinct_offending_values(
    batch: pl.DataFrame, spec: DatasetSpec
) -> None:
    # The simulator's wrong types: "n/a" is the offending value, not a missing example.
    wrong = ["n/a", "unknown", "n/a", "12 years", "unknown"]
    text = batch.select(pl.all().cast(pl.String)).with_columns(
        pl.Series("AGEP", wrong + batch["AGEP"].cast(pl.String).to_list()[len(wrong) :])
    )
    top = run(text, spec).top_reasons()
    [row] = top.filter(pl.col("column") == "AGEP").to_dicts()
    assert row["rows"] == 5
    assert row["example"] == "'n/a', 'unknown', '12 years'"


def test_long_values_are_clipped_in_reasons_and_record(
    batch: pl.DataFrame, spec: DatasetSpec
) -> None:
    bad = batch.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("x" * 5000)).otherwise("ANC").alias("ANC")
    )
    result = run(bad, spec)
    value = result.quarantine["reasons"][0][0]["value"]
    assert value.startswith("x" * MAX_REASON_VALUE) and value.endswith("(5000 characters)")
    assert json.loads(result.quarantine["record"][0])["ANC"] == value  # stored clipped too


def test_labels_are_validated_the_same_way(acs: pl.DataFrame, spec: DatasetSpec) -> None:
    labels = (
        acs.head(50)
        .select("id", "employed")
        .with_columns(
            pl.when(pl.int_range(pl.len()) == 0).then(2).otherwise("employed").alias("employed")
        )
    )
    result = run(labels, spec, kind="labels")
    assert result.kind == "labels" and result.rejected == 1
    assert reasons_of(result, 1) == {("employed", "allowed_values")}
    assert set(result.quarantine["kind"]) == {"labels"}
    assert result.valid.columns == ["id", "employed"]


def test_schema_is_derived_from_the_spec(spec: DatasetSpec) -> None:
    records = build_schema(spec, "records")
    assert list(records.columns) == spec.record_columns
    assert records.columns["id"].unique and not records.columns["id"].nullable
    labels = build_schema(spec, "labels")
    assert list(labels.columns) == ["id", "employed"]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "data", "cause"),
    [
        ("batch_x.parquet", b"", "file is empty (0 bytes)"),
        ("batch_x.parquet", b"not parquet at all", "cannot be read as parquet"),
        ("batch_x.csv", b"id,year\n1,\xff\xfe\n", "cannot be read as CSV"),
        ("batch_x.csv", b"id,year\n1,2015\n", "missing column(s) ['AGEP'"),
        ("batch_x.json", b"{}", "unsupported format '.json'"),
    ],
)
def test_unreadable_files_raise_batch_read_error(
    tmp_path: Path, spec: DatasetSpec, name: str, data: bytes, cause: str
) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(BatchReadError) as info:
        read_batch_file(path, spec)
    assert info.value.path == path
    assert cause in info.value.cause
    assert str(path) in str(info.value)


def test_truncated_parquet_and_header_only_csv(
    tmp_path: Path, batch: pl.DataFrame, spec: DatasetSpec
) -> None:
    whole = tmp_path / "whole.parquet"
    batch.write_parquet(whole)
    cut = write(tmp_path, "batch_t.parquet", whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(BatchReadError, match="cannot be read as parquet"):
        read_batch_file(cut, spec)
    header = write(tmp_path, "batch_h.csv", (",".join(spec.record_columns) + "\n").encode())
    with pytest.raises(BatchReadError, match="header but no rows"):
        read_batch_file(header, spec)
    with pytest.raises(BatchReadError, match="file not found"):
        read_batch_file(tmp_path / "batch_gone.parquet", spec)


def test_csv_is_read_as_text_and_extra_columns_are_reported(
    tmp_path: Path, batch: pl.DataFrame, spec: DatasetSpec
) -> None:
    path = tmp_path / "batch_x.csv"
    batch.with_columns(note=pl.lit("hi")).write_csv(path)
    df = read_batch_file(path, spec)
    assert set(df.schema.dtypes()) == {pl.String}
    result = run(df, spec)
    assert result.ignored_columns == ["note"]
    assert result.rejected == 0
    assert result.valid.equals(batch)


def test_a_column_of_an_impossible_type_fails_the_file(
    batch: pl.DataFrame, spec: DatasetSpec
) -> None:
    nested = batch.with_columns(pl.concat_list("AGEP").alias("AGEP"))
    with pytest.raises(BatchReadError, match="'AGEP' has type List"):
        run(nested, spec)


def test_file_version_is_the_content_hash(tmp_path: Path) -> None:
    a = write(tmp_path, "a", b"same")
    b = write(tmp_path, "b", b"same")
    assert file_version(a) == file_version(b) == hashlib.md5(b"same").hexdigest()
    assert file_version(a) != file_version(write(tmp_path, "c", b"other"))


def test_int_and_bool_categoricals_compare_allowed_values_in_their_type() -> None:
    spec = DatasetSpec(
        name="typed",
        id=KeySpec(name="id", dtype="int"),
        time=KeySpec(name="batch", dtype="string"),
        target=KeySpec(name="y", dtype="bool"),
        positive_label=True,
        negative_label=False,
        features=[
            ColumnSpec(name="level", dtype="int", categorical=True, allowed=["1", "2"]),
            ColumnSpec(name="flag", dtype="bool", categorical=True, allowed=["true"]),
        ],
    )
    df = pl.DataFrame(
        {"id": [1, 2, 3], "batch": ["b"] * 3, "level": [1, 2, 3], "flag": [True, False, True]}
    )
    result = run(df, spec, rate=1.0)
    assert reasons_of(result, 2) == {("flag", "allowed_values")}
    assert reasons_of(result, 3) == {("level", "allowed_values")}
    assert result.valid["id"].to_list() == [1]
    labels = run(pl.DataFrame({"id": [1, 2], "y": ["true", "maybe"]}), spec, kind="labels")
    assert reasons_of(labels, 2) == {("y", "dtype(Boolean)")}
    assert labels.valid["y"].to_list() == [True]
    broken = spec.model_copy(deep=True)
    broken.features[0].allowed = ["one"]
    with pytest.raises(SpecError, match="'level': allowed values"):
        run(df, broken)


def _pandera_on_every_row(df: pl.DataFrame, spec: DatasetSpec, kind: Kind) -> set[tuple]:
    """The reference: pandera over the whole batch (what validation did before the pre-pass)."""
    from pipelines.validate import ROW_COLUMN, _coerce, _schema_failures, expected_schema

    expected = expected_schema(spec, kind)
    numbered = df.with_row_index(ROW_COLUMN, offset=1).with_columns(pl.col(ROW_COLUMN).cast(int))
    coerced, _ = _coerce(numbered, expected, "reference")
    found = _schema_failures(coerced, build_schema(spec, kind)).unnest("reason")
    return set(found.select(ROW_COLUMN, "column", "check", "value").iter_rows())


def _reported(result: ValidationResult) -> set[tuple]:
    cases = result.quarantine.select("row", "reasons").explode("reasons").unnest("reasons")
    return set(cases.select("row", "column", "check", "value").iter_rows())


def test_the_pre_pass_loses_no_failure_pandera_finds(
    batch: pl.DataFrame, spec: DatasetSpec
) -> None:
    """Every fault kind, on rows that are otherwise clean: the same failure cases either way."""
    ids = batch["id"].to_list()
    row = pl.int_range(pl.len())
    bad = batch.with_columns(
        pl.when(row == 3)
        .then(float("nan"))
        .when(row == 4)
        .then(float("inf"))
        .when(row == 5)
        .then(-1.0)
        .when(row == 6)
        .then(500.0)
        .otherwise(pl.col("AGEP"))
        .alias("AGEP"),
        pl.when(row == 7)
        .then(pl.lit("99"))
        .when(row == 8)
        .then(None)
        .otherwise(pl.col("SCHL"))
        .alias("SCHL"),
        # rows 10 and 11 share an id and are otherwise clean: both copies must be reported
        pl.when(row == 11).then(ids[10]).otherwise(pl.col("id")).alias("id"),
        pl.when(row == 12).then(None).otherwise(pl.col("year")).alias("year"),
    )
    result = run(bad, spec)
    expected = _pandera_on_every_row(bad, spec, "records")
    assert {r for r, *_ in expected} == {4, 5, 6, 7, 8, 9, 11, 12, 13}
    assert _reported(result) == expected


def test_the_pre_pass_loses_no_label_failure(spec: DatasetSpec) -> None:
    labels = pl.DataFrame(
        {"id": [1, 2, 2, 3, 4], spec.target.name: [1, 0, 1, None, 7]},
        schema=spec.label_schema,
    )
    result = run(labels, spec, rate=1.0, kind="labels")
    expected = _pandera_on_every_row(labels, spec, "labels")
    assert {r for r, *_ in expected} == {2, 3, 4, 5}
    assert _reported(result) == expected


def _compare_whole_and_chunked(path: Path, spec: DatasetSpec, rate: float) -> ValidationResult:
    """``validate_file`` in chunks of 7 rows gives exactly what validating the file whole does."""
    whole = validate_batch(
        read_batch_file(path, spec),
        spec,
        batch_id="2016-01",
        source_file=str(path),
        max_reject_rate=rate,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    with validate_file(
        path,
        spec,
        batch_id="2016-01",
        max_reject_rate=rate,
        now=datetime(2026, 1, 1, tzinfo=UTC),
        chunk_rows=7,
    ) as chunked:
        assert chunked.spill is not None and len(list(chunked.spill.glob("*.parquet"))) > 20
        assert (chunked.status, chunked.rows, chunked.rejected, chunked.accepted) == (
            whole.status,
            whole.rows,
            whole.rejected,
            whole.accepted,
        )
        assert chunked.quarantine.equals(whole.quarantine)
        assert chunked.valid.equals(whole.valid)
        spill = chunked.spill
    assert not spill.exists()  # closed: the spilled chunks are gone, the schema stays
    assert chunked.valid.is_empty() and chunked.valid.schema == whole.valid.schema
    return chunked


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_file_validated_in_chunks_matches_the_whole_file(
    batch: pl.DataFrame, spec: DatasetSpec, tmp_path: Path, suffix: str
) -> None:
    ids = batch["id"].to_list()
    bad = batch.with_columns(
        # row 3: out of range; row 50: bad category; rows 2 and 150 (different chunks) and rows
        # 60 and 61 (the same chunk) share an id
        pl.when(pl.int_range(pl.len()) == 2).then(500.0).otherwise(pl.col("AGEP")).alias("AGEP"),
        pl.when(pl.int_range(pl.len()) == 49).then(pl.lit("99")).otherwise("SCHL").alias("SCHL"),
        pl.when(pl.int_range(pl.len()) == 149)
        .then(ids[1])
        .when(pl.int_range(pl.len()) == 60)
        .then(ids[59])
        .otherwise("id")
        .alias("id"),
    )
    path = tmp_path / f"batch_2016-01.{suffix}"
    bad.write_csv(path) if suffix == "csv" else bad.write_parquet(path)
    result = _compare_whole_and_chunked(path, spec, rate=0.5)
    assert result.rejected == 6
    assert reasons_of(result, 2) == reasons_of(result, 150) == {("id", "field_uniqueness")}
    assert reasons_of(result, 61) == {("id", "field_uniqueness")}
    # refused: every row quarantined, read again from the file
    refused = _compare_whole_and_chunked(path, spec, rate=0.01)
    assert refused.status == "refused" and refused.quarantine.height == 200


def test_a_header_only_file_is_refused_by_the_chunked_reader(
    batch: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    path = tmp_path / "batch_x.csv"
    batch.head(0).write_csv(path)
    with pytest.raises(BatchReadError, match="header but no rows"):
        validate_file(path, spec, batch_id="x", max_reject_rate=0.5)
