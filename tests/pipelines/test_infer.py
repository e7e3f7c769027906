"""``dataset infer``'s heuristics and refusals, each on a small table made here."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.infer import InferError, infer_dataset, is_code, widen
from pipelines.reading import read_source, sniff_source
from pipelines.settings import get_settings
from pipelines.simulate import SimulationError, load_source, plan_batches, simulate
from pipelines.spec import save_spec
from pipelines.validate import read_batch_file
from scoreloop.cli import app


def _table(rows: int = 600, seed: int = 3, **extra: object) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {"x": rng.normal(size=rows), "y": rng.choice([0, 1], rows, p=[0.7, 0.3]), **extra}
    )


def _parquet(tmp_path: Path, df: pl.DataFrame, name: str = "t.parquet") -> Path:
    df.write_parquet(tmp_path / name)
    return tmp_path / name


# --- positive class -------------------------------------------------------------------------


def test_positive_is_the_rarer_class_unless_given(tmp_path: Path) -> None:
    labels = ["good"] * 400 + ["bad"] * 200
    path = _parquet(tmp_path, _table(600).with_columns(risk=pl.Series(labels)))
    drafted = infer_dataset(path, target="risk")
    assert (drafted.spec.positive_label, drafted.spec.negative_label) == ("bad", "good")
    assert drafted.positive_reason.startswith("the rarer class, 33.3%")
    given = infer_dataset(path, target="risk", positive="good")
    assert given.spec.positive_label == "good" and given.positive_reason == "given by --positive"
    with pytest.raises(InferError, match="--positive 'ok' is not a value of target 'risk'"):
        infer_dataset(path, target="risk", positive="ok")


def test_balanced_targets_take_the_usual_positive(tmp_path: Path) -> None:
    flags = pl.Series([True, False] * 300)
    path = _parquet(tmp_path, _table(600).drop("y").with_columns(churned=flags))
    drafted = infer_dataset(path, target="churned")
    assert drafted.spec.target.dtype == "bool" and drafted.spec.positive_label is True
    assert "balanced" in drafted.positive_reason
    two = _parquet(tmp_path, _table(600).with_columns(y=pl.Series([1, 2] * 300)), "b.parquet")
    assert infer_dataset(two, target="y").spec.positive_label == 2  # last value, said so


@pytest.mark.parametrize(("values", "found"), [([1] * 10, "found 1"), ([0, 1, 2] * 4, "found 3")])
def test_targets_without_two_classes_are_refused_naming_the_column(
    tmp_path: Path, values: list[int], found: str
) -> None:
    df = pl.DataFrame({"x": np.arange(len(values), dtype=float), "outcome": values})
    with pytest.raises(
        InferError, match=f"target 'outcome' must have exactly two classes, {found}"
    ):
        infer_dataset(_parquet(tmp_path, df), target="outcome")


# --- CSV dialects and missing markers -------------------------------------------------------


@pytest.mark.parametrize(("separator", "expected"), [(";", ";"), ("\t", "\t"), (", ", ",")])
def test_separator_sniffing_and_trimming(tmp_path: Path, separator: str, expected: str) -> None:
    rows = [separator.join(["age", "city", "y"])]
    rows += [
        separator.join([str(20 + i % 50), ["Oslo", "Rome"][i % 2], str(i % 3 == 0)])
        for i in range(300)
    ]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n")
    source = sniff_source(path)
    assert (source.separator, source.header) == (expected, True)
    spec = infer_dataset(path, target="y").spec
    assert (spec.feature("age").dtype, spec.feature("age").categorical) == ("int", False)
    assert spec.feature("city").allowed == ["Oslo", "Rome"]  # no leading spaces


def test_header_detection_and_no_header(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("".join(f"{i}, {i % 7}.5, {'a' if i % 2 else 'b'}\n" for i in range(200)))
    source = sniff_source(path)
    assert not source.header and source.columns == ["column_1", "column_2", "column_3"]
    texts = tmp_path / "names.csv"
    body = "".join(f"{'x' if i % 2 else 'y'},{'p' if i % 3 else 'q'}\n" for i in range(50))
    texts.write_text(body)
    assert not sniff_source(texts).header  # all text, first-line values recur below: data
    texts.write_text("name,colour\n" + body)
    assert sniff_source(texts).header  # names that never recur in their column: a header ...
    assert not sniff_source(texts, header=False).header  # ... unless --no-header says otherwise
    assert read_source(texts, sniff_source(texts, header=False)).height == 51


def test_missing_markers_are_null_listed_and_applied_at_ingest(tmp_path: Path) -> None:
    marks = ["?", "NA", "N/A", ""]
    lines = ["n, kind, y"] + [  # ", "-separated: values are trimmed, here and at ingest
        f"{marks[i % 4] if i % 5 == 0 else i}, {marks[i % 4] if i % 7 == 0 else 'k' + str(i % 3)}, "
        f"{i % 2}"
        for i in range(400)
    ]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    spec = infer_dataset(path, target="y").spec
    assert spec.source is not None and {"?", "NA", "N/A", ""} <= set(spec.source.missing_values)
    assert spec.source.trim
    n, kind = spec.feature("n"), spec.feature("kind")
    assert (n.dtype, n.nullable) == ("int", True)
    assert kind.allowed == ["k0", "k1", "k2"] and kind.nullable
    batch = tmp_path / "batch_x.csv"
    batch.write_text("row_id,batch,n,kind\n1,b, ? , N/A\n2,b,3, k1 \n")
    read = read_batch_file(batch, spec)
    assert read["n"].to_list() == [None, "3"] and read["kind"].to_list() == [None, "k1"]


# --- integers: codes or counts; ranges ------------------------------------------------------


def test_code_or_count_rule() -> None:
    assert not is_code("children", 6, 0, 5)  # dense small run: a count
    assert is_code("occupation", 4, 110, 950)  # sparse over its range: codes
    assert is_code("zip3", 40, 10, 49)  # the name says so
    assert not is_code("occupation", 65, 1, 1000)  # too many values to list


def test_integer_codes_and_counts_in_a_draft(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    df = _table(600).with_columns(
        children=pl.Series(rng.integers(0, 6, 600)),
        occupation=pl.Series(rng.choice([110, 220, 540, 950], 600)),
    )
    spec = infer_dataset(_parquet(tmp_path, df), target="y").spec
    assert not spec.feature("children").categorical
    assert spec.feature("occupation").allowed == ["110", "220", "540", "950"]


def test_range_slack() -> None:
    assert widen(10.0, 20.0, "float") == (9.0, 21.0)
    assert widen(0.0, 95.0, "float") == (0.0, 104.5)  # never below 0 for a non-negative column
    assert widen(-5.0, 5.0, "int") == (-6.0, 6.0)


# --- time columns and batching --------------------------------------------------------------


def _daily(tmp_path: Path, days: int, per_day: int, kind: str) -> Path:
    start = datetime(2020, 1, 1, 8, 30)
    times = [start + timedelta(days=d, minutes=m) for d in range(days) for m in range(per_day)]
    df = _table(len(times))
    column: object = {
        "datetime": times,
        "date": [t.date() for t in times],
        "text": [t.strftime("%d/%m/%Y %H:%M") for t in times],
    }[kind]
    return _parquet(tmp_path, df.with_columns(when=pl.Series(column)))


@pytest.mark.parametrize("kind", ["datetime", "date", "text"])
def test_time_columns_of_any_common_type_batch_by_month(tmp_path: Path, kind: str) -> None:
    path = _daily(tmp_path, days=730, per_day=5, kind=kind)
    fmt = "%d/%m/%Y %H:%M" if kind == "text" else None
    drafted = infer_dataset(path, target="y", time_column="when", time_format=fmt)
    assert (drafted.plan.by, drafted.plan.batches) == ("month", 24)
    assert drafted.spec.time.batch_by == "month" and drafted.spec.time.dtype == "string"
    plan = plan_batches(load_source(drafted.spec, path), drafted.spec, batches_per_period=1)
    ids = [batch_id for batch_id, _ in plan]
    assert ids[:2] == ["2020-01", "2020-02"] and ids == sorted(ids) and len(ids) == 24
    assert plan[0][1]["when"][0].startswith("2020-01-")  # records carry ISO text


def test_short_spans_batch_by_day_and_years_by_year(tmp_path: Path) -> None:
    short = infer_dataset(
        _daily(tmp_path, days=30, per_day=120, kind="datetime"), target="y", time_column="when"
    )
    assert (short.plan.by, short.plan.batches) == ("day", 30)
    years = _parquet(
        tmp_path, _table(4000).with_columns(year=pl.Series([2015, 2016] * 2000)), "y.parquet"
    )
    drafted = infer_dataset(years, target="y", time_column="year")
    assert drafted.plan.by == "year" and drafted.plan.per_period == 8  # 16 batches in all
    assert drafted.spec.time.dtype == "int"


def test_absurd_batching_is_refused(tmp_path: Path) -> None:
    path = _daily(tmp_path, days=730, per_day=5, kind="datetime")
    with pytest.raises(InferError, match="--batch-by day would make 730 batches with a median"):
        infer_dataset(path, target="y", time_column="when", batch_by="day")
    with pytest.raises(InferError, match="--batch-by 3000 would make 3,000 batches"):
        infer_dataset(path, target="y", time_column="when", batch_by="3000")
    by_n = infer_dataset(path, target="y", time_column="when", batch_by="10")
    assert (by_n.plan.by, by_n.plan.batches) == ("rows", 10)


def test_the_simulator_caps_a_legacy_spec_with_timestamps(tmp_path: Path) -> None:
    path = _daily(tmp_path, days=200, per_day=5, kind="datetime")
    spec = infer_dataset(path, target="y", time_column="when").spec
    # the old reading: every distinct timestamp a period, cut into 12 batches
    legacy = spec.model_copy(update={"time": spec.time.model_copy(update={"batch_by": None})})
    df = load_source(spec, path).with_columns(pl.col("when").dt.strftime("%Y-%m-%dT%H:%M"))
    with pytest.raises(SimulationError, match="would land 12,000 batches"):
        plan_batches(df, legacy, batches_per_period=12)


def test_unparseable_time_text_is_refused_with_the_fix(tmp_path: Path) -> None:
    df = _table(50).with_columns(when=pl.Series(["soon"] * 50))
    with pytest.raises(InferError, match=r"time column 'when'.*pass --time-format"):
        infer_dataset(_parquet(tmp_path, df), target="y", time_column="when")


# --- ids, params, model name ----------------------------------------------------------------


def test_made_row_id_joins_back_by_position(tmp_path: Path) -> None:
    df = _table(1200)
    path = _parquet(tmp_path, df)
    drafted = infer_dataset(path, target="y")
    assert (drafted.spec.id.name, drafted.spec.id.generated) == ("row_id", True)
    result = simulate(drafted.spec, path, tmp_path / "landing", batches_per_period=4)
    landed = pl.concat(pl.read_parquet(p) for p in result.records_files)
    joined = landed.join(df.with_row_index("row_id").cast({"row_id": pl.Int64}), on="row_id")
    assert joined.height == 1200 and (joined["x"] == joined["x_right"]).all()


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = _parquet(tmp_path, _table(10).with_columns(k=pl.Series([1] * 10)))
    with pytest.raises(InferError, match="id column 'k' is not unique"):
        infer_dataset(path, target="y", id_column="k")


def test_params_are_sized_from_the_data(tmp_path: Path) -> None:
    drafted = infer_dataset(_parquet(tmp_path, _table(1000)), target="y")
    assert drafted.params["simulate"] == {"batches_per_period": 10}
    split = drafted.params["split"]
    assert (split["window_batches"], split["holdout_batches"], split["min_rows"]) == (10, 2, 50)
    assert drafted.params["gate"]["absolute_floor"] == 0.55
    with pytest.raises(InferError, match="only 2 batch"):
        infer_dataset(tmp_path / "t.parquet", target="y", batch_by="2")


def test_model_name_comes_from_the_spec(
    state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = []
    for stem in ("loans_2024", "churn"):
        spec = infer_dataset(_parquet(tmp_path, _table(300), f"{stem}.parquet"), target="y").spec
        monkeypatch.setenv("SCORELOOP_SPEC_PATH", str(save_spec(spec, tmp_path / f"{stem}.yaml")))
        names.append(get_settings().model_name)
    assert names == ["loans-2024", "churn"]  # registry-safe, one per dataset
    monkeypatch.setenv("SCORELOOP_MODEL_NAME", "override")
    assert get_settings().model_name == "override"


def test_cli_prints_the_report_and_writes_both_files(tmp_path: Path) -> None:
    path = _daily(tmp_path, days=730, per_day=5, kind="date")
    out = tmp_path / "d.spec.yaml"
    result = CliRunner().invoke(
        app, ["dataset", "infer", str(path), "--target", "y", "--time", "when", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    for part in (
        "columns: 1 numeric",
        "target balance:",
        "positive class: 1",
        "batches: 24",
        "absolute_floor 0.55",
        "check:",
    ):
        assert part in result.output
    assert (tmp_path / "d.params.yaml").exists()
    refused = CliRunner().invoke(app, ["dataset", "infer", str(path), "--target", "x"])
    assert refused.exit_code == 2 and "target 'x' must have exactly two classes" in refused.output


def test_year_month_strings_are_read_as_months(tmp_path: Path) -> None:
    months = [f"2024-{m:02d}" for m in range(1, 13)]
    frame = pl.DataFrame(
        {
            "id": list(range(1200)),
            "month": [months[i % 12] for i in range(1200)],
            "x": [float(i % 7) for i in range(1200)],
            "y": [i % 3 == 0 for i in range(1200)],
        }
    )
    path = tmp_path / "monthly.parquet"
    frame.write_parquet(path)
    draft = infer_dataset(path, target="y", id_column="id", time_column="month")
    assert draft.spec.time.format == "%Y-%m"


# --- typing CSV text from the whole file ------------------------------------------------------


def test_few_valued_text_is_typed_from_the_whole_file(tmp_path: Path) -> None:
    """Columns typed from their value set, and from every row when the set outgrows a category
    set past the first rows, draft what a row-by-row reading would."""
    rows = 3000
    head_then_more = [i % 5 for i in range(2500)] + list(range(100, 600))
    padded_code = ["011", "022"] * (rows // 2)
    late_text = ["3"] * (rows - 1) + ["three"]
    late_float = ["1"] * (rows - 1) + ["1.5"]
    df = _table(rows).with_columns(
        grows=pl.Series(head_then_more),
        zone_code=pl.Series(padded_code),
        late_text=pl.Series(late_text),
        late_float=pl.Series(late_float),
    )
    path = tmp_path / "t.csv"
    df.write_csv(path)
    spec = infer_dataset(path, target="y").spec
    by_name = {c.name: c for c in spec.features}
    assert (by_name["grows"].dtype, by_name["grows"].categorical) == ("int", False)
    assert by_name["grows"].max == pytest.approx(599 + 0.1 * 599, abs=1)
    assert by_name["zone_code"].allowed == ["011", "022"]
    assert (by_name["late_text"].dtype, by_name["late_text"].allowed) == ("string", ["3", "three"])
    assert by_name["late_float"].dtype == "float"


def test_ids_unique_as_text_but_not_as_numbers_are_unique(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    ids = [str(i) for i in range(598)] + ["1.0", "007"]
    _table(600).with_columns(k=pl.Series(ids)).write_csv(path)
    assert infer_dataset(path, target="y", id_column="k").spec.id.name == "k"
    dup = [str(i) for i in range(599)] + ["5"]
    _table(600).with_columns(k=pl.Series(dup)).write_csv(path)
    with pytest.raises(InferError, match=r"id column 'k' is not unique \(599 distinct"):
        infer_dataset(path, target="y", id_column="k")


@pytest.mark.parametrize("order", ["increasing", "shuffled", "decreasing"])
def test_id_uniqueness_is_exact_in_any_order(tmp_path: Path, order: str) -> None:
    """Increasing ids are proved distinct without counting; any other order is counted: one
    duplicate anywhere, or two missing ids, is refused either way (CSV numbers and text)."""
    rows = 6000  # past the sniffed lines, so the CSV reader parses the numbers itself
    ids = np.arange(rows) * 3
    ids = {
        "increasing": ids,
        "shuffled": np.random.default_rng(1).permutation(ids),
        "decreasing": ids[::-1],
    }[order]
    path = tmp_path / "t.csv"
    for column in (pl.Series(ids), pl.Series([f"c{i:06d}" for i in ids])):
        _table(rows).with_columns(k=column).write_csv(path)
        assert infer_dataset(path, target="y", id_column="k").spec.id.name == "k"
        dup = column.clone().scatter(rows - 2, column[rows - 3])
        _table(rows).with_columns(k=dup).write_csv(path)
        with pytest.raises(InferError, match=f"not unique \\({rows - 1:,} distinct"):
            infer_dataset(path, target="y", id_column="k")
        missing = column.clone().scatter([rows - 4, rows - 1], None)
        _table(rows).with_columns(k=missing).write_csv(path)
        with pytest.raises(InferError, match=f"not unique \\({rows - 1:,} distinct"):
            infer_dataset(path, target="y", id_column="k")


def test_numbers_the_csv_reader_parses_or_refuses_late_in_the_file(tmp_path: Path) -> None:
    """Past the sniffed lines: a number padded on the left is a number (as the reader and the
    simulator read it), a text value makes the column text (the pass is run again)."""
    rows = 6000  # well past the 64 KiB that are sniffed
    rng = np.random.default_rng(4)
    amount = [f"{v:.3f}" for v in rng.normal(100, 10, rows)]
    amount[-1] = "  98.5"
    label = [f"{v:.3f}" for v in rng.normal(size=rows)]
    label[-2] = "n/a-ish"
    df = _table(rows).with_columns(amount=pl.Series(amount), label=pl.Series(label))
    path = tmp_path / "t.csv"
    df.write_csv(path)
    drafted = infer_dataset(path, target="y")
    assert drafted.spec.source.trim is False
    by_name = {c.name: c for c in drafted.spec.features}
    assert by_name["amount"].dtype == "float" and by_name["label"].dtype == "string"
    loaded = load_source(drafted.spec, path)
    assert loaded["amount"][-1] == 98.5 and loaded["label"][-2] == "n/a-ish"
