"""Evaluation: metrics, calibration, slices, DVC metrics/plots files and PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.evaluate import (
    EvaluationError,
    ScoredModel,
    calibration,
    evaluate_models,
    score_metrics,
    write_evaluation,
)
from pipelines.model_bundle import ModelMetadata
from pipelines.model_card import render_card
from pipelines.spec import DatasetSpec
from pipelines.train import TrainingParams, fit_catboost, train_challenger
from pipelines.training_set import split_frame


def test_score_metrics_on_known_numbers() -> None:
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.6, 0.4, 0.9])
    m = score_metrics(labels, scores, threshold=0.5)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (1, 1, 1, 1)
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)
    assert m["precision"] == 0.5 and m["recall"] == 0.5
    one_class = score_metrics(np.array([1, 1]), np.array([0.2, 0.9]), 0.5)
    assert one_class["roc_auc"] is None and one_class["pr_auc"] is None


def test_calibration_bins_count_every_row() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=1000)
    labels = (rng.uniform(size=1000) < scores).astype(int)
    curve = calibration(labels, scores)
    assert sum(p["count"] for p in curve) == 1000
    assert all(abs(p["mean_predicted"] - p["fraction_positive"]) < 0.12 for p in curve)


def test_evaluation_writes_metrics_plots_and_pngs(
    training_frame: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    params = TrainingParams(iterations=50, depth=4)
    trained = train_challenger(
        training_frame, spec, params, name="employment", data_version="d", version="v1"
    )
    baseline = fit_catboost(
        split_frame(training_frame, "train"), None, spec, params, depth=2, iterations=10
    )
    holdout = split_frame(training_frame, "holdout")
    evaluation = evaluate_models(
        holdout,
        spec,
        [
            ScoredModel("challenger", trained.model, trained.metadata.threshold, "v1"),
            ScoredModel("baseline", baseline, trained.metadata.threshold),
        ],
    )
    assert evaluation["holdout_rows"] == holdout.height == 1000
    challenger = evaluation["models"]["challenger"]
    assert challenger["overall"]["roc_auc"] > evaluation["models"]["baseline"]["overall"]["roc_auc"]
    assert set(challenger["slices"]) == set(spec.slices)
    assert sum(s["rows"] for s in challenger["slices"]["SEX"].values()) == holdout.height
    paths = write_evaluation(evaluation, tmp_path / "evaluation")
    metrics = json.loads(paths["metrics"].read_text())
    assert set(metrics) == {"challenger", "baseline"}
    assert set(metrics["challenger"]) >= {"roc_auc", "pr_auc", "log_loss", "brier"}
    roc = pl.read_csv(tmp_path / "evaluation" / "plots" / "roc.csv")
    assert roc.columns == ["model", "fpr", "tpr"] and roc["tpr"].max() == 1.0
    for name in ("roc_png", "calibration_png", "slices_png"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Same evaluation, same PNG bytes (so DVC hashes are stable).
    again = write_evaluation(evaluation, tmp_path / "again")
    assert again["roc_png"].read_bytes() == paths["roc_png"].read_bytes()
    card = render_card(
        ModelMetadata.model_validate(trained.metadata.model_dump()),
        evaluation=evaluation,
        decision={"decision": "promote", "reasons": ["no champion yet: nothing to beat"]},
    )
    assert "## Holdout evaluation (1000 rows" in card and "## Gate decision: promote" in card


def test_model_that_cannot_score_is_a_clear_error(
    training_frame: pl.DataFrame, spec: DatasetSpec
) -> None:
    params = TrainingParams(iterations=5, depth=2)
    trained = train_challenger(training_frame, spec, params, name="e", data_version="d")
    spec.features = [f for f in spec.features if f.name != "AGEP"]
    with pytest.raises(EvaluationError, match="challenger model"):
        evaluate_models(
            split_frame(training_frame, "holdout"),
            spec,
            [ScoredModel("challenger", trained.model, 0.5, "v1")],
        )
