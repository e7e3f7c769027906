"""LIME on numpy: the ridge fit is sklearn's Ridge, the weights recover a known local model, the
explanation is deterministic for a seed, and the SHAP/LIME agreement figures are what they say."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats
from sklearn.linear_model import Ridge

from pipelines.lime import LimeError, agreement, explain_lime, ridge

PROFILE = {
    "features": {
        "x": {
            "kind": "numeric",
            "bin_edges": [0.0, 10.0, 20.0, 30.0, 40.0],
            "bin_shares": [0.25, 0.25, 0.25, 0.25],
            "null_share": 0.0,
        },
        "c": {"kind": "categorical", "frequencies": {"a": 0.5, "b": 0.3, "z": 0.2}},
        "noise": {"kind": "categorical", "frequencies": {"u": 0.5, "v": 0.5}},
    }
}
ROW = pl.DataFrame({"x": [15.0], "c": ["a"], "noise": ["u"]})


def _model(frame: pl.DataFrame) -> np.ndarray:
    """A model whose probability depends on x's bin [10, 20) (+0.3) and c == a (+0.2) only."""
    in_bin = ((frame["x"] >= 10) & (frame["x"] < 20)).to_numpy()
    is_a = (frame["c"] == "a").to_numpy()
    return 0.2 + 0.3 * in_bin + 0.2 * is_a


def test_ridge_is_sklearns_weighted_ridge() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, (500, 4)).astype(float)
    y = x @ np.array([0.5, -0.2, 0.0, 0.1]) + rng.normal(0, 0.05, 500)
    w = rng.random(500)
    beta, intercept = ridge(x, y, w, alpha=1.0)
    reference = Ridge(alpha=1.0, fit_intercept=True).fit(x, y, sample_weight=w)
    np.testing.assert_allclose(beta, reference.coef_, atol=1e-9)
    assert intercept == pytest.approx(reference.intercept_, abs=1e-9)


def test_lime_recovers_a_known_local_model_and_is_deterministic() -> None:
    explanation = explain_lime(ROW, PROFILE, _model, seed=3)
    weights = dict(zip(explanation.features, explanation.weights, strict=True))
    assert weights["x"] == pytest.approx(0.3, abs=0.01)
    assert weights["c"] == pytest.approx(0.2, abs=0.01)
    assert abs(weights["noise"]) < 0.01
    assert [name for name, _ in explanation.top(2)] == ["x", "c"]
    assert explanation.model_prediction == pytest.approx(0.7)
    assert explanation.local_prediction == pytest.approx(0.7, abs=0.01)
    assert explanation.score > 0.99
    again = explain_lime(ROW, PROFILE, _model, seed=3)
    np.testing.assert_array_equal(again.weights, explanation.weights)
    other = explain_lime(ROW, PROFILE, _model, seed=4)
    assert not np.array_equal(other.weights, explanation.weights)


def test_lime_needs_the_profile_of_every_feature() -> None:
    with pytest.raises(LimeError, match="no entry for feature"):
        explain_lime(ROW.with_columns(pl.lit(1.0).alias("new")), PROFILE, _model)
    with pytest.raises(LimeError, match="one row"):
        explain_lime(pl.concat([ROW, ROW]), PROFILE, _model)


def test_agreement_is_top_k_overlap_and_spearman() -> None:
    rng = np.random.default_rng(2)
    shap = rng.normal(size=(20, 6))
    same = agreement(shap, shap * 2, top_k=3)
    assert (same.top_k_overlap, same.rank_correlation) == (1.0, pytest.approx(1.0))
    lime = rng.normal(size=(20, 6))
    got = agreement(shap, lime, top_k=3)
    expected = np.mean(
        [stats.spearmanr(np.abs(a), np.abs(b)).statistic for a, b in zip(shap, lime, strict=True)]
    )
    assert got.rank_correlation == pytest.approx(expected, abs=1e-12)
    overlap = np.mean(
        [
            len(set(np.argsort(-np.abs(a))[:3]) & set(np.argsort(-np.abs(b))[:3])) / 3
            for a, b in zip(shap, lime, strict=True)
        ]
    )
    assert got.top_k_overlap == pytest.approx(overlap)
