"""Bring your own data: a table unlike ACS goes infer -> simulate -> ingest with only its spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.ingest import LOG_SCHEMA, VALIDATED, accepted_batches, ingest_file, log_uri
from pipelines.params import load_params
from pipelines.simulate import simulate
from pipelines.spec import load_spec
from pipelines.tables import read_table, table_uri
from pipelines.validate import BatchReadError
from scoreloop.cli import app


def credit_table(rows: int = 1200, seed: int = 5) -> pl.DataFrame:
    """Synthetic credit applications: string ids, nullable float, boolean, string category."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.5, 0.6, rows).round(2)
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in range(rows)],
            "income": pl.Series(income).set(pl.Series(rng.random(rows) < 0.1), None),
            "has_mortgage": rng.random(rows) < 0.4,
            "purpose": rng.choice(["car", "home", "education", "travel"], rows),
            "utilisation": rng.random(rows).round(4),
            "defaulted": rng.choice(["no", "yes"], rows, p=[0.8, 0.2]),
        }
    )


@pytest.fixture
def credit(tmp_path: Path) -> Path:
    path = tmp_path / "credit.parquet"
    credit_table().write_parquet(path)
    return path


def test_infer_then_simulate_then_ingest(state: Path, credit: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    spec_path = tmp_path / "credit.spec.yaml"
    inferred = runner.invoke(
        app,
        [
            "dataset",
            "infer",
            str(credit),
            "--target",
            "defaulted",
            "--id",
            "customer_id",
            "--slice",
            "purpose",
            "--out",
            str(spec_path),
        ],
    )
    assert inferred.exit_code == 0, inferred.output
    spec = load_spec(spec_path)
    assert (spec.id.name, spec.id.dtype) == ("customer_id", "string")
    assert (spec.time.name, spec.time.dtype) == ("batch", "string")
    assert (spec.negative_label, spec.positive_label) == ("no", "yes")
    income = spec.feature("income")
    assert income.dtype == "float" and income.nullable and not income.categorical
    assert income.min is not None and income.max is not None
    mortgage = spec.feature("has_mortgage")
    assert mortgage.categorical and mortgage.allowed == ["false", "true"]
    assert spec.feature("purpose").allowed == ["car", "education", "home", "travel"]
    assert spec.slices == ["purpose"]

    landing = tmp_path / "landing"
    result = simulate(
        spec,
        credit,
        landing,
        batches_per_period=6,
        label_lag=1,
        faults={"batch-03": ["unseen_categories"], "batch-04": ["nulls"]},
    )
    assert result.batches == [f"batch-{i:02d}" for i in range(1, 7)]
    assert sum(result.rows.values()) == 1200
    root = str(state / "tables")
    for path in result.files:
        ingest_file(path, spec, root, max_reject_rate=0.05)
    validated = read_table(table_uri(root, VALIDATED))
    assert validated["customer_id"].dtype == pl.String
    joined = validated.join(credit_table(), on="customer_id", suffix="_source")
    assert joined.height == validated.height
    assert joined["has_mortgage"].equals(
        joined["has_mortgage_source"].cast(pl.String), check_names=False
    )
    assert validated["income"].null_count() > 0  # nulls allowed where the spec says so
    log = read_table(log_uri(root, "records"), schema=LOG_SCHEMA).sort("batch_id")
    rejected = dict(zip(log["batch_id"], log["rejected"], strict=True))
    assert rejected["batch-01"] == 0 and rejected["batch-03"] > 0 and rejected["batch-04"] > 0
    assert accepted_batches(root) == result.batches
    assert accepted_batches(root, "labels") == result.batches
    labels = read_table(table_uri(root, "labels"))
    assert set(labels["defaulted"]) == {"no", "yes"} and labels.height == 1200


def test_cli_round_trip_with_own_spec(
    state: Path, credit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    spec_path = tmp_path / "credit.spec.yaml"
    args = ["dataset", "infer", str(credit), "--target", "defaulted", "--id", "customer_id"]
    assert runner.invoke(app, [*args, "--out", str(spec_path)]).exit_code == 0
    monkeypatch.setenv("SCORELOOP_SPEC_PATH", str(spec_path))
    no_source = runner.invoke(app, ["simulate"])
    assert no_source.exit_code == 2 and "--source is required" in no_source.output
    landed = runner.invoke(
        app, ["simulate", "--source", str(credit), "--fault", "batch-02:empty_file"]
    )
    assert landed.exit_code == 0, landed.output
    batches = load_params(Path("/nonexistent")).simulate.batches_per_period
    assert len(list((state / "landing").glob("batch_*"))) == batches
    ingested = runner.invoke(app, ["ingest", str(state / "landing")])
    assert ingested.exit_code == 1  # one file could not be read
    root = str(state / "tables")
    log = read_table(log_uri(root, "records"), schema=LOG_SCHEMA)
    failed = log.filter(pl.col("status") == "failed")
    assert failed["batch_id"].to_list() == ["batch-02"]
    assert "file is empty (0 bytes)" in failed["error"][0]
    assert "batch-02" not in accepted_batches(root)
    assert len(accepted_batches(root)) == batches - 1
    with pytest.raises(BatchReadError):
        ingest_file(
            state / "landing" / "batch_batch-02.parquet",
            load_spec(spec_path),
            root,
            max_reject_rate=0.05,
        )
