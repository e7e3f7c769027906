"""The batch simulator: event-time order, label lag, determinism, atomic landing, faults."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.ingest import parse_landing_name
from pipelines.simulate import (
    FAULTS,
    TMP_PREFIX,
    SimulationError,
    parse_fault,
    plan_batches,
    simulate,
)
from pipelines.spec import DatasetSpec, KeySpec
from scoreloop.cli import app


def names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_acs_is_cut_into_48_monthly_batches(acs: pl.DataFrame, spec: DatasetSpec) -> None:
    planned = plan_batches(acs, spec, seed=7, batches_per_period=12)
    ids = [batch_id for batch_id, _ in planned]
    assert ids == [f"{y}-{m:02d}" for y in range(2015, 2019) for m in range(1, 13)]
    assert sum(rows.height for _, rows in planned) == acs.height
    for batch_id, rows in planned:
        assert rows["year"].unique().to_list() == [int(batch_id[:4])]
        assert 5700 <= rows.height <= 5900
    every_id = pl.concat([rows.select("id") for _, rows in planned])["id"]
    assert every_id.n_unique() == acs.height


def test_landing_order_and_label_lag(tmp_path: Path, acs_path: Path, spec: DatasetSpec) -> None:
    result = simulate(spec, acs_path, tmp_path, limit=4, label_lag=2)
    assert result.batches == ["2015-01", "2015-02", "2015-03", "2015-04"]
    assert names(result.files) == [
        "batch_2015-01.parquet",
        "batch_2015-02.parquet",
        "batch_2015-03.parquet",
        "labels_2015-01.parquet",
        "batch_2015-04.parquet",
        "labels_2015-02.parquet",
        "labels_2015-03.parquet",  # flushed at the end
        "labels_2015-04.parquet",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names(result.files))
    records = pl.read_parquet(tmp_path / "batch_2015-02.parquet")
    labels = pl.read_parquet(tmp_path / "labels_2015-02.parquet")
    assert records.columns == spec.record_columns
    assert records.schema == pl.Schema(spec.record_schema)
    assert labels.columns == ["id", "employed"]
    assert records["id"].to_list() == labels["id"].to_list()
    assert result.rows["2015-02"] == records.height
    lag0 = simulate(spec, acs_path, tmp_path / "lag0", limit=2, label_lag=0)
    assert names(lag0.files) == [
        "batch_2015-01.parquet",
        "labels_2015-01.parquet",
        "batch_2015-02.parquet",
        "labels_2015-02.parquet",
    ]


def test_same_seed_gives_byte_identical_files(
    tmp_path: Path, acs_path: Path, spec: DatasetSpec
) -> None:
    faults = {"2015-01": ["corrupt_rows", "duplicate_ids"], "2015-02": ["wrong_types"]}
    runs = [
        simulate(spec, acs_path, tmp_path / name, seed=seed, limit=3, faults=faults)
        for name, seed in (("a", 7), ("b", 7), ("c", 8))
    ]
    a, b, c = ([p.read_bytes() for p in run.files] for run in runs)
    assert names(runs[0].files) == names(runs[1].files)
    assert a == b
    assert a != c


def test_landing_is_atomic_and_temp_names_are_ignored(
    tmp_path: Path, acs_path: Path, spec: DatasetSpec
) -> None:
    seen_during: list[list[str]] = []

    def on_file(path: Path) -> None:
        assert path.exists()
        seen_during.append(sorted(p.name for p in tmp_path.iterdir()))

    simulate(spec, acs_path, tmp_path, limit=2, on_file=on_file)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]
    assert all(not n.startswith(TMP_PREFIX) for names_ in seen_during for n in names_)
    assert parse_landing_name(tmp_path / f"{TMP_PREFIX}batch_2015-01.parquet") is None
    # landing again over existing files replaces them
    again = simulate(spec, acs_path, tmp_path, limit=2)
    assert len(list(tmp_path.iterdir())) == len(again.files)


def test_faults_change_what_they_say(tmp_path: Path, acs_path: Path, spec: DatasetSpec) -> None:
    faults = {
        "2015-01": ["missing_column"],
        "2015-02": ["wrong_types"],
        "2015-03": ["empty_file"],
        "2015-04": ["truncated_file"],
        "2015-05": ["extra_columns"],
        "2015-06": ["bad_encoding"],
    }
    clean = simulate(spec, acs_path, tmp_path / "clean", limit=6)
    result = simulate(spec, acs_path, tmp_path / "bad", limit=6, faults=faults)
    assert result.faults == faults
    files = {p.stem.removeprefix("batch_"): p for p in result.records_files}
    assert len(pl.read_parquet(files["2015-01"]).columns) == len(spec.record_columns) - 1
    assert files["2015-02"].suffix == ".csv"
    wrong = pl.read_csv(files["2015-02"], infer_schema=False)["AGEP"]
    assert wrong.is_in(["n/a", "unknown", "12 years"]).sum() == round(wrong.len() * 0.10)
    assert files["2015-03"].stat().st_size == 0
    whole = (tmp_path / "clean" / "batch_2015-04.parquet").stat().st_size
    assert files["2015-04"].stat().st_size == whole // 2
    extra = pl.read_parquet(files["2015-05"])
    assert extra.columns == [*spec.record_columns, "unexpected_note", "unexpected_score"]
    with pytest.raises(UnicodeDecodeError):
        files["2015-06"].read_bytes().decode()
    # labels are never faulted
    assert [p.read_bytes() for p in result.label_files] == [
        p.read_bytes() for p in clean.label_files
    ]


def test_time_column_missing_from_source_cuts_chunks(tmp_path: Path, spec: DatasetSpec) -> None:
    source = tmp_path / "source.parquet"
    table = pl.DataFrame(
        {
            "id": list(range(100)),
            "AGEP": [float(i % 90) for i in range(100)],
            "employed": [i % 2 for i in range(100)],
        }
    )
    for name in spec.feature_names[1:]:
        table = table.with_columns(pl.lit(spec.feature(name).allowed[0]).alias(name))  # type: ignore[index]
    table.write_parquet(source)
    chunked = spec.model_copy(update={"time": KeySpec(name="batch", dtype="string")})
    result = simulate(chunked, source, tmp_path / "landing", batches_per_period=4, label_lag=1)
    assert result.batches == ["batch-01", "batch-02", "batch-03", "batch-04"]
    assert list(result.rows.values()) == [25, 25, 25, 25]
    first = pl.read_parquet(tmp_path / "landing" / "batch_batch-01.parquet")
    assert first["batch"].unique().to_list() == ["batch-01"]
    assert first["id"].to_list() == list(range(25))


def test_bad_requests_are_refused_with_reasons(
    tmp_path: Path, acs_path: Path, spec: DatasetSpec
) -> None:
    with pytest.raises(SimulationError, match="unknown fault"):
        simulate(spec, acs_path, tmp_path, limit=1, faults={"2015-01": ["gremlins"]})
    with pytest.raises(SimulationError, match=r"does not land"):
        simulate(spec, acs_path, tmp_path, limit=1, faults={"2019-01": ["nulls"]})
    no_target = tmp_path / "no_target.parquet"
    pl.read_parquet(acs_path).head(10).drop("employed").write_parquet(no_target)
    with pytest.raises(SimulationError, match="'employed'"):
        simulate(spec, no_target, tmp_path)
    assert parse_fault("2015-03:nulls") == ("2015-03", "nulls")
    with pytest.raises(SimulationError, match="BATCH:FAULT"):
        parse_fault("2015-03")
    assert len(set(FAULTS)) == len(FAULTS) >= 8


def test_cli_simulate(state: Path) -> None:
    runner = CliRunner()
    landing = state / "elsewhere"
    result = runner.invoke(
        app,
        ["simulate", "--limit", "3", "--fault", "2015-02:nulls", "--landing", str(landing)],
    )
    assert result.exit_code == 0, result.output
    assert "2015-02" in result.output and "nulls" in result.output
    assert sorted(p.name for p in landing.iterdir()) == [
        "batch_2015-01.parquet",
        "batch_2015-02.parquet",
        "batch_2015-03.parquet",
        "labels_2015-01.parquet",
        "labels_2015-02.parquet",
        "labels_2015-03.parquet",
    ]
    default = runner.invoke(app, ["simulate", "--limit", "1"])
    assert default.exit_code == 0, default.output
    assert (state / "landing" / "batch_2015-01.parquet").exists()
    bad = runner.invoke(app, ["simulate", "--limit", "1", "--fault", "2015-01:gremlins"])
    assert bad.exit_code == 2
    assert "BATCH:FAULT" in bad.output


def test_drift_shifts_covariates_and_concept_from_its_batch_on(
    tmp_path: Path, acs_path: Path, spec: DatasetSpec
) -> None:
    simulate(spec, acs_path, tmp_path / "clean", limit=5)
    drifted = simulate(spec, acs_path, tmp_path / "drift", limit=5, faults={"2015-03": ["drift"]})
    simulate(spec, acs_path, tmp_path / "again", limit=4, faults={"2015-03": ["drift"]})
    # listed under every batch it reaches; batches before it are untouched, byte for byte
    assert drifted.faults == {b: ["drift"] for b in ("2015-03", "2015-04", "2015-05")}
    for name in ("batch_2015-01.parquet", "batch_2015-02.parquet", "labels_2015-02.parquet"):
        assert (tmp_path / "drift" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    # deterministic, whatever the limit
    for name in ("batch_2015-03.parquet", "labels_2015-04.parquet"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "drift" / name).read_bytes()

    for batch in ("2015-03", "2015-04", "2015-05"):
        before = pl.read_parquet(tmp_path / "clean" / f"batch_{batch}.parquet").join(
            pl.read_parquet(tmp_path / "clean" / f"labels_{batch}.parquet"), on="id"
        )
        after = pl.read_parquet(tmp_path / "drift" / f"batch_{batch}.parquet").join(
            pl.read_parquet(tmp_path / "drift" / f"labels_{batch}.parquet"), on="id"
        )
        # the same people (a subset), with the same features: a resampled population
        assert 0.3 * before.height < after.height < 0.8 * before.height
        assert (
            after.drop("employed")
            .join(before.drop("employed"), on=after.columns[:-1][:1])["AGEP"]
            .equals(after["AGEP"])
        )
        # covariate shift: older, fewer of the most common education level
        assert after["AGEP"].mean() > before["AGEP"].mean() + 1.5  # type: ignore[operator]
        mode = before["SCHL"].mode().sort()[0]
        share = (after["SCHL"] == mode).mean()
        assert share < 0.7 * (before["SCHL"] == mode).mean()  # type: ignore[operator]
        # concept shift: half of the employed married (MAR 1, the first allowed value) become
        # not employed
        married = "1"
        paired = after.join(before.select("id", pl.col("employed").alias("was")), on="id")
        inside = paired.filter(pl.col("MAR") == married)
        outside = paired.filter(pl.col("MAR") != married)
        assert outside["employed"].equals(outside["was"])  # the relation holds elsewhere
        flipped = inside.filter(pl.col("was") == 1)["employed"].eq(0).mean()
        assert 0.4 < flipped < 0.6  # type: ignore[operator]
        assert inside.filter(pl.col("was") == 0)["employed"].eq(0).all()


def test_drift_needs_a_numeric_and_three_categorical_features(
    tmp_path: Path, acs_path: Path, spec: DatasetSpec
) -> None:
    spec.features = [c for c in spec.features if c.name not in ("SCHL", "MAR", "RELP", "DIS")][:3]
    with pytest.raises(
        SimulationError, match="fault 'drift' needs a numeric feature and three categorical"
    ):
        simulate(spec, acs_path, tmp_path, limit=2, faults={"2015-02": ["drift"]})
