"""Drift: PSI and unseen categories on real ACS rows, and the drift table written per batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.monitoring import TRAIN_ROWS, ingest_records, make_champion

from pipelines.drift import (
    DRIFT_SCHEMA,
    PSI,
    SCORE_PSI,
    UNSEEN_SHARE,
    compute_drift,
    drift_batch,
    numeric_psi,
    profile_frame,
    psi,
    psi_markdown,
    read_drift,
)
from pipelines.monitoring import MonitoringError, MonitoringParams
from pipelines.plots import plot_drift_history
from pipelines.scores_table import score_batch
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec
from pipelines.train import reference_profile
from pipelines.training_set import LABEL_COLUMN

PARAMS = MonitoringParams()


@pytest.fixture(scope="module")
def reference(acs: pl.DataFrame) -> pl.DataFrame:
    return acs.filter(pl.col("year") == 2015).head(30_000)


@pytest.fixture(scope="module")
def same(acs: pl.DataFrame) -> pl.DataFrame:
    """A batch from the same distribution (later 2015 rows, not in the reference)."""
    return acs.filter(pl.col("year") == 2015).slice(30_000, 5_800)


def _drift(batch: pl.DataFrame, profile: dict[str, object], spec: DatasetSpec) -> pl.DataFrame:
    return compute_drift(batch, profile, spec, PARAMS, batch_id="b", model_version="v0.0.1")


def _value(frame: pl.DataFrame, feature: str, metric: str = PSI) -> float:
    rows = frame.filter((pl.col("feature") == feature) & (pl.col("metric") == metric))
    assert rows.height == 1, (feature, metric)
    return float(rows["value"][0])


def test_psi_is_about_zero_for_the_same_distribution(
    reference: pl.DataFrame, same: pl.DataFrame, spec: DatasetSpec
) -> None:
    frame = _drift(same, profile_frame(reference, spec), spec)
    assert frame.schema == pl.Schema(DRIFT_SCHEMA)
    psis = frame.filter(pl.col("metric") == PSI)
    assert sorted(psis["feature"].to_list()) == sorted(spec.feature_names)
    assert psis["value"].max() < 0.02  # type: ignore[operator]
    assert not frame["drifted"].any()
    assert frame.filter(pl.col("metric") == UNSEEN_SHARE)["value"].max() == 0.0


def test_psi_is_large_for_a_shifted_age(
    reference: pl.DataFrame, same: pl.DataFrame, spec: DatasetSpec
) -> None:
    shifted = same.with_columns(pl.col("AGEP") + 30)
    frame = _drift(shifted, profile_frame(reference, spec), spec)
    assert _value(frame, "AGEP") > 1.0
    assert set(frame.filter(pl.col("drifted"))["feature"].to_list()) == {"AGEP"}
    assert _value(frame, "AGEP", "wasserstein") > 1.0  # Evidently's rule: > 1000 reference rows


def test_remapped_category_counts_as_unseen_and_drifts(
    reference: pl.DataFrame, same: pl.DataFrame, spec: DatasetSpec
) -> None:
    common = same["SCHL"].value_counts(sort=True)["SCHL"][0]
    remapped = same.with_columns(
        pl.when(pl.col("SCHL") == common).then(pl.lit("99")).otherwise(pl.col("SCHL")).alias("SCHL")
    )
    expected_share = float((same["SCHL"] == common).mean())  # type: ignore[arg-type]
    frame = _drift(remapped, profile_frame(reference, spec), spec)
    assert _value(frame, "SCHL", UNSEEN_SHARE) == pytest.approx(expected_share, abs=1e-6)
    assert _value(frame, "SCHL") > 1.0
    assert {"SCHL"} == set(frame.filter(pl.col("drifted"))["feature"].to_list())


def test_numeric_psi_counts_out_of_range_values_and_nulls() -> None:
    reference = {
        "bin_edges": [0.0, 10.0, 20.0],
        "bin_shares": [0.5, 0.5],
        "null_share": 0.0,
    }
    inside = pl.Series("x", [1.0, 15.0] * 50)
    assert numeric_psi(inside, reference) == pytest.approx(0.0, abs=1e-12)
    beyond = pl.Series("x", [-5.0, 25.0] * 50)  # outside the training range: the outer bins
    assert numeric_psi(beyond, reference) == pytest.approx(0.0, abs=1e-12)
    with_nulls = pl.Series("x", [1.0, None] * 50)
    expected = psi(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.0, 0.5]))
    assert numeric_psi(with_nulls, reference) == pytest.approx(expected)
    assert expected > 1.0


def test_profile_frame_is_the_training_profile(reference: pl.DataFrame, spec: DatasetSpec) -> None:
    ours = profile_frame(reference, spec)
    labelled = reference.with_columns(pl.col("employed").cast(pl.Int8).alias(LABEL_COLUMN))
    training = reference_profile(labelled, spec, 10)
    assert ours["features"] == training["features"]
    assert "positive_rate" not in ours


def test_drift_table_per_batch_with_score_drift(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    champion = make_champion(
        acs, spec, tmp_path / "model", train_batches=["2014-01"], holdout_batches=["2014-12"]
    )
    ingest_records(settings, acs, spec, "2014-12", start=TRAIN_ROWS, rows=800)
    ingest_records(settings, acs, spec, "2015-01", start=TRAIN_ROWS + 800, rows=800)
    for batch in ("2014-12", "2015-01"):
        score_batch(batch, settings=settings, champion=champion.ref)

    report = drift_batch("2015-01", settings=settings, champion=champion)
    assert report.rows == 800
    assert report.score_reference == "holdout batches 2014-12"
    table = read_drift(settings)
    # psi per feature, unseen share per categorical, one statistic per feature, score, dataset
    expected_rows = 2 * len(spec.features) + len(spec.categorical_names) + 2
    assert table.height == report.frame.height == expected_rows
    assert set(table["batch_id"].to_list()) == {"2015-01"}
    score = table.filter(pl.col("metric") == SCORE_PSI)
    assert score["feature"].to_list() == ["score"]
    assert score["value"][0] < 0.2  # same distribution as the holdout rows
    assert "| AGEP |" in psi_markdown(report.psi_table())

    # Re-running a batch replaces its rows; another batch adds its own.
    drift_batch("2015-01", settings=settings, champion=champion)
    drift_batch("2014-12", settings=settings, champion=champion)
    table = read_drift(settings)
    counts = table.group_by("batch_id").len().sort("batch_id")
    assert counts["len"].to_list() == [report.frame.height, report.frame.height]
    holdout_score = table.filter(
        (pl.col("batch_id") == "2014-12") & (pl.col("metric") == SCORE_PSI)
    )
    assert holdout_score["value"][0] == pytest.approx(0.0, abs=1e-9)
    png = plot_drift_history(
        table, tmp_path / "plots" / "drift.png", threshold=0.2, metrics=[PSI, SCORE_PSI]
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_drift_needs_an_accepted_batch_and_a_reference(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    champion = make_champion(acs, spec, tmp_path / "model", profile=False)
    ingest_records(settings, acs, spec, "2015-01", start=TRAIN_ROWS, rows=300)
    with pytest.raises(MonitoringError, match="not an accepted batch"):
        drift_batch("2099-01", settings=settings, champion=champion)
    with pytest.raises(MonitoringError, match="training batches"):
        drift_batch("2015-01", settings=settings, champion=champion)
    assert read_drift(settings).height == 0


def test_without_a_profile_the_reference_comes_from_the_training_batches(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    champion = make_champion(
        acs, spec, tmp_path / "model", train_batches=["2014-01"], profile=False
    )
    ingest_records(settings, acs, spec, "2014-01", start=0, rows=2000)
    ingest_records(settings, acs, spec, "2014-02", start=2000, rows=500)
    report = drift_batch("2014-02", settings=settings, champion=champion)
    assert report.score_reference is None  # no holdout batches scored: no score row
    assert set(report.frame["metric"].to_list()) == {
        PSI,
        UNSEEN_SHARE,
        "wasserstein",
        "jensenshannon",
        "drift_share",
    }
    assert not report.frame["drifted"].any()
