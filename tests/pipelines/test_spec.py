"""The dataset spec: loading, checking, saving and drafting one from data."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from pipelines.spec import (
    MAX_INFERRED_CATEGORIES,
    DatasetSpec,
    SpecError,
    infer_spec,
    load_spec,
    read_table,
    save_spec,
)


def test_bundled_spec(spec: DatasetSpec) -> None:
    assert (spec.id.name, spec.time.name, spec.target.name) == ("id", "year", "employed")
    assert spec.record_columns[:3] == ["id", "year", "AGEP"]
    assert len(spec.features) == 16 and len(spec.categorical_names) == 15
    assert spec.slices == ["SEX", "RAC1P", "DIS"]
    assert spec.label_schema == {"id": pl.Int64(), "employed": pl.Int64()}


def test_bundled_spec_is_what_infer_drafts_from_the_bundled_data(
    acs: pl.DataFrame, spec: DatasetSpec
) -> None:
    drafted = infer_spec(
        acs,
        name=spec.name,
        target="employed",
        id_column="id",
        time_column="year",
        slices=spec.slices,
    )
    strip = {"description"}
    assert [c.model_dump(exclude=strip) for c in drafted.features] == [
        c.model_dump(exclude=strip) for c in spec.features
    ]
    assert drafted.id == spec.id and drafted.time == spec.time and drafted.target == spec.target


def test_save_and_load_round_trip(tmp_path: Path, spec: DatasetSpec) -> None:
    path = save_spec(spec, tmp_path / "nested" / "spec.yaml")
    assert load_spec(path) == spec


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw["features"][0].update(categorical=True), "cannot be categorical"),
        (lambda raw: raw["features"][0].update(allowed=["1"]), "only for categorical"),
        (lambda raw: raw["features"][0].update(min=100.0), "min 100.0 > max 95.0"),
        (lambda raw: raw["features"].append(raw["features"][1]), "duplicate feature names"),
        (lambda raw: raw["time"].update(name="id"), "three different columns"),
        (lambda raw: raw["id"].update(name="AGEP"), "both a key column and a feature"),
        (lambda raw: raw["slices"].append("nope"), "not features of the spec"),
        (lambda raw: raw.update(features=[]), "at least one feature"),
        (lambda raw: raw.update(colour="blue"), "colour"),
        (lambda raw: raw["features"][0].update(dtype="decimal"), "dtype"),
    ],
)
def test_malformed_specs_are_refused_naming_the_file(
    tmp_path: Path, spec: DatasetSpec, change: object, message: str
) -> None:
    raw = yaml.safe_load(spec.to_yaml())
    change(raw)  # type: ignore[operator]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=message) as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_unreadable_spec_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "a.yaml").write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("- a list\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(tmp_path / "b.yaml")


def test_infer_types_categories_and_ranges() -> None:
    n = 200
    df = pl.DataFrame(
        {
            "key": [f"k{i}" for i in range(n)],
            "level": [i % 12 for i in range(n)],  # few ints: categorical, numeric order
            "count": list(range(n)),  # many ints: numeric with a range
            "comment": [f"free text {i}" for i in range(n)],  # many strings: no allowed set
            "ratio": [None if i % 10 == 0 else i / n for i in range(n)],
            "flag": [i % 3 == 0 for i in range(n)],
            "label": [i % 2 for i in range(n)],
        }
    )
    spec = infer_spec(df, name="t", target="label", id_column="key")
    level = spec.feature("level")
    assert level.categorical and level.dtype == "string"
    assert level.allowed == [str(i) for i in range(12)]  # "2" before "10"
    count = spec.feature("count")
    assert (count.dtype, count.categorical, count.min, count.max) == ("int", False, 0.0, 199.0)
    comment = spec.feature("comment")
    assert comment.categorical and comment.allowed is None and n > MAX_INFERRED_CATEGORIES
    ratio = spec.feature("ratio")
    assert ratio.dtype == "float" and ratio.nullable and not spec.feature("count").nullable
    assert spec.feature("flag").allowed == ["false", "true"]
    assert (spec.time.name, spec.time.dtype) == ("batch", "string")
    assert (spec.negative_label, spec.positive_label) == (0, 1)


def test_infer_refuses_what_it_cannot_describe() -> None:
    df = pl.DataFrame({"id": [1, 2, 3], "y": [0, 1, 2], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(SpecError, match="exactly two classes"):
        infer_spec(df, name="t", target="y", id_column="id")
    with pytest.raises(SpecError, match="'when' is not in the table"):
        infer_spec(df, name="t", target="y", id_column="id", time_column="when")
    dates = df.with_columns(
        y=pl.Series([0, 1, 0]),
        d=pl.date_range(pl.date(2020, 1, 1), pl.date(2020, 1, 3), eager=True),
    )
    with pytest.raises(SpecError, match="'d' has type Date"):
        infer_spec(dates, name="t", target="y", id_column="id")


def test_read_table_formats(tmp_path: Path) -> None:
    df = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    df.write_csv(tmp_path / "t.csv")
    df.write_parquet(tmp_path / "t.parquet")
    assert read_table(tmp_path / "t.csv").equals(df)
    assert read_table(tmp_path / "t.parquet").equals(df)
    with pytest.raises(SpecError, match="unsupported format"):
        read_table(tmp_path / "t.xlsx")
