"""The promotion steps' typed results, on a hand-built judged run in a real deployment repo.

No training here: a tiny CatBoost bundle is committed as the challenger with a synthetic
evaluation, and the gate's decision is recorded as :func:`pipelines.promote.judge` records it.
What is checked is what :func:`promote` does with that recorded decision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.retraining import save_toy_bundle

from pipelines.deployment_repo import (
    EVALUATION_DIR,
    MODEL_PATH,
    RUN_FILE,
    commit,
    dvc_add,
    init,
    last_commit_of,
    push,
    write_json,
)
from pipelines.gate import GateDecision, GateParams, decide
from pipelines.promote import (
    Promotion,
    PromotionError,
    Registration,
    _RecordedGate,
    promote,
    recorded_decision,
)
from pipelines.registry import champion_version, decisions
from pipelines.settings import Settings

GATE = GateParams(absolute_floor=0.75)


def _evaluation(auc: float) -> dict[str, Any]:
    overall = {"roc_auc": auc, "rows": 400}
    challenger = {"version": "v0.0.1", "overall": overall, "slices": {}}
    return {"holdout_rows": 400, "models": {"challenger": challenger}}


def _judged_run(settings: Settings, auc: float) -> tuple[Path, GateDecision]:
    """Commit a challenger (DVC-tracked, pushed) with its evaluation and record the gate on it."""
    repo = init(settings)
    save_toy_bundle(repo / MODEL_PATH, settings.model_name, iterations=3, version="v0.0.1")
    dvc_add(repo, MODEL_PATH)
    evaluation = _evaluation(auc)
    (repo / EVALUATION_DIR).mkdir()
    write_json(repo, f"{EVALUATION_DIR}/evaluation.json", evaluation)
    write_json(repo, RUN_FILE, {"name": settings.model_name, "version": "v0.0.1"})
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    commit(repo, "judged challenger")
    push(repo)
    decision = decide(evaluation, GATE)
    _RecordedGate("v0.0.1", last_commit_of(repo, "dvc.lock"), decision, None).save(repo)
    return repo, decision


def test_a_passed_judgement_is_concluded_once_into_a_typed_promotion(settings: Settings) -> None:
    repo, decision = _judged_run(settings, auc=0.9)
    assert recorded_decision(settings) == decision

    promotion = promote(settings)
    assert isinstance(promotion, Promotion)
    assert promotion.registration == Registration("v0.0.1", last_commit_of(repo, "dvc.lock"))
    assert promotion.promoted and promotion.champion is not None
    assert promotion.champion.version == "v0.0.1" == promotion.version
    assert promotion.decision == decision and not promotion.manual
    assert promotion.decision_file.name.endswith("-promote.json")
    assert "## Gate decision: promote" in promotion.card
    assert champion_version(settings) == ("v0.0.1", promotion.registration.commit)

    # Promoting the same judgement again returns its conclusion: no second decision logged.
    again = promote(settings)
    assert again.decision_file == promotion.decision_file
    assert again.champion is not None and again.champion.version == "v0.0.1"
    assert [d["action"] for d in decisions(settings)] == ["promote"]


def test_a_refused_judgement_is_registered_and_logged_but_never_promoted(
    settings: Settings,
) -> None:
    _judged_run(settings, auc=0.6)
    promotion = promote(settings)
    assert not promotion.promoted and promotion.champion is None
    assert promotion.version == "v0.0.1"
    assert promotion.decision_file.name.endswith("-gate.json")
    assert champion_version(settings) is None
    logged = decisions(settings)
    assert len(logged) == 1 and logged[0]["decision"] == "reject"
    assert logged[0]["reasons"] == ["challenger roc_auc 0.6000 is below the floor 0.7500"]


def test_promote_refuses_a_decision_that_did_not_judge_the_current_run(
    settings: Settings,
) -> None:
    init(settings)
    with pytest.raises(PromotionError, match="no gate decision is recorded"):
        promote(settings)
    repo, _ = _judged_run(settings, auc=0.9)
    # A retrained challenger (a new dvc.lock commit) was not judged: its decision is missing.
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {retrained: {}}\n")
    commit(repo, "retrained challenger")
    with pytest.raises(PromotionError, match="run `scoreloop evaluate`"):
        recorded_decision(settings)
    with pytest.raises(PromotionError, match="no gate decision is recorded"):
        promote(settings)
    assert decisions(settings) == [] and champion_version(settings) is None
