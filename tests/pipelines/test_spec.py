"""The dataset spec: loading, checking, saving and drafting one from data."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from pipelines.infer import MAX_INFERRED_CATEGORIES, infer_dataset
from pipelines.reading import SourceError, read_source
from pipelines.settings import BUNDLED_SPEC
from pipelines.spec import DatasetSpec, SpecError, load_spec, save_spec


def test_bundled_spec(spec: DatasetSpec) -> None:
    assert (spec.id.name, spec.time.name, spec.target.name) == ("id", "year", "employed")
    assert spec.record_columns[:3] == ["id", "year", "AGEP"]
    assert len(spec.features) == 16 and len(spec.categorical_names) == 15
    assert spec.slices == ["SEX", "RAC1P", "DIS"]
    assert spec.label_schema == {"id": pl.Int64(), "employed": pl.Int64()}


def test_bundled_spec_is_what_infer_drafts_from_the_bundled_data(spec: DatasetSpec) -> None:
    drafted = infer_dataset(
        BUNDLED_SPEC.parent / "employment_MA.parquet",
        target="employed",
        id_column="id",
        time_column="year",
        slices=spec.slices,
    ).spec
    strip = {"description", "min", "max"}
    assert [c.model_dump(exclude=strip) for c in drafted.features] == [
        c.model_dump(exclude=strip) for c in spec.features
    ]
    age, bundled = drafted.feature("AGEP"), spec.feature("AGEP")
    assert age.min == bundled.min == 0.0  # no negative ages: the slack stops at 0
    assert age.max is not None and bundled.max is not None and age.max > bundled.max
    assert drafted.id == spec.id and drafted.target == spec.target
    assert (drafted.time.name, drafted.time.dtype, drafted.time.batch_by) == ("year", "int", "year")


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


def test_infer_types_categories_and_ranges(tmp_path: Path) -> None:
    n = 200
    df = pl.DataFrame(
        {
            "key": [f"k{i}" for i in range(n)],
            "level": [i % 12 for i in range(n)],  # a dense run of small ints: a count, numeric
            "region_code": [(i % 12) * 7 for i in range(n)],  # named a code: categorical
            "count": list(range(n)),  # many ints: numeric with a range
            "comment": [f"free text {i}" for i in range(n)],  # many strings: no allowed set
            "ratio": [None if i % 10 == 0 else i / n for i in range(n)],
            "flag": [i % 3 == 0 for i in range(n)],
            "label": [i % 2 for i in range(n)],
        }
    )
    df.write_parquet(tmp_path / "t.parquet")
    spec = infer_dataset(tmp_path / "t.parquet", name="t", target="label", id_column="key").spec
    level = spec.feature("level")
    assert (level.dtype, level.categorical, level.min, level.max) == ("int", False, 0.0, 13.0)
    code = spec.feature("region_code")
    assert code.categorical and code.allowed == [str(7 * i) for i in range(12)]  # "7" before "14"
    count = spec.feature("count")
    assert (count.dtype, count.categorical) == ("int", False)
    assert (count.min, count.max) == (0.0, 219.0)  # 0..199 widened by 10% (not below 0)
    comment = spec.feature("comment")
    assert comment.categorical and comment.allowed is None and n > MAX_INFERRED_CATEGORIES
    ratio = spec.feature("ratio")
    assert ratio.dtype == "float" and ratio.nullable and not spec.feature("count").nullable
    assert spec.feature("flag").allowed == ["false", "true"]
    assert (spec.time.name, spec.time.dtype) == ("batch", "string")
    assert (spec.negative_label, spec.positive_label) == (0, 1)


def test_read_source_formats(tmp_path: Path) -> None:
    df = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    df.write_csv(tmp_path / "t.csv")
    df.write_parquet(tmp_path / "t.parquet")
    assert read_source(tmp_path / "t.csv").equals(df.cast(pl.String))  # CSV is read as text
    assert read_source(tmp_path / "t.parquet").equals(df)
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(SourceError, match="unsupported format"):
        read_source(tmp_path / "t.xlsx")
