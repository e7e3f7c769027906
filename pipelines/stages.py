"""The DVC stage bodies: what ``scoreloop stage training-set|train|evaluate`` run.

``dvc.yaml`` calls them inside the deployment repo; each reads only the repo's files (params,
spec, selection, run and champion files, upstream outputs) and writes its declared outputs.
:data:`STAGE_CODE` names the modules each body calls: their source is copied into the repo as
the stage's code dependency (see :func:`pipelines.deployment_repo.sync_inputs`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pipelines.deployment_repo import (
    CHAMPION_FILE,
    EVALUATION_DIR,
    MODEL_PATH,
    PARAMS_FILE,
    RUN_FILE,
    SELECTION_FILE,
    SPEC_FILE,
    TRAINING_SET,
    file_md5,
    read_json,
)
from pipelines.evaluate import ScoredModel, evaluate_models, write_evaluation
from pipelines.model_bundle import CARD_FILE, load_bundle, save_bundle
from pipelines.model_card import render_card
from pipelines.params import Params, load_params
from pipelines.registry import fetch_version
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec, load_spec
from pipelines.train import TrainingParams, fit_catboost, train_challenger
from pipelines.training_set import (
    Selection,
    SplitParams,
    build_training_set,
    read_training_set,
    split_frame,
    write_training_set,
)

#: Per dvc.yaml stage, the modules its body calls; their source files and every project module
#: those import are the stage's ``code/<stage>`` dependency, with this module's own file.
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "training_set": ("pipelines.training_set",),
    "train": ("pipelines.train", "pipelines.model_bundle", "pipelines.model_card"),
    "evaluate": ("pipelines.evaluate", "pipelines.train", "pipelines.model_bundle"),
}
#: This module: part of every stage's code, but its imports are not followed (it imports the
#: code of all three stages, and a change to training code must not dirty the training set).
STAGE_BODIES = __name__


def _repo_params(repo: Path) -> Params:
    return load_params(repo / PARAMS_FILE)


def _repo_spec(repo: Path) -> DatasetSpec:
    return load_spec(repo / SPEC_FILE)


def stage_training_set(repo: Path, settings: Settings) -> Path:
    """Build data/training_set.parquet from selection.json at the pinned table versions."""
    selection = Selection.load(repo / SELECTION_FILE)
    split = SplitParams.from_params(_repo_params(repo))
    frame = build_training_set(selection, _repo_spec(repo), settings.tables, split)
    return write_training_set(frame, repo / TRAINING_SET)


def stage_train(repo: Path, settings: Settings) -> Path:
    """Train the challenger on data/training_set.parquet into model/ (bundle + card.md)."""
    del settings
    spec = _repo_spec(repo)
    run = read_json(repo, RUN_FILE)
    params = TrainingParams.from_params(_repo_params(repo))
    data_path = repo / TRAINING_SET
    frame = read_training_set(data_path, spec)
    trained = train_challenger(
        frame,
        spec,
        params,
        name=str(run["name"]),
        data_version=file_md5(data_path),
        version=run.get("version"),
    )
    out = repo / MODEL_PATH
    if out.exists():
        shutil.rmtree(out)
    save_bundle(trained.model, trained.metadata, out)
    (out / CARD_FILE).write_text(render_card(trained.metadata))
    return out


def stage_evaluate(repo: Path, settings: Settings) -> dict[str, Any]:
    """Challenger vs champion vs baseline on the holdout; writes evaluation/."""
    spec = _repo_spec(repo)
    params = TrainingParams.from_params(_repo_params(repo))
    frame = read_training_set(repo / TRAINING_SET, spec)
    holdout = split_frame(frame, "holdout")
    challenger = load_bundle(repo / MODEL_PATH)
    models = [
        ScoredModel(
            "challenger",
            challenger.model,
            challenger.metadata.threshold,
            challenger.metadata.version,
        )
    ]
    champion = read_json(repo, CHAMPION_FILE)
    if champion.get("version"):
        local = settings.model_copy(update={"registry_repo": repo})
        champion_dir = fetch_version(local, str(champion["version"]), commit=champion["commit"])
        bundle = load_bundle(champion_dir)
        models.append(
            ScoredModel(
                "champion", bundle.model, bundle.metadata.threshold, bundle.metadata.version
            )
        )
    baseline = fit_catboost(
        split_frame(frame, "train"),
        None,
        spec,
        params,
        depth=params.baseline_depth,
        iterations=params.baseline_iterations,
    )
    models.append(ScoredModel("baseline", baseline, challenger.metadata.threshold, None))
    evaluation = evaluate_models(holdout, spec, models)
    write_evaluation(evaluation, repo / EVALUATION_DIR)
    return evaluation
