"""Challenger training: determinism, threshold policy, metadata, reference profile, model card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.model_bundle import load_bundle, save_bundle
from pipelines.model_card import render_card
from pipelines.score import positive_probability
from pipelines.spec import DatasetSpec
from pipelines.train import (
    TrainingError,
    TrainingParams,
    choose_threshold,
    reference_profile,
    train_challenger,
)
from pipelines.training_set import split_frame

PARAMS = TrainingParams(iterations=60, depth=4, early_stopping_rounds=20)


def _train(frame: pl.DataFrame, spec: DatasetSpec, params: TrainingParams = PARAMS):
    return train_challenger(
        frame, spec, params, name="employment", data_version="abc", version="v0.0.9"
    )


def test_two_trainings_on_the_same_data_predict_identically(
    training_frame: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    holdout = split_frame(training_frame, "holdout")
    first, second = _train(training_frame, spec), _train(training_frame, spec)
    a = positive_probability(first.model, holdout, spec)
    b = positive_probability(second.model, holdout, spec)
    assert np.array_equal(a, b)
    # The model file itself is byte-identical (no random GUID, no finish time in it).
    first.model.save_model(str(tmp_path / "a.cbm"))
    second.model.save_model(str(tmp_path / "b.cbm"))
    assert (tmp_path / "a.cbm").read_bytes() == (tmp_path / "b.cbm").read_bytes()


def test_thread_count_does_not_change_predictions(
    training_frame: pl.DataFrame, spec: DatasetSpec
) -> None:
    holdout = split_frame(training_frame, "holdout")
    one = _train(training_frame, spec, PARAMS.model_copy(update={"thread_count": 1}))
    two = _train(training_frame, spec, PARAMS.model_copy(update={"thread_count": 2}))
    assert np.array_equal(
        positive_probability(one.model, holdout, spec),
        positive_probability(two.model, holdout, spec),
    )


def test_metadata_and_bundle_round_trip(
    training_frame: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    trained = _train(training_frame, spec)
    meta = trained.metadata
    assert meta.features == spec.feature_names
    assert meta.categorical == spec.categorical_names
    assert meta.version == "v0.0.9" and meta.data_version == "abc"
    assert meta.threshold_policy == "max_f1" and 0 < meta.threshold < 1
    assert meta.params["random_seed"] == 42 and meta.params["best_iteration"] >= 0
    assert meta.metrics["validation_roc_auc"] > 0.8
    assert (meta.model_extra or {})["training_set"]["train"]["rows"] == 2500
    # The entity id is never a feature.
    assert spec.id.name not in list(trained.model.feature_names_)
    bundle = load_bundle(save_bundle(trained.model, meta, tmp_path / "model"))
    holdout = split_frame(training_frame, "holdout")
    assert np.array_equal(
        positive_probability(bundle.model, holdout, spec),
        positive_probability(trained.model, holdout, spec),
    )
    card = render_card(meta)
    assert "# Model card: employment v0.0.9" in card and "max_f1" in card


def test_reference_profile_describes_training_rows(
    training_frame: pl.DataFrame, spec: DatasetSpec
) -> None:
    profile = reference_profile(split_frame(training_frame, "train"), spec, bins=10)
    age = profile["features"]["AGEP"]
    assert age["kind"] == "numeric"
    assert sum(age["bin_shares"]) == pytest.approx(1.0, abs=1e-4)
    assert age["bin_edges"] == sorted(age["bin_edges"])
    sex = profile["features"]["SEX"]
    assert sex["kind"] == "categorical" and set(sex["frequencies"]) == {"1", "2"}
    assert sum(sex["frequencies"].values()) == pytest.approx(1.0, abs=1e-4)
    assert 0 < profile["positive_rate"] < 1


def test_threshold_policies() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.35, 0.4, 0.8, 0.9])
    assert choose_threshold(labels, scores, "max_f1", 0.5) == pytest.approx(0.4)
    assert choose_threshold(labels, scores, "fixed", 0.3) == 0.3


def test_fixed_threshold_policy_is_recorded(
    training_frame: pl.DataFrame, spec: DatasetSpec
) -> None:
    params = PARAMS.model_copy(update={"threshold_policy": "fixed", "threshold": 0.3})
    assert _train(training_frame, spec, params).metadata.threshold == 0.3


def test_training_without_validation_rows_is_refused(
    training_frame: pl.DataFrame, spec: DatasetSpec
) -> None:
    only_train = training_frame.filter(pl.col("split") == "train")
    with pytest.raises(TrainingError, match="validation rows"):
        _train(only_train, spec)


def test_unknown_training_param_is_refused() -> None:
    with pytest.raises(ValueError, match="iteratons"):
        TrainingParams.model_validate({"iteratons": 5})
