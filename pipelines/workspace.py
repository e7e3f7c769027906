"""The deployment repo: a git repository with DVC and GTO where the training chain runs.

Layout (``settings.registry``)::

    .dvc/              DVC project; default remote = settings.remote (a local dir or s3://...)
    artifacts.yaml     GTO's artifact list: <model_name> -> model/ (GTO reads this file)
    dvc.yaml           copied from the project: training_set -> train -> evaluate
    params.yaml        copied from settings.params_path before every run (the knobs DVC tracks)
    spec.yaml          copied from settings.spec_path (the dataset spec, a stage dependency)
    selection.json     which batches (and Delta table versions) the training set is built from
    run.json           the challenger's version-to-be and the champion it is compared with
    data/              training_set.parquet (DVC output)
    model/             the challenger model dir (DVC output; a registered version's model)
    evaluation/        metrics.json, plots (DVC outputs)
    decisions/         one JSON per gate / promotion / rollback decision (git)

Every run ends with a commit, ``dvc push``, and for a trained model a GTO version tag.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from pipelines.errors import ScoreloopError
from pipelines.evaluate import PLOT_FILES, ScoredModel, evaluate_models, write_evaluation
from pipelines.gate import GateDecision, GateParams, decide
from pipelines.gate import force as force_decision
from pipelines.model_bundle import CARD_FILE, load_bundle, save_bundle
from pipelines.model_card import render_card
from pipelines.params import Params, load_params
from pipelines.registry import (
    MODEL_PATH,
    _no_analytics,
    assign_champion,
    champion_version,
    fetch_version,
    git,
    is_registry,
    list_versions,
    next_version,
    record_decision,
    register_version,
    version_commit,
    workspace_lock,
)
from pipelines.settings import PROJECT_ROOT, Settings
from pipelines.spec import DatasetSpec, load_spec
from pipelines.train import TrainingParams, fit_catboost, train_challenger
from pipelines.training_set import (
    Selection,
    SplitParams,
    build_training_set,
    read_training_set,
    select_batches,
    split_frame,
    summary,
    write_training_set,
)

PROJECT_DVC_YAML = PROJECT_ROOT / "dvc.yaml"
SELECTION_FILE = "selection.json"
RUN_FILE = "run.json"
TRAINING_SET = "data/training_set.parquet"
EVALUATION_DIR = "evaluation"
GIT_USER = ("scoreloop", "scoreloop@localhost")


class WorkspaceError(ScoreloopError, RuntimeError):
    """The deployment repo cannot be set up or a stage failed."""


def dvc_env(settings: Settings | None = None) -> dict[str, str]:
    """Environment for DVC stage commands: no analytics, this interpreter's scripts on PATH.

    DVC runs stage commands with whatever is on PATH (STACK trap 5); the ``scoreloop`` entry
    point installed next to this Python is the one that must run. The settings in use (which may
    carry overrides from a Dagster resource) are passed on as ``SCORELOOP_*`` variables, so a
    stage command reads the same tables and registry as its caller.
    """
    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    if settings is not None:
        env.update(settings_env(settings))
    bindir = str(Path(sys.executable).parent)
    parts = env.get("PATH", "").split(os.pathsep)
    if bindir not in parts:
        env["PATH"] = os.pathsep.join([bindir, *parts])
    return env


def settings_env(settings: Settings) -> dict[str, str]:
    """``SCORELOOP_*`` variables that rebuild ``settings`` in a child process."""
    return {
        "SCORELOOP_STATE_ROOT": str(settings.state_root),
        "SCORELOOP_TABLE_ROOT": settings.tables,
        "SCORELOOP_DVC_REMOTE": settings.remote,
        "SCORELOOP_REGISTRY_REPO": str(settings.registry),
        "SCORELOOP_SPEC_PATH": str(settings.spec_path),
        "SCORELOOP_PARAMS_PATH": str(settings.params_path),
        "SCORELOOP_MODEL_NAME": settings.model_name,
    }


def init_workspace(settings: Settings) -> Path:
    """Create the deployment repo if needed (idempotent) and return its path."""
    repo = settings.registry
    if is_registry(repo):
        _configure_git(repo)
        return repo
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        git(repo, "init", "-q", "-b", "main")
    _configure_git(repo)
    _dvc(repo, "init", "-q")
    remote = settings.remote
    if "://" not in remote:
        Path(remote).mkdir(parents=True, exist_ok=True)
    # Written directly (same result as `dvc remote add -d storage URL`, one CLI start-up less).
    (repo / ".dvc" / "config").write_text(
        f"[core]\n    remote = storage\n['remote \"storage\"']\n    url = {remote}\n"
    )
    (repo / "artifacts.yaml").write_text(
        yaml.safe_dump(
            {
                settings.model_name: {
                    "type": "model",
                    "path": MODEL_PATH,
                    "description": "CatBoost binary classifier trained by scoreloop",
                }
            },
            sort_keys=False,
        )
    )
    (repo / ".gitignore").write_text("__pycache__/\n")
    (repo / "decisions").mkdir(exist_ok=True)
    (repo / "decisions" / ".gitkeep").write_text("")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Initialise scoreloop deployment repo")
    return repo


def _configure_git(repo: Path) -> None:
    # Local config so commits and GTO tags never depend on a global git identity.
    if not git(repo, "config", "--local", "user.name", check=False):
        git(repo, "config", "--local", "user.name", GIT_USER[0])
    if not git(repo, "config", "--local", "user.email", check=False):
        git(repo, "config", "--local", "user.email", GIT_USER[1])
    git(repo, "config", "--local", "commit.gpgsign", "false")
    git(repo, "config", "--local", "tag.gpgsign", "false")


def _dvc(repo: Path, *args: str, settings: Settings | None = None) -> str:
    import subprocess

    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=dvc_env(settings),
        check=False,
    )
    if proc.returncode != 0:
        raise WorkspaceError(
            f"dvc {' '.join(args)} failed in {repo}:\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
        )
    return proc.stdout


def sync_inputs(settings: Settings) -> Path:
    """Copy the project's dvc.yaml, params.yaml and the dataset spec into the deployment repo."""
    repo = init_workspace(settings)
    if not PROJECT_DVC_YAML.exists():
        raise WorkspaceError(f"the project's dvc.yaml is missing: {PROJECT_DVC_YAML}")
    shutil.copyfile(PROJECT_DVC_YAML, repo / "dvc.yaml")
    if not Path(settings.params_path).exists():
        raise WorkspaceError(f"params file not found: {settings.params_path}")
    shutil.copyfile(settings.params_path, repo / "params.yaml")
    shutil.copyfile(settings.spec_path, repo / "spec.yaml")
    return repo


def write_json(repo: Path, name: str, payload: dict[str, Any]) -> Path:
    path = repo / name
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def read_json(repo: Path, name: str) -> dict[str, Any]:
    path = repo / name
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise WorkspaceError(f"{path} is missing: build the training set first") from exc
    if not isinstance(data, dict):
        raise WorkspaceError(f"{path} is not a JSON object")
    return data


def repro(repo: Path, stage: str, settings: Settings, *, force: bool = False) -> str:
    """Run one dvc.yaml stage (and its upstream stages when they changed) in the repo."""
    args = ["repro", "--force", "--single-item", stage] if force else ["repro", stage]
    return _dvc(repo, *args, settings=settings)


def commit(repo: Path, message: str, paths: list[str] | None = None) -> str | None:
    """Commit the given paths (default: everything tracked by git); return the new HEAD or None."""
    git(repo, "add", "-A", *(["--", *paths] if paths else []))
    if not git(repo, "status", "--porcelain", check=False):
        return None
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def push(repo: Path) -> None:
    """Send the DVC outputs of the current commit to the remote.

    Through DVC's Python API: a DVC CLI start-up costs 1-3 s on a loaded machine.
    """
    from dvc.repo import Repo

    try:
        with _no_analytics(), Repo(str(repo)) as dvc_repo:
            dvc_repo.push()
    except Exception as exc:
        raise WorkspaceError(f"dvc push failed in {repo}: {type(exc).__name__}: {exc}") from exc


def dvc_add(repo: Path, path: str) -> None:
    """Track ``path`` with DVC (``dvc add``), through the Python API."""
    from dvc.repo import Repo

    with _no_analytics(), Repo(str(repo)) as dvc_repo:
        dvc_repo.add(str(repo / path))


def lock_hash(repo: Path, stage: str, path: str) -> str:
    """The md5 DVC recorded in dvc.lock for an output of a stage (the Dagster data version)."""
    lock_path = repo / "dvc.lock"
    try:
        lock = yaml.safe_load(lock_path.read_text()) or {}
    except FileNotFoundError as exc:
        raise WorkspaceError(f"{lock_path} is missing: run the {stage} stage first") from exc
    for out in lock.get("stages", {}).get(stage, {}).get("outs", []):
        if out.get("path") == path:
            return str(out["md5"])
    raise WorkspaceError(f"dvc.lock in {repo} has no output {path} for stage {stage}")


def status_clean(repo: Path) -> bool:
    """True when ``dvc status`` reports every stage up to date."""
    from dvc.repo import Repo

    with _no_analytics(), Repo(str(repo)) as dvc_repo:
        return not dvc_repo.status()


# --- DVC stage bodies (run by `scoreloop stage ...` inside the deployment repo) -----------------

CHAMPION_FILE = "champion.json"
SPEC_FILE = "spec.yaml"
PARAMS_FILE = "params.yaml"


def _repo_params(repo: Path) -> Params:
    return load_params(repo / PARAMS_FILE)


def _repo_spec(repo: Path) -> DatasetSpec:
    return load_spec(repo / SPEC_FILE)


def file_md5(path: Path) -> str:
    """md5 of a file's bytes (what DVC records for a file output)."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


# --- Steps: what Dagster assets and `scoreloop train` call -------------------------------------


def _record(repo: Path, settings: Settings, stage: str, message: str) -> None:
    repro(repo, stage, settings)
    commit(repo, message)
    push(repo)


def _step_training_set(settings: Settings) -> dict[str, Any]:
    """Select batches, rebuild the training set through DVC, commit and push it."""
    repo = sync_inputs(settings)
    split = SplitParams.from_params(load_params(repo / PARAMS_FILE))
    selection = select_batches(settings.tables, split)
    selection.save(repo / SELECTION_FILE)
    _record(
        repo,
        settings,
        "training_set",
        f"training set: batches {selection.batches[0]}..{selection.batches[-1]}",
    )
    frame = pl.read_parquet(repo / TRAINING_SET)
    return {
        "data_version": lock_hash(repo, "training_set", TRAINING_SET),
        "selection": selection.to_json(),
        "splits": summary(frame),
        "rows": frame.height,
        "path": str(repo / TRAINING_SET),
    }


def _step_train(settings: Settings) -> dict[str, Any]:
    """Train the challenger through DVC (version-to-be in run.json), commit and push it."""
    repo = sync_inputs(settings)
    run = {"name": settings.model_name, "version": next_version(settings)}
    current = _read_optional(repo, RUN_FILE)
    if current.get("name") == run["name"] and not _registered(settings, current.get("version")):
        run = {"name": run["name"], "version": current["version"]}
    write_json(repo, RUN_FILE, run)
    _record(repo, settings, "train", f"challenger {run['name']} {run['version']}")
    metadata = load_bundle(repo / MODEL_PATH).metadata
    return {
        "data_version": lock_hash(repo, "train", MODEL_PATH),
        "version": metadata.version,
        "model_dir": str(repo / MODEL_PATH),
        "metadata": metadata,
        "card": (repo / MODEL_PATH / CARD_FILE).read_text(),
    }


def _read_optional(repo: Path, name: str) -> dict[str, Any]:
    try:
        return read_json(repo, name)
    except WorkspaceError:
        return {}


def _registered(settings: Settings, version: object) -> bool:
    return isinstance(version, str) and any(v.version == version for v in list_versions(settings))


def _step_evaluate(settings: Settings) -> dict[str, Any]:
    """Evaluate challenger vs the current champion through DVC, commit and push."""
    repo = sync_inputs(settings)
    found = champion_version(settings)
    write_json(
        repo,
        CHAMPION_FILE,
        {"version": found[0], "commit": found[1]} if found else {"version": None, "commit": None},
    )
    _record(repo, settings, "evaluate", "evaluation")
    evaluation = json.loads((repo / EVALUATION_DIR / "evaluation.json").read_text())
    return {
        "data_version": file_md5(repo / EVALUATION_DIR / "metrics.json"),
        "evaluation": evaluation,
        "plots": {name: repo / EVALUATION_DIR / "plots" / name for name in PLOT_FILES},
    }


def current_decision(settings: Settings) -> GateDecision:
    """The gate's verdict on the evaluation in the deployment repo (pure: nothing recorded)."""
    repo = settings.registry
    path = repo / EVALUATION_DIR / "evaluation.json"
    if not path.exists():
        raise WorkspaceError(f"no evaluation in {repo}: run `scoreloop evaluate` first")
    gate = GateParams.from_params(load_params(settings.params_path))
    return decide(json.loads(path.read_text()), gate)


def _step_promote(settings: Settings) -> dict[str, Any]:
    """Register the evaluated challenger, record the gate decision, promote it if it passed."""
    repo = settings.registry
    decision = current_decision(settings)
    run = read_json(repo, RUN_FILE)
    evaluated = git(repo, "log", "-1", "--format=%H", "--", "dvc.lock")
    version = register_version(settings, evaluated, version=str(run["version"]))
    record = {"action": "gate", "version": version, "commit": evaluated, **decision.to_dict()}
    champion = None
    if decision.promote:
        champion = assign_champion(settings, version, message="; ".join(decision.reasons)[:500])
        record["action"] = "promote"
    path = record_decision(settings, record)
    return {
        "version": version,
        "decision": record,
        "decision_file": str(path),
        "champion": champion,
        "card": render_card(
            load_bundle(repo / MODEL_PATH).metadata,
            evaluation=json.loads((repo / EVALUATION_DIR / "evaluation.json").read_text()),
            decision=record,
        ),
    }


def _train_all(settings: Settings) -> dict[str, Any]:
    """The whole chain: training set -> challenger -> evaluation -> gate (-> promotion)."""
    training_set = _step_training_set(settings)
    challenger = _step_train(settings)
    evaluation = _step_evaluate(settings)
    promotion = _step_promote(settings)
    return {
        "training_set": training_set,
        "challenger": challenger,
        "evaluation": evaluation,
        "promotion": promotion,
    }


def _promote_version(
    settings: Settings, version: str, *, force: bool = False, reason: str = ""
) -> dict[str, Any]:
    """Promote a registered version by hand, through the gate unless forced (with a reason).

    The version is re-evaluated against the current champion on its own holdout, so the gate
    judges it against today's champion, not the one it met when it was trained.
    """
    if force and not reason.strip():
        raise WorkspaceError("--force needs --reason TEXT (the reason is recorded)")
    repo = init_workspace(settings)
    commit_sha = version_commit(settings, version)
    model_dir = fetch_version(settings, version, commit=commit_sha)
    bundle = load_bundle(model_dir)
    spec = load_spec(settings.spec_path)
    models = [ScoredModel("challenger", bundle.model, bundle.metadata.threshold, version)]
    found = champion_version(settings)
    if found is not None and found[0] == version:
        raise WorkspaceError(f"{version} is already the champion")
    if found is not None:
        champion = load_bundle(fetch_version(settings, found[0], commit=found[1]))
        models.append(
            ScoredModel("champion", champion.model, champion.metadata.threshold, found[0])
        )
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "training_set.parquet"
        try:
            with _no_analytics():
                from dvc.repo import Repo

                Repo.get(str(repo), TRAINING_SET, out=str(data), rev=commit_sha)
        except Exception as exc:
            raise WorkspaceError(
                f"cannot fetch the training set of {version} (commit {commit_sha[:12]}): {exc}"
            ) from exc
        holdout = split_frame(read_training_set(data, spec), "holdout")
    evaluation = evaluate_models(holdout, spec, models)
    decision = decide(evaluation, GateParams.from_params(load_params(settings.params_path)))
    if not decision.promote and force:
        decision = force_decision(decision, reason)
    record = {
        "action": "promote" if decision.promote else "gate",
        "version": version,
        "commit": commit_sha,
        "manual": True,
        **decision.to_dict(),
    }
    champion_ref = None
    if decision.promote:
        champion_ref = assign_champion(settings, version, message="; ".join(decision.reasons)[:500])
    record_decision(settings, record)
    return {"decision": record, "champion": champion_ref}


def _locked(step: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def run(settings: Settings, *args: Any, **kwargs: Any) -> dict[str, Any]:
        with workspace_lock(settings):
            return step(settings, *args, **kwargs)

    run.__doc__ = step.__doc__
    run.__name__ = step.__name__.lstrip("_")
    return run


step_training_set = _locked(_step_training_set)
step_train = _locked(_step_train)
step_evaluate = _locked(_step_evaluate)
step_promote = _locked(_step_promote)
train_all = _locked(_train_all)
promote_version = _locked(_promote_version)
