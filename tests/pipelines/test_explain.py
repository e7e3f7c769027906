"""Reason codes from CatBoost's own SHAP values, checked against the model's raw predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.scoring import train_bundle

from pipelines.explain import REASONS_DTYPE, reason_codes, shap_values
from pipelines.features import prepare_features
from pipelines.model_bundle import ModelBundle, load_bundle
from pipelines.spec import DatasetSpec


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, acs: pl.DataFrame) -> ModelBundle:
    from pipelines.settings import BUNDLED_SPEC
    from pipelines.spec import load_spec

    ref = train_bundle(
        acs, load_spec(BUNDLED_SPEC), tmp_path_factory.mktemp("model"), version="v0.0.1"
    )
    return load_bundle(Path(ref.model_dir))


def test_contributions_plus_expected_value_equal_raw_prediction(
    bundle: ModelBundle, acs: pl.DataFrame, spec: DatasetSpec
) -> None:
    features = prepare_features(acs.slice(10_000, 800), spec)
    explanation = shap_values(bundle.model, features, spec.categorical_names, thread_count=2)
    raw = bundle.model.predict(features, prediction_type="RawFormulaVal", thread_count=2)
    assert explanation.contributions.shape == (800, len(spec.feature_names))
    np.testing.assert_allclose(explanation.raw_prediction, raw, rtol=0, atol=1e-9)
    # The expected value is a property of the model, not of the rows explained.
    other = shap_values(bundle.model, features.head(3), spec.categorical_names, thread_count=2)
    assert other.expected_value == pytest.approx(explanation.expected_value, abs=1e-12)


def test_reasons_are_top_k_by_absolute_contribution_with_row_values(
    bundle: ModelBundle, acs: pl.DataFrame, spec: DatasetSpec
) -> None:
    features = prepare_features(acs.slice(20_000, 300), spec)
    contributions = shap_values(bundle.model, features, spec.categorical_names).contributions
    reasons = reason_codes(features, contributions, top_k=3)
    assert reasons.dtype == REASONS_DTYPE
    assert reasons.len() == 300
    names = features.columns
    for row in (0, 17, 299):
        got = reasons[row].to_list()
        assert len(got) == 3
        expected_order = np.argsort(-np.abs(contributions[row]), kind="stable")[:3]
        assert [r["feature"] for r in got] == [names[i] for i in expected_order]
        for reason, index in zip(got, expected_order, strict=True):
            assert reason["contribution"] == contributions[row, index]
            value = features[row, names[index]]
            if spec.feature(names[index]).categorical:
                assert reason["value"] == value
            else:
                assert reason["value"] == str(float(value))
        magnitudes = [abs(r["contribution"]) for r in got]
        assert magnitudes == sorted(magnitudes, reverse=True)


def test_reason_codes_small_frame_ties_and_k_above_width() -> None:
    features = pl.DataFrame({"a": ["x", None], "b": [1.5, 2.0], "c": ["p", "q"]})
    contributions = np.array([[0.1, -0.3, 0.3], [0.0, 0.0, 0.0]])
    reasons = reason_codes(features, contributions, top_k=5).to_list()
    # |b| == |c| on row 0: the tie keeps feature order; k is capped at the number of features.
    assert [(r["feature"], r["value"]) for r in reasons[0]] == [
        ("b", "1.5"),
        ("c", "p"),
        ("a", "x"),
    ]
    assert [r["contribution"] for r in reasons[0]] == [-0.3, 0.3, 0.1]
    assert [r["feature"] for r in reasons[1]] == ["a", "b", "c"]
    assert reasons[1][0]["value"] == "__missing__"
    with pytest.raises(ValueError, match="top_k"):
        reason_codes(features, contributions, top_k=0)
    with pytest.raises(ValueError, match="do not fit"):
        reason_codes(features, contributions[:, :2], top_k=1)
    empty = reason_codes(features.head(0), contributions[:0], top_k=2)
    assert empty.len() == 0 and empty.dtype == REASONS_DTYPE
