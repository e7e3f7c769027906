"""The training chain as DVC reproduces it, in a throwaway deployment repo.

One real ``train_all`` (what ``scoreloop train`` runs) registers and promotes v0.0.1. Then: each
stage lists its code, so changing a training source file makes ``dvc status`` report exactly the
stages that run it; and a clean clone of the deployment repo at the champion's tag, after
``dvc pull``, rebuilds training set, model and metrics with ``dvc repro`` and gets the
registered model's predictions back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from support.retraining import build_tables, small_params

from pipelines.deployment_repo import (
    CODE_DIR,
    TRAINING_SET,
    dvc_env,
    file_md5,
    lock_hash,
    status,
    status_clean,
    sync_inputs,
)
from pipelines.model_bundle import MODEL_FILE, load_bundle
from pipelines.promote import RetrainingRun, train_all
from pipelines.registry import resolve_champion, version_commit
from pipelines.score import positive_probability
from pipelines.settings import BUNDLED_SPEC, PROJECT_ROOT, Settings, get_settings
from pipelines.spec import load_spec
from pipelines.stages import STAGE_BODIES, STAGE_CODE
from pipelines.training_set import split_frame

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def trained(
    acs: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, RetrainingRun]]:
    """Settings of a fresh state root and the first ``train_all`` run in it (promoted)."""
    tmp = tmp_path_factory.mktemp("repro")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("SCORELOOP_"):
                patch.delenv(name)
        patch.setenv("SCORELOOP_STATE_ROOT", str(tmp / "state"))
        tables = build_tables(acs, load_spec(BUNDLED_SPEC), tmp / "data", rows_per_year=2000)
        patch.setenv("SCORELOOP_TABLE_ROOT", tables)
        patch.setenv("SCORELOOP_PARAMS_PATH", str(small_params(tmp / "params.yaml")))
        settings = get_settings()
        yield settings, train_all(settings)


def _run(*args: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_train_all_promotes_and_leaves_the_repo_clean(
    trained: tuple[Settings, RetrainingRun],
) -> None:
    settings, run = trained
    assert run.promotion.promoted and run.promotion.version == "v0.0.1"
    assert run.judgement.refusal is None and run.judgement.decision.promote
    assert run.training_set.data_version == lock_hash(
        settings.registry, "training_set", TRAINING_SET
    )
    assert status_clean(settings.registry)


def _project_copy(root: Path) -> Path:
    """The files sync copies from a project: dvc.yaml and the pipelines package."""
    shutil.copyfile(PROJECT_ROOT / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(PROJECT_ROOT / "pipelines", root / "pipelines")
    return root


def test_changing_training_code_makes_dvc_status_dirty(
    trained: tuple[Settings, RetrainingRun], tmp_path: Path
) -> None:
    settings, _ = trained
    repo = settings.registry
    project = _project_copy(tmp_path)

    def changed_after_sync() -> dict[str, str]:
        sync_inputs(settings, STAGE_CODE, leaves=(STAGE_BODIES,), source_root=project)
        return {stage: repr(change) for stage, change in status(repo).items()}

    try:
        with (project / "pipelines" / "train.py").open("a") as handle:
            handle.write("\n# a change to the training code\n")
        changed = changed_after_sync()
        # train runs pipelines/train.py, and so does evaluate (its baseline); training_set not.
        assert set(changed) == {"train", "evaluate"}
        assert f"{CODE_DIR}/train" in changed["train"]
        with (project / "pipelines" / "training_set.py").open("a") as handle:
            handle.write("\n# a change to the training-set code\n")
        assert set(changed_after_sync()) == {"training_set", "train", "evaluate"}
    finally:
        sync_inputs(settings, STAGE_CODE, leaves=(STAGE_BODIES,))
    assert status_clean(repo)


def test_clean_clone_reproduces_the_registered_model(
    trained: tuple[Settings, RetrainingRun], tmp_path: Path
) -> None:
    settings, _ = trained
    champion = resolve_champion(settings)
    assert champion is not None and champion.version == "v0.0.1"
    env = dvc_env(settings)
    clone = tmp_path / "clone"
    commit = version_commit(settings, "v0.0.1")
    _run("git", "clone", "-q", str(settings.registry), str(clone), cwd=tmp_path, env=env)
    _run("git", "checkout", "-q", commit, cwd=clone, env=env)
    _run(str(BIN / "dvc"), "pull", "-q", cwd=clone, env=env)
    registered_metrics = (clone / "evaluation" / "metrics.json").read_text()
    registered_model = file_md5(clone / "model" / MODEL_FILE)
    _run(str(BIN / "dvc"), "repro", "--force", cwd=clone, env=env)
    assert (clone / "evaluation" / "metrics.json").read_text() == registered_metrics
    assert file_md5(clone / "model" / MODEL_FILE) == registered_model
    assert lock_hash(clone, "training_set", TRAINING_SET) == file_md5(clone / TRAINING_SET)
    assert json.loads(registered_metrics)["challenger"]["roc_auc"] > 0.8
    spec = load_spec(BUNDLED_SPEC)
    holdout = split_frame(pl.read_parquet(clone / TRAINING_SET), "holdout")
    rebuilt = positive_probability(load_bundle(clone / "model").model, holdout, spec)
    served = positive_probability(load_bundle(champion.model_dir).model, holdout, spec)
    assert (rebuilt == served).all()
