"""Registry: GTO tags + DVC artifacts in a throwaway deployment repo (real git, DVC, GTO)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.retraining import save_toy_bundle
from typer.testing import CliRunner

from pipelines.deployment_repo import EVALUATION_DIR, cache_dir, commit, dvc_add, init, push
from pipelines.model_bundle import (
    HOLDOUT_FILE,
    MODEL_FILE,
    ModelLoadError,
    load_bundle,
    load_holdout,
)
from pipelines.promote import promote_version
from pipelines.registry import (
    RegistryError,
    assign_champion,
    champion_history,
    decisions,
    list_versions,
    register_version,
    resolve_champion,
    rollback,
)
from pipelines.settings import Settings
from scoreloop.cli import app

AddVersion = Callable[..., str]
GTO = str(Path(sys.executable).parent / "gto")


@pytest.fixture
def add_version(settings: Settings) -> AddVersion:
    """Commit a tiny CatBoost bundle as model/ (DVC-tracked), optionally push, and register it."""
    repo = init(settings)

    def add(
        iterations: int,
        *,
        pushed: bool = True,
        corrupt: bool = False,
        evaluation: str | None = None,
    ) -> str:
        save_toy_bundle(repo / "model", settings.model_name, iterations=iterations)
        if corrupt:
            (repo / "model" / MODEL_FILE).write_bytes(b"not a catboost model")
        if evaluation is not None:  # what the evaluate stage commits (git-tracked, not DVC)
            (repo / EVALUATION_DIR).mkdir(exist_ok=True)
            (repo / EVALUATION_DIR / "evaluation.json").write_text(evaluation)
        dvc_add(repo, "model")
        commit(repo, f"model with {iterations} iterations")
        if pushed:
            push(repo)
        return register_version(settings)

    return add


def _gto_prod(repo: Path) -> str:
    out = subprocess.run(
        [GTO, "show", "-r", str(repo), "--json"], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)["employment"]["stage"]["prod"]


def test_no_registry_means_no_champion(settings: Settings) -> None:
    assert resolve_champion(settings) is None
    init(settings)
    assert resolve_champion(settings) is None
    assert list_versions(settings) == []


def test_promote_then_rollback_restores_previous_champion(
    settings: Settings, add_version: AddVersion
) -> None:
    runner = CliRunner()
    with pytest.raises(RegistryError, match="no champion"):
        rollback(settings)
    v1 = add_version(3)
    with pytest.raises(RegistryError, match=r"'v9.9.9' of employment is not registered"):
        assign_champion(settings, "v9.9.9")
    assign_champion(settings, v1)
    with pytest.raises(RegistryError, match="only version ever promoted"):
        rollback(settings)
    v2 = add_version(5)
    assert (v1, v2) == ("v0.0.1", "v0.0.2")
    assign_champion(settings, v2)
    champion = resolve_champion(settings)
    assert champion is not None and champion.version == "v0.0.2"
    assert load_bundle(champion.model_dir).model.tree_count_ == 5
    assert _gto_prod(settings.registry) == "v0.0.2"
    listed = runner.invoke(app, ["model", "list"])
    assert listed.exit_code == 0, listed.output
    assert "v0.0.1" in listed.output and "prod (champion)" in listed.output

    restored = rollback(settings, reason="v0.0.2 misbehaves")
    assert restored.version == "v0.0.1"
    again = resolve_champion(settings)
    assert again is not None and again.version == "v0.0.1"
    assert load_bundle(again.model_dir).model.tree_count_ == 3
    assert _gto_prod(settings.registry) == "v0.0.1"
    assert [v.version for v in list_versions(settings) if v.is_champion] == ["v0.0.1"]
    assert [e for _, _, e in champion_history(settings)].count("assigned") == 3
    assert decisions(settings)[-1]["action"] == "rollback"
    assert decisions(settings)[-1]["reason"] == "v0.0.2 misbehaves"

    # Forcing needs a reason; the champion does not move.
    forced = runner.invoke(app, ["model", "promote", "v0.0.2", "--force"])
    assert forced.exit_code == 2 and "--reason" in forced.output
    # The CLI rollback flips back to the champion before the current one.
    back = runner.invoke(app, ["model", "rollback", "--reason", "undo"])
    assert back.exit_code == 0, back.output
    assert "champion is now employment v0.0.2" in back.output
    final = resolve_champion(settings)
    assert final is not None and final.version == "v0.0.2"


def test_champion_is_fetched_back_from_the_dvc_remote(
    settings: Settings, add_version: AddVersion
) -> None:
    assign_champion(settings, add_version(4))
    shutil.rmtree(cache_dir(settings))
    shutil.rmtree(settings.registry / ".dvc" / "cache")
    shutil.rmtree(settings.registry / "model")
    champion = resolve_champion(settings)
    assert champion is not None
    assert load_bundle(champion.model_dir).model.tree_count_ == 4


def _overall(auc: float, rows: int) -> dict[str, object]:
    return {"rows": rows, "positive_rate": 0.4, "roc_auc": auc, "pr_auc": auc - 0.1,
            "log_loss": 0.5, "brier": 0.17, "threshold": 0.5, "tp": 30, "fp": 10, "tn": 50,
            "fn": 10, "precision": 0.75, "recall": 0.75, "f1": 0.75}  # fmt: skip


EVALUATION = {
    "holdout_rows": 100,
    "models": {
        "challenger": {
            "version": "v0.0.1",
            "overall": _overall(0.83, 100),
            "calibration": [],
            "slices": {"SEX": {"1": _overall(0.81, 60), "2": _overall(0.85, 40)}},
        },
        "baseline": {"version": None, "overall": _overall(0.71, 100), "slices": {}},
    },
    "curves": {},
}


def test_a_fetched_version_carries_its_recorded_holdout_evaluation(
    settings: Settings, add_version: AddVersion
) -> None:
    v1 = add_version(3, evaluation=json.dumps(EVALUATION))
    assign_champion(settings, v1)
    champion = resolve_champion(settings)
    assert champion is not None
    holdout = load_holdout(champion.model_dir)
    assert holdout is not None
    assert (holdout.rows, holdout.metrics.roc_auc, holdout.metrics.f1) == (100, 0.83, 0.75)
    assert [(c.role, c.version, c.metrics.roc_auc) for c in holdout.compared_with] == [
        ("baseline", None, 0.71)
    ]
    assert holdout.slices["SEX"]["2"].rows == 40
    # a model cached before holdout.json existed gets it on the next fetch
    (champion.model_dir / HOLDOUT_FILE).unlink()
    again = resolve_champion(settings)
    assert again is not None and load_holdout(again.model_dir) == holdout

    # a version whose commit holds another version's evaluation (registered by hand after an
    # earlier run) has none; a corrupt one is refused
    v2 = add_version(4)
    assign_champion(settings, v2)
    second = resolve_champion(settings)
    assert second is not None and load_holdout(second.model_dir) is None
    v3 = add_version(5, evaluation='{"holdout_rows": 3}')
    with pytest.raises(RegistryError, match=r"evaluation.json at commit .* is corrupt"):
        assign_champion(settings, v3)
        resolve_champion(settings)


def test_tag_pointing_at_missing_artifacts_is_refused(
    settings: Settings, add_version: AddVersion
) -> None:
    assign_champion(settings, add_version(3))
    missing = add_version(6, pushed=False)
    shutil.rmtree(settings.registry / ".dvc" / "cache")
    with pytest.raises(RegistryError, match="missing from the DVC cache and the remote"):
        assign_champion(settings, missing)
    champion = resolve_champion(settings)
    assert champion is not None and champion.version == "v0.0.1"


def test_corrupted_model_file_is_never_promoted(
    settings: Settings, add_version: AddVersion
) -> None:
    assign_champion(settings, add_version(3))
    broken = add_version(4, corrupt=True)
    with pytest.raises(ModelLoadError, match="is corrupt"):
        promote_version(settings, broken)
    champion = resolve_champion(settings)
    assert champion is not None and champion.version == "v0.0.1"


def test_rollback_waits_for_a_training_step_holding_the_workspace_lock(
    settings: Settings, add_version: AddVersion, tmp_path: Path
) -> None:
    """Rollback takes the same lock as the training steps, so it never interleaves with one."""
    v1 = add_version(3)
    assign_champion(settings, v1)
    assign_champion(settings, add_version(5))
    lock = settings.registry.parent / f".{settings.registry.name}.lock"
    released = tmp_path / "released"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, pathlib, sys, time\n"
            f"handle = open({str(lock)!r}, 'w')\n"
            "fcntl.flock(handle, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n"
            "time.sleep(6)\n"  # long enough for an unlocked rollback to finish meanwhile
            f"pathlib.Path({str(released)!r}).write_text(repr(time.time()))\n"
            "fcntl.flock(handle, fcntl.LOCK_UN)\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(rollback, settings, reason="while training")
            assert holder.stdin is not None
            holder.stdin.write("go\n")
            holder.stdin.flush()
            restored = pending.result(timeout=120)
        # The rollback's decision was recorded only after the holder let go of the lock.
        released_at = datetime.fromtimestamp(float(released.read_text()), UTC)
        recorded_at = datetime.fromisoformat(decisions(settings)[-1]["recorded_at"])
        assert decisions(settings)[-1]["reason"] == "while training"
        assert recorded_at >= released_at
        assert restored.version == v1
    finally:
        holder.kill()
        holder.wait()
