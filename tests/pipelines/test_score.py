"""The one scorer: which probability is the score, decision, reasons, and the bundle checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from catboost import CatBoostClassifier
from support.scoring import bundle_metadata

from pipelines.features import FeatureMismatchError, prepare_features
from pipelines.model_bundle import ClassMapping, load_bundle, save_bundle
from pipelines.score import (
    ScoringError,
    check_bundle,
    class_mapping,
    positive_probability,
    score_frame,
)
from pipelines.spec import DatasetSpec

ROWS = 600


def _fit(features: pl.DataFrame, labels: np.ndarray, spec: DatasetSpec) -> CatBoostClassifier:
    model = CatBoostClassifier(
        iterations=20, depth=3, thread_count=2, random_seed=0, verbose=0, allow_writing_files=False
    )
    model.fit(features, labels, cat_features=spec.categorical_names)
    return model


@pytest.fixture
def rows(acs: pl.DataFrame) -> pl.DataFrame:
    return acs.slice(0, ROWS)


def _bundle(
    rows: pl.DataFrame,
    spec: DatasetSpec,
    directory: Path,
    labels: np.ndarray,
    classes: ClassMapping,
) -> Path:
    model = _fit(prepare_features(rows, spec), labels, spec)
    save_bundle(model, bundle_metadata(spec, version="v1", classes=classes), directory)
    return directory


def test_the_score_is_the_recorded_positive_class_whatever_the_target_values(
    rows: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    # A target whose positive label is 0: training encodes label = (target == 0) as class 1.
    # Looking the spec's label up among the model's classes would pick class 0: the other class.
    spec = spec.model_copy(update={"positive_label": 0, "negative_label": 1})
    labels = (rows[spec.target.name].cast(pl.Int64) == 0).cast(pl.Int8).to_numpy()
    directory = _bundle(rows, spec, tmp_path / "m", labels, class_mapping(spec))
    bundle = load_bundle(directory)
    assert bundle.metadata.classes.positive_label == 0
    scored = score_frame(bundle, rows, spec, top_k=2, thread_count=2)
    expected = bundle.model.predict_proba(prepare_features(rows, spec), thread_count=2)[:, 1]
    np.testing.assert_allclose(scored["score"].to_numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        positive_probability(bundle.model, rows, spec, classes=bundle.metadata.classes), expected
    )
    assert scored.columns[:3] == ["entity_id", "score", "decision"]
    assert (scored["decision"] == (scored["score"] >= bundle.metadata.threshold)).all()
    assert scored["reasons"].list.len().to_list() == [2] * ROWS
    assert set(scored["model_version"]) == {"v1"}
    # Positive contributions push towards the positive class: a higher raw score.
    raw = bundle.model.predict(prepare_features(rows, spec), prediction_type="RawFormulaVal")
    top = scored.with_columns(
        pl.col("reasons").list.eval(pl.element().struct.field("contribution")).list.sum()
    )["reasons"]
    assert np.corrcoef(top.to_numpy(), raw)[0, 1] > 0.5


@pytest.mark.parametrize(("positive", "negative"), [("yes", "no"), (True, False)])
def test_string_and_boolean_targets_score_through_the_recorded_mapping(
    rows: pl.DataFrame, spec: DatasetSpec, tmp_path: Path, positive: object, negative: object
) -> None:
    spec = spec.model_copy(update={"positive_label": positive, "negative_label": negative})
    labels = rows[spec.target.name].cast(pl.Int8).to_numpy()
    bundle = load_bundle(_bundle(rows, spec, tmp_path / "m", labels, class_mapping(spec)))
    assert type(bundle.metadata.classes.positive_label) is type(positive)
    check_bundle(bundle, spec)
    scored = score_frame(bundle, rows, spec, thread_count=2)
    expected = bundle.model.predict_proba(prepare_features(rows, spec), thread_count=2)[:, 1]
    np.testing.assert_allclose(scored["score"].to_numpy(), expected, rtol=0, atol=1e-12)


def test_a_model_of_another_positive_label_or_target_is_refused(
    rows: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    labels = rows[spec.target.name].cast(pl.Int8).to_numpy()
    bundle = load_bundle(_bundle(rows, spec, tmp_path / "m", labels, class_mapping(spec)))
    check_bundle(bundle, spec)
    flipped = spec.model_copy(update={"positive_label": 0, "negative_label": 1})
    with pytest.raises(ScoringError, match=r"positive label 1, spec .* says 0"):
        check_bundle(bundle, flipped)
    # True == 1 in Python, but a boolean target is not an integer one.
    with pytest.raises(ScoringError, match="positive label"):
        check_bundle(bundle, spec.model_copy(update={"positive_label": True}))
    other = spec.model_copy(update={"target": spec.target.model_copy(update={"name": "x"})})
    with pytest.raises(ScoringError, match="target 'employed'"):
        check_bundle(bundle, other)
    narrow = spec.model_copy(update={"features": spec.features[:-1]})
    with pytest.raises(FeatureMismatchError):
        check_bundle(bundle, narrow)


def test_a_model_without_the_recorded_positive_class_is_a_clear_error(
    rows: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    # Fitted on the raw labels "no"/"yes" (not through training's 0/1 encoding).
    labels = np.where(rows[spec.target.name].cast(pl.Boolean).to_numpy(), "yes", "no")
    bundle = load_bundle(_bundle(rows, spec, tmp_path / "m", labels, ClassMapping()))
    with pytest.raises(ScoringError, match=r"classes \['no', 'yes'\].*class 1"):
        score_frame(bundle, rows, spec)
