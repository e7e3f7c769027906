"""Drift statistics from the reference profile equal scipy's on the raw rows (within 1e-9), the
default rule is Evidently's, and the dataset drifts when half the features do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats
from scipy.spatial import distance

from pipelines.drift import DRIFT_SHARE, compute_drift, distribution_view
from pipelines.drift_stats import (
    MAX_SUPPORT,
    Distribution,
    auto_method,
    chi2_pvalue,
    current_distribution,
    is_drifted,
    jensenshannon_distance,
    ks_pvalue,
    numeric_support,
    reference_distribution,
    wasserstein_norm,
)
from pipelines.monitoring import DATASET_FEATURE, MonitoringParams
from pipelines.plots import plot_distribution
from pipelines.spec import DatasetSpec
from pipelines.train import reference_profile
from pipelines.training_set import LABEL_COLUMN

RNG = np.random.default_rng(3)
#: Integer-valued like AGEP (exact support), and a continuous one (more than MAX_SUPPORT values).
REF_INT = RNG.integers(0, 95, 3000).astype(np.float64)
CUR_INT = RNG.integers(5, 99, 2500).astype(np.float64)
REF_CAT = RNG.choice(list("abcde"), 3000, p=[0.4, 0.3, 0.15, 0.1, 0.05])
CUR_CAT = RNG.choice(list("abcdef"), 2500, p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.05])


def _numeric(ref: np.ndarray, cur: np.ndarray) -> tuple[Distribution, Distribution]:
    entry = {"kind": "numeric", **numeric_support(ref)}
    return reference_distribution(entry, "x"), current_distribution(
        pl.Series("x", cur), numeric=True
    )


def _categorical(ref: np.ndarray, cur: np.ndarray) -> tuple[Distribution, Distribution]:
    values, counts = np.unique(ref, return_counts=True)
    entry = {
        "kind": "categorical",
        "counts": dict(zip(values.tolist(), counts.tolist(), strict=True)),
    }
    return reference_distribution(entry, "c"), current_distribution(
        pl.Series("c", cur), numeric=False
    )


def test_ks_equals_scipy_on_the_raw_rows() -> None:
    ref, cur = _numeric(REF_INT, CUR_INT)
    assert ks_pvalue(ref, cur) == pytest.approx(stats.ks_2samp(REF_INT, CUR_INT).pvalue, abs=1e-9)
    small_ref, small_cur = REF_INT[:400], REF_INT[400:700]  # exact mode of ks_2samp
    ref, cur = _numeric(small_ref, small_cur)
    expected = stats.ks_2samp(small_ref, small_cur).pvalue
    assert ks_pvalue(ref, cur) == pytest.approx(expected, abs=1e-9)


def test_wasserstein_is_evidentlys_normalised_distance() -> None:
    ref, cur = _numeric(REF_INT, CUR_INT)
    expected = stats.wasserstein_distance(REF_INT, CUR_INT) / max(np.std(REF_INT), 0.001)
    assert wasserstein_norm(ref, cur) == pytest.approx(expected, abs=1e-9)


def test_chi2_is_scipys_goodness_of_fit_to_the_reference_shares() -> None:
    ref_cat, cur_cat = REF_CAT, RNG.choice(list("abcde"), 2500)
    ref, cur = _categorical(ref_cat, cur_cat)
    keys = sorted(set(ref_cat))
    observed = np.array([(cur_cat == k).sum() for k in keys], dtype=float)
    expected = np.array([(ref_cat == k).sum() for k in keys]) * len(cur_cat) / len(ref_cat)
    want = stats.chisquare(observed, expected).pvalue
    assert chi2_pvalue(ref, cur) == pytest.approx(want, abs=1e-9)
    # A category the reference never saw: expected 0, the batch drifted (p = 0), as in Evidently.
    ref, cur = _categorical(REF_CAT, CUR_CAT)
    assert chi2_pvalue(ref, cur) == 0.0


def test_jensenshannon_categorical_and_binned_numeric() -> None:
    ref, cur = _categorical(REF_CAT, CUR_CAT)
    keys = sorted(set(REF_CAT) | set(CUR_CAT))
    p = np.array([np.mean(np.equal(REF_CAT, k)) for k in keys])
    q = np.array([np.mean(np.equal(CUR_CAT, k)) for k in keys])
    got = jensenshannon_distance(ref, cur, numeric=False)
    assert got == pytest.approx(distance.jensenshannon(p, q), abs=1e-9)
    # Numeric with many values: 30 equal-width bins over both samples (Evidently's binning).
    ref, cur = _numeric(REF_INT, CUR_INT)
    edges = np.histogram_bin_edges(np.concatenate([REF_INT, CUR_INT]), bins=30)
    p = np.histogram(REF_INT, edges)[0] / REF_INT.size
    q = np.histogram(CUR_INT, edges)[0] / CUR_INT.size
    got = jensenshannon_distance(ref, cur, numeric=True)
    assert got == pytest.approx(distance.jensenshannon(p, q), abs=1e-9)


def test_a_continuous_feature_is_summarised_by_quantiles() -> None:
    values = RNG.normal(size=MAX_SUPPORT * 3)
    entry = numeric_support(values)
    assert len(entry["support"]) == MAX_SUPPORT and not entry["support_exact"]
    ref, cur = _numeric(values, RNG.normal(size=4000))
    exact = stats.wasserstein_distance(values, cur.sample()) / np.std(values)
    assert wasserstein_norm(ref, cur) == pytest.approx(exact, abs=2e-3)


def test_default_rule_is_evidentlys() -> None:
    big_num = _numeric(REF_INT, CUR_INT)
    small_num = _numeric(REF_INT[:1000], CUR_INT)
    few_values = _numeric(RNG.integers(0, 3, 3000).astype(float), RNG.integers(0, 3, 50))
    big_cat = _categorical(REF_CAT, CUR_CAT)
    small_cat = _categorical(REF_CAT[:1000], CUR_CAT)
    assert auto_method(*big_num, numeric=True) == "wasserstein"
    assert auto_method(*small_num, numeric=True) == "ks"
    assert auto_method(*few_values, numeric=True) == "jensenshannon"
    assert auto_method(*big_cat, numeric=False) == "jensenshannon"
    assert auto_method(*small_cat, numeric=False) == "chi2"
    assert is_drifted("ks", 0.01, 0.05) and not is_drifted("ks", 0.05, 0.05)
    assert is_drifted("wasserstein", 0.1, 0.1) and not is_drifted("jensenshannon", 0.09, 0.1)


def _profile(frame: pl.DataFrame, spec: DatasetSpec) -> dict[str, object]:
    return reference_profile(frame.with_columns(pl.lit(0).alias(LABEL_COLUMN)), spec, 10)


def test_dataset_drift_when_half_the_features_drift(acs: pl.DataFrame, spec: DatasetSpec) -> None:
    reference = acs.filter(pl.col("year") == 2015).head(20_000)
    batch = acs.filter(pl.col("year") == 2015).slice(20_000, 5_000)
    profile = _profile(reference, spec)
    params = MonitoringParams()

    def share(frame: pl.DataFrame) -> tuple[float, bool]:
        row = frame.filter(pl.col("feature") == DATASET_FEATURE)
        assert row["metric"].to_list() == [DRIFT_SHARE]
        return float(row["value"][0]), bool(row["drifted"][0])

    same = compute_drift(batch, profile, spec, params, batch_id="b", model_version="v")
    assert share(same) == (0.0, False)
    names = spec.feature_names
    half = names[: (len(names) + 1) // 2]
    # Shuffle each chosen column independently of the row order, then replace it by a constant:
    # the strongest possible shift of exactly these features.
    shifted = batch.with_columns(
        [
            pl.lit(batch[n].drop_nulls().max()).cast(batch.schema[n]).alias(n)
            if n != "AGEP"
            else pl.col(n) + 40
            for n in half
        ]
    )
    frame = compute_drift(shifted, profile, spec, params, batch_id="b", model_version="v")
    value, drifted = share(frame)
    assert value == pytest.approx(len(half) / len(names)) and drifted
    statistic_rows = frame.filter(pl.col("metric").is_in(["wasserstein", "jensenshannon"]))
    assert set(statistic_rows.filter(pl.col("drifted"))["feature"].to_list()) == set(half)
    # Per-feature choice: the configured method replaces the default for that feature.
    chosen = MonitoringParams(drift_methods={"AGEP": "ks", "SCHL": "chi2"})
    frame = compute_drift(batch, profile, spec, chosen, batch_id="b", model_version="v")
    methods = dict(
        frame.filter(pl.col("feature").is_in(["AGEP", "SCHL"]) & (pl.col("metric") != "psi"))
        .filter(pl.col("metric") != "unseen_share")
        .select("feature", "metric")
        .iter_rows()
    )
    assert methods == {"AGEP": "ks", "SCHL": "chi2"}


def test_distribution_view_of_a_shifted_feature(
    acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    reference = acs.head(5_000)
    profile = _profile(reference, spec)["features"]
    shifted = acs.slice(5_000, 2_000).with_columns(pl.col("AGEP") + 40)
    features = shifted.select(pl.col("AGEP").cast(pl.Float64), pl.col("SCHL").cast(pl.String))
    view = distribution_view("AGEP", features["AGEP"], profile["AGEP"])  # type: ignore[index]
    assert sum(view.reference) == pytest.approx(1.0, abs=1e-5)
    assert sum(view.current) == pytest.approx(1.0)
    assert view.current[-2] > 0.4  # most of the shifted ages fall in the top training bin
    cat = distribution_view("SCHL", features["SCHL"], profile["SCHL"])  # type: ignore[index]
    assert cat.labels[-1] == "other / unseen" and sum(cat.current) == pytest.approx(1.0)
    png = plot_distribution(view, tmp_path / "agep.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
