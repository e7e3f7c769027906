"""The promotion gate: pure decisions on synthetic evaluations, and on real trained models."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from pipelines.evaluate import ScoredModel, evaluate_models
from pipelines.gate import GateDecision, GateParams, decide, force
from pipelines.spec import DatasetSpec
from pipelines.train import TrainingParams, fit_catboost, train_challenger
from pipelines.training_set import split_frame

GATE = GateParams(
    primary_metric="roc_auc",
    min_delta=0.005,
    absolute_floor=0.75,
    slice_tolerance=0.02,
    slice_min_rows=100,
)


def _model(auc: float, slices: dict[str, float] | None = None, rows: int = 500) -> dict[str, Any]:
    return {
        "version": None,
        "overall": {"roc_auc": auc, "rows": 2000},
        "slices": {
            "SEX": {
                value: {"roc_auc": slice_auc, "rows": rows}
                for value, slice_auc in (slices or {"1": auc, "2": auc}).items()
            }
        },
    }


def _evaluation(challenger: dict[str, Any], champion: dict[str, Any] | None) -> dict[str, Any]:
    models = {"challenger": challenger}
    if champion is not None:
        models["champion"] = champion
    return {"models": models}


def test_no_champion_promotes_when_floor_met() -> None:
    decision = decide(_evaluation(_model(0.80), None), GATE)
    assert decision.promote
    assert any("no champion" in r for r in decision.reasons)


def test_floor_applies_even_without_champion() -> None:
    decision = decide(_evaluation(_model(0.70), None), GATE)
    assert not decision.promote
    assert decision.reasons == ["challenger roc_auc 0.7000 is below the floor 0.7500"]


def test_improvement_must_reach_min_delta() -> None:
    refused = decide(_evaluation(_model(0.852), _model(0.850)), GATE)
    assert not refused.promote
    assert any("< min_delta" in r for r in refused.reasons)
    accepted = decide(_evaluation(_model(0.860), _model(0.850)), GATE)
    assert accepted.promote
    assert accepted.to_dict()["decision"] == "promote"
    assert accepted.champion_value == 0.85 and accepted.challenger_value == 0.86


def test_slice_regression_beyond_tolerance_refuses() -> None:
    challenger = _model(0.88, {"1": 0.90, "2": 0.80})
    champion = _model(0.85, {"1": 0.85, "2": 0.85})
    decision = decide(_evaluation(challenger, champion), GATE)
    assert not decision.promote
    assert any("worst slice SEX=2" in r and "beyond" in r for r in decision.reasons)


def test_small_slices_are_not_judged() -> None:
    challenger = _model(0.88, {"1": 0.90, "2": 0.60}, rows=50)
    decision = decide(_evaluation(challenger, _model(0.85)), GATE)
    assert decision.promote


def test_loss_metrics_are_lower_is_better() -> None:
    gate = GATE.model_copy(update={"primary_metric": "log_loss", "absolute_floor": 0.6})
    better = {"overall": {"log_loss": 0.40}, "slices": {}}
    worse = {"overall": {"log_loss": 0.45}, "slices": {}}
    assert decide(_evaluation(better, worse), gate).promote
    assert not decide(_evaluation(worse, better), gate).promote


def test_force_needs_a_reason_and_is_recorded() -> None:
    decision = decide(_evaluation(_model(0.70), None), GATE)
    with pytest.raises(ValueError, match="needs a reason"):
        force(decision, " ")
    forced = force(decision, "hotfix approved by risk team")
    assert forced.promote and forced.forced
    assert forced.to_dict()["reasons"][0] == "forced: hotfix approved by risk team"


def test_gate_refuses_shuffled_labels_and_accepts_a_better_model(
    training_frame: pl.DataFrame, spec: DatasetSpec
) -> None:
    params = TrainingParams(iterations=60, depth=4)
    champion = train_challenger(training_frame, spec, params, name="e", data_version="x")
    rng = np.random.default_rng(0)
    shuffled = training_frame.with_columns(
        pl.Series("label", rng.permutation(training_frame["label"].to_numpy()))
    )
    shuffled = pl.concat(
        [
            shuffled.filter(pl.col("split") != "holdout"),
            training_frame.filter(pl.col("split") == "holdout"),
        ]
    )
    noise = train_challenger(shuffled, spec, params, name="e", data_version="y")
    holdout = split_frame(training_frame, "holdout")
    evaluation = evaluate_models(
        holdout,
        spec,
        [
            ScoredModel("challenger", noise.model, noise.metadata.threshold, "v2"),
            ScoredModel("champion", champion.model, champion.metadata.threshold, "v1"),
        ],
    )
    refused = decide(evaluation, GateParams(slice_min_rows=100))
    assert not refused.promote
    assert refused.challenger_value is not None and refused.challenger_value < 0.65
    # A weak champion (depth 1, 3 iterations) is beaten by the real model.
    weak = fit_catboost(
        split_frame(training_frame, "train"), None, spec, params, depth=1, iterations=3
    )
    evaluation = evaluate_models(
        holdout,
        spec,
        [
            ScoredModel("challenger", champion.model, champion.metadata.threshold, "v3"),
            ScoredModel("champion", weak, 0.5, "v1"),
        ],
    )
    accepted = decide(evaluation, GateParams(slice_min_rows=100, slice_tolerance=0.05))
    assert accepted.promote, accepted.reasons
    assert accepted.challenger_value is not None and accepted.champion_value is not None
    assert accepted.challenger_value > accepted.champion_value


def test_a_decision_round_trips_through_its_record() -> None:
    challenger = _model(0.88, {"1": 0.90, "2": 0.80})
    decision = decide(_evaluation(challenger, _model(0.85)), GATE)
    assert GateDecision.from_dict(decision.to_dict()) == decision
    forced = force(decide(_evaluation(_model(0.70), None), GATE), "ticket 42")
    restored = GateDecision.from_dict(forced.to_dict())
    assert restored == forced and restored.reasons[0] == "forced: ticket 42"
