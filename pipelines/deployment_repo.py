"""The deployment repo's plumbing: git, DVC and the lock, for the repo the training chain runs in.

Layout (``settings.registry``)::

    .dvc/              DVC project; default remote = settings.remote (a local dir or s3://...)
    artifacts.yaml     GTO's artifact list: <model_name> -> model/ (GTO reads this file)
    dvc.yaml           copied from the project: training_set -> train -> evaluate
    params.yaml        copied from settings.params_path before every run (the knobs DVC tracks)
    spec.yaml          copied from settings.spec_path (the dataset spec, a stage dependency)
    code/<stage>/      the source modules each stage runs, copied from the project (stage deps)
    selection.json     which batches (and Delta table versions) the training set is built from
    run.json           the challenger's version-to-be and the champion it is compared with
    gate.json          the gate's decision on the current evaluation (run state, not committed)
    data/              training_set.parquet (DVC output)
    model/             the challenger model dir (DVC output; a registered version's model)
    evaluation/        metrics.json, plots (DVC outputs)
    decisions/         one JSON per gate / promotion / rollback decision (git)

Nothing here knows about model versions or the gate: :mod:`pipelines.registry` (GTO) and
:mod:`pipelines.promote` (the steps) build on these functions.
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Concatenate, ParamSpec, TypeVar

import yaml

from pipelines.errors import ScoreloopError
from pipelines.model_bundle import (
    HOLDOUT_FILE,
    METADATA_FILE,
    MODEL_FILE,
    ModelLoadError,
    holdout_evaluation,
    load_metadata,
)
from pipelines.settings import PROJECT_ROOT, Settings

PROJECT_DVC_YAML = PROJECT_ROOT / "dvc.yaml"
#: Where the model directory lives inside the deployment repo (one model per repo).
MODEL_PATH = "model"
DECISIONS_DIR = "decisions"
CODE_DIR = "code"
SELECTION_FILE = "selection.json"
RUN_FILE = "run.json"
CHAMPION_FILE = "champion.json"
GATE_FILE = "gate.json"
SPEC_FILE = "spec.yaml"
PARAMS_FILE = "params.yaml"
TRAINING_SET = "data/training_set.parquet"
EVALUATION_DIR = "evaluation"
#: The custom ``dvc plots`` templates (Vega-Lite), in the project and in the deployment repo.
PLOT_TEMPLATES = ".dvc/plots"
GIT_USER = ("scoreloop", "scoreloop@localhost")
#: Files of the deployment repo git never tracks: bytecode and the per-run gate decision (the
#: permanent record of a decision is its file in decisions/).
GITIGNORE = ("__pycache__/", f"/{GATE_FILE}")

P = ParamSpec("P")
R = TypeVar("R")


class DeploymentRepoError(ScoreloopError, RuntimeError):
    """The deployment repo cannot be set up, or a git/DVC command in it failed."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    return env


@contextmanager
def no_analytics() -> Iterator[None]:
    """``DVC_NO_ANALYTICS=1`` while DVC's Python API runs in this process."""
    previous = os.environ.get("DVC_NO_ANALYTICS")
    os.environ["DVC_NO_ANALYTICS"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DVC_NO_ANALYTICS", None)
        else:
            os.environ["DVC_NO_ANALYTICS"] = previous


def git(repo: Path, *args: str, check: bool = True) -> str:
    """Run git in ``repo`` and return stdout; errors carry git's own message."""
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    if check and proc.returncode != 0:
        raise DeploymentRepoError(
            f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout.strip()


def is_deployment_repo(repo: Path) -> bool:
    """True when ``repo`` is an initialised deployment repo (git + DVC)."""
    return (repo / ".git").exists() and (repo / ".dvc").is_dir()


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
        **{
            f"SCORELOOP_{name.upper()}": value
            for name, value in (
                ("object_store", settings.object_store),
                ("snapshot_store_uri", settings.snapshot_store_uri),
                ("s3_endpoint_url", settings.s3_endpoint_url),
                ("s3_region", settings.s3_region),
                ("dagster_pg_url", settings.dagster_pg_url),
            )
            if value
        },
        **(
            {"SCORELOOP_REGISTRY_REMOTE": settings.registry_remote}
            if settings.registry_remote
            else {}
        ),
    }


def dvc(repo: Path, *args: str, settings: Settings | None = None) -> str:
    """Run the DVC CLI installed next to this Python in ``repo``; return its stdout."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=dvc_env(settings),
        check=False,
    )
    if proc.returncode != 0:
        raise DeploymentRepoError(
            f"dvc {' '.join(args)} failed in {repo}:\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
        )
    return proc.stdout


def remote_config(settings: Settings) -> str:
    """The DVC config naming ``settings.remote`` as the default remote ``storage``.

    An ``s3://`` remote gets the configured endpoint and region (dvc-s3; credentials come from
    the environment, never from this file, which is committed).
    """
    lines = [
        "[core]",
        "    remote = storage",
        "['remote \"storage\"']",
        f"    url = {settings.remote}",
    ]
    if settings.remote.startswith("s3://"):
        if settings.s3_endpoint_url:
            lines.append(f"    endpointurl = {settings.s3_endpoint_url}")
        if settings.s3_region:
            lines.append(f"    region = {settings.s3_region}")
    return "".join(f"{line}\n" for line in lines)


def init(settings: Settings) -> Path:
    """Create the deployment repo if needed (idempotent) and return its path."""
    repo = settings.registry
    if is_deployment_repo(repo):
        _configure_git(repo)
        return repo
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        git(repo, "init", "-q", "-b", "main")
    _configure_git(repo)
    dvc(repo, "init", "-q")
    remote = settings.remote
    if "://" not in remote:
        Path(remote).mkdir(parents=True, exist_ok=True)
    # Written directly (same result as `dvc remote add -d storage URL`, one CLI start-up less).
    (repo / ".dvc" / "config").write_text(remote_config(settings))
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
    (repo / ".gitignore").write_text("".join(f"{line}\n" for line in GITIGNORE))
    (repo / DECISIONS_DIR).mkdir(exist_ok=True)
    (repo / DECISIONS_DIR / ".gitkeep").write_text("")
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


def sync_inputs(
    settings: Settings,
    stage_code: Mapping[str, Iterable[str]],
    *,
    leaves: Iterable[str] = (),
    source_root: Path = PROJECT_ROOT,
) -> Path:
    """Copy the project's dvc.yaml (and its plots templates), params.yaml, the dataset spec and
    each stage's code in.

    Args:
        settings: where the deployment repo, params and spec are.
        stage_code: per dvc.yaml stage, the modules its body calls (see
            :data:`pipelines.stages.STAGE_CODE`); each one's source and every ``pipelines``
            module it imports, transitively, is copied to ``code/<stage>/``, which the stage
            lists as a dependency, so a change to its code makes ``dvc status`` dirty.
        leaves: modules copied into every stage's code without following their imports (the
            module holding all the stage bodies).
        source_root: the project the dvc.yaml and the source files are copied from.
    """
    repo = init(settings)
    dvc_yaml = source_root / "dvc.yaml"
    if not dvc_yaml.exists():
        raise DeploymentRepoError(f"the project's dvc.yaml is missing: {dvc_yaml}")
    shutil.copyfile(dvc_yaml, repo / "dvc.yaml")
    if not Path(settings.params_path).exists():
        raise DeploymentRepoError(f"params file not found: {settings.params_path}")
    shutil.copyfile(settings.params_path, repo / PARAMS_FILE)
    shutil.copyfile(settings.spec_path, repo / SPEC_FILE)
    # dvc.yaml's plots name the project's Vega-Lite templates (``template: by_model``), which DVC
    # looks up in the repo's own .dvc/plots/.
    templates = repo / PLOT_TEMPLATES
    templates.mkdir(parents=True, exist_ok=True)
    for template in sorted((source_root / PLOT_TEMPLATES).glob("*.json")):
        shutil.copyfile(template, templates / template.name)
    _ensure_gitignore(repo)
    code = repo / CODE_DIR
    if code.exists():
        shutil.rmtree(code)  # a module a stage no longer imports must leave its code dir
    leaves = tuple(leaves)
    for stage, modules in stage_code.items():
        for relative in source_closure(modules, source_root, leaves=leaves):
            target = code / stage / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source_root / relative, target)
    return repo


def _ensure_gitignore(repo: Path) -> None:
    # Repos created before a line was added get it too (never tracked by accident).
    path = repo / ".gitignore"
    lines = path.read_text().splitlines() if path.exists() else []
    missing = [line for line in GITIGNORE if line not in lines]
    if missing:
        path.write_text("".join(f"{line}\n" for line in [*lines, *missing]))


def source_closure(
    modules: Iterable[str], root: Path = PROJECT_ROOT, *, leaves: Iterable[str] = ()
) -> list[Path]:
    """Source files (relative to ``root``) of ``modules`` and the project modules they import.

    Imports are read from the source (anywhere in a module, as the boundary test reads them);
    only modules whose file is under ``root`` count, so third-party code is left out. ``leaves``
    are included as files, their imports not followed.
    """
    found: dict[str, Path] = {}
    for leaf in leaves:
        found[leaf] = _module_file(leaf, root)
    pending = list(modules)
    while pending:
        module = pending.pop()
        if module in found:
            continue
        relative = found[module] = _module_file(module, root)
        tree = ast.parse((root / relative).read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            pending.extend(
                name
                for name in names
                if name.split(".")[0] == module.split(".")[0]
                and (root / Path(*name.split("."))).with_suffix(".py").is_file()
            )
    return sorted(found.values())


def _module_file(module: str, root: Path) -> Path:
    relative = Path(*module.split(".")).with_suffix(".py")
    if not (root / relative).is_file():
        raise DeploymentRepoError(f"stage code module {module} has no file {root / relative}")
    return relative


def write_json(repo: Path, name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as ``repo/name`` (sorted keys, so unchanged content is unchanged bytes)."""
    path = repo / name
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def read_json(repo: Path, name: str) -> dict[str, Any]:
    """Read the JSON object ``repo/name``; a missing file says which step writes it."""
    path = repo / name
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DeploymentRepoError(f"{path} is missing: build the training set first") from exc
    if not isinstance(data, dict):
        raise DeploymentRepoError(f"{path} is not a JSON object")
    return data


def read_optional_json(repo: Path, name: str) -> dict[str, Any]:
    """Like :func:`read_json`, but an empty object when the file does not exist."""
    try:
        return read_json(repo, name)
    except DeploymentRepoError:
        return {}


def repro(repo: Path, stage: str, settings: Settings, *, force: bool = False) -> str:
    """Run one dvc.yaml stage (and its upstream stages when they changed) in the repo."""
    args = ["repro", "--force", "--single-item", stage] if force else ["repro", stage]
    return dvc(repo, *args, settings=settings)


def commit(repo: Path, message: str, paths: list[str] | None = None) -> str | None:
    """Commit the given paths (default: everything tracked by git); return the new HEAD or None."""
    git(repo, "add", "-A", *(["--", *paths] if paths else []))
    if not git(repo, "status", "--porcelain", check=False):
        return None
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def last_commit_of(repo: Path, path: str) -> str:
    """The newest commit that changed ``path`` (for dvc.lock: the commit a run produced)."""
    return git(repo, "log", "-1", "--format=%H", "--", path)


def push(repo: Path) -> None:
    """Send the DVC outputs of the current commit to the remote.

    Through DVC's Python API: a DVC CLI start-up costs 1-3 s on a loaded machine.
    """
    from dvc.repo import Repo

    try:
        with no_analytics(), Repo(str(repo)) as dvc_repo:
            dvc_repo.push()
    except Exception as exc:
        raise DeploymentRepoError(
            f"dvc push failed in {repo}: {type(exc).__name__}: {exc}"
        ) from exc


def _uncached(repo: Path, commit: str, names: list[str]) -> set[str]:
    """Paths dvc.yaml declares ``cache: false`` (kept in git, never in the DVC remote)."""
    if "dvc.yaml" not in names:
        return set()
    doc = yaml.safe_load(git(repo, "show", f"{commit}:dvc.yaml")) or {}
    found = set()
    for stage in doc.get("stages", {}).values():
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key, []) or []:
                if isinstance(entry, dict):
                    found |= {p for p, opts in entry.items() if (opts or {}).get("cache") is False}
    return found


def _locked_outputs(repo: Path, commit: str) -> list[str]:
    """md5s (``.dir`` ones included) of every cached DVC output recorded at ``commit``."""
    names = git(repo, "ls-tree", "-r", "--name-only", commit).splitlines()
    uncached = _uncached(repo, commit, names)
    oids = []
    for name in names:
        if name != "dvc.lock" and not name.endswith(".dvc"):
            continue
        doc = yaml.safe_load(git(repo, "show", f"{commit}:{name}")) or {}
        outs = [out for stage in doc.get("stages", {}).values() for out in stage.get("outs", [])]
        oids += [
            str(out["md5"])
            for out in [*outs, *doc.get("outs", [])]
            if out.get("md5") and out.get("path") not in uncached
        ]
    return oids


def missing_from_remote(repo: Path, commit: str) -> list[str]:
    """The DVC objects of ``commit``'s outputs (directory listings followed) not in the remote."""
    from dvc.repo import Repo

    missing = []
    with no_analytics(), Repo(str(repo)) as dvc_repo:
        odb = dvc_repo.cloud.get_remote_odb(None, "push")
        for oid in _locked_outputs(repo, commit):
            if not odb.exists(oid):
                missing.append(oid)
            elif oid.endswith(".dir"):
                with odb.fs.open(odb.oid_to_path(oid), "r") as handle:
                    entries = json.load(handle)
                missing += [e["md5"] for e in entries if not odb.exists(str(e["md5"]))]
    return missing


def push_revision(repo: Path, commit: str) -> None:
    """Make sure the DVC outputs of ``commit`` are in the DVC remote (``dvc push`` of that rev).

    ``dvc push`` skips outputs missing from the local cache without failing, so the remote is
    checked afterwards, object by object.

    Raises:
        DeploymentRepoError: some output of ``commit`` is neither in the remote nor in the local
            cache (it can never be pulled), or the remote refused it.
    """
    from dvc.repo import Repo

    try:
        with no_analytics(), Repo(str(repo)) as dvc_repo:
            dvc_repo.push(revs=[commit], workspace=False)
        missing = missing_from_remote(repo, commit)
    except Exception as exc:
        raise DeploymentRepoError(
            f"dvc push of commit {commit[:12]} from {repo} failed ({type(exc).__name__}: {exc})"
        ) from exc
    if missing:
        raise DeploymentRepoError(
            f"the artifacts of commit {commit[:12]} are not in the DVC remote and not in the "
            f"cache of {repo} ({len(missing)} objects, e.g. {missing[0]}): `dvc push` them from "
            "the machine that trained the model"
        )


def dvc_add(repo: Path, path: str) -> None:
    """Track ``path`` with DVC (``dvc add``), through the Python API."""
    from dvc.repo import Repo

    with no_analytics(), Repo(str(repo)) as dvc_repo:
        dvc_repo.add(str(repo / path))


def lock_hash(repo: Path, stage: str, path: str) -> str:
    """The md5 DVC recorded in dvc.lock for an output of a stage (the Dagster data version)."""
    lock_path = repo / "dvc.lock"
    try:
        lock = yaml.safe_load(lock_path.read_text()) or {}
    except FileNotFoundError as exc:
        raise DeploymentRepoError(f"{lock_path} is missing: run the {stage} stage first") from exc
    for out in lock.get("stages", {}).get(stage, {}).get("outs", []):
        if out.get("path") == path:
            return str(out["md5"])
    raise DeploymentRepoError(f"dvc.lock in {repo} has no output {path} for stage {stage}")


def status(repo: Path) -> dict[str, Any]:
    """``dvc status``: per changed stage name, what changed (empty when all is up to date)."""
    from dvc.repo import Repo

    with no_analytics(), Repo(str(repo)) as dvc_repo:
        found = dvc_repo.status()
    # DVC's API names a stage `<dvc.yaml path relative to the cwd>:<stage>`: keep the stage.
    return {str(key).rsplit(":", 1)[-1]: value for key, value in found.items()}


def status_clean(repo: Path) -> bool:
    """True when ``dvc status`` reports every stage up to date."""
    return not status(repo)


def file_md5(path: Path) -> str:
    """md5 of a file's bytes (what DVC records for a file output)."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(repo: Path, path: str, rev: str, out: Path) -> Path:
    """``dvc get`` of ``path`` at commit ``rev`` of the repo into ``out`` (cache, then remote)."""
    try:
        from dvc.repo import Repo

        with no_analytics():
            Repo.get(str(repo), path, out=str(out), rev=rev)
    except Exception as exc:
        raise DeploymentRepoError(
            f"cannot fetch {path} at commit {rev[:12]} from {repo}: its artifacts are missing "
            f"from the DVC cache and the remote ({type(exc).__name__}: {exc}); push them with "
            f"`dvc push` in {repo}"
        ) from exc
    return out


def cache_dir(settings: Settings) -> Path:
    """Where fetched model versions are kept (one directory per version and commit)."""
    return settings.state_root / "model-cache" / settings.model_name


def fetch_model(settings: Settings, version: str, commit: str) -> Path:
    """Materialise the model directory of ``commit`` locally as ``version`` and return it.

    Fetched once (DVC cache first, then the DVC remote), checked (model file and readable
    metadata), and moved into place atomically; reused afterwards.
    """
    repo = settings.registry
    target = cache_dir(settings) / f"{version}-{commit[:12]}"
    if _complete(target):
        if not (target / HOLDOUT_FILE).exists():  # cached before holdout.json was written
            _write_holdout(repo, version, commit, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    out = staging / MODEL_PATH
    try:
        fetch_file(repo, MODEL_PATH, commit, out)
        if not _complete(out):
            raise DeploymentRepoError(
                f"{settings.model_name} {version} (commit {commit[:12]}) in {repo} has no "
                f"{MODEL_FILE}/{METADATA_FILE} under {MODEL_PATH}"
            )
        try:
            load_metadata(out)
        except ModelLoadError as exc:
            raise DeploymentRepoError(f"{settings.model_name} {version}: {exc}") from exc
        _write_holdout(repo, version, commit, out)
        if target.exists():
            shutil.rmtree(target)
        os.replace(out, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _write_holdout(repo: Path, version: str, commit: str, model_dir: Path) -> None:
    """``holdout.json`` beside the fetched model: its part of the evaluation recorded at
    ``commit`` (``evaluation/evaluation.json``, tracked by git). Nothing is written when the
    commit has none, or when the one it has judged another version (a version registered by
    hand after an earlier run's evaluation)."""
    text = git(repo, "show", f"{commit}:{EVALUATION_DIR}/evaluation.json", check=False)
    if not text:
        return
    try:
        evaluation = json.loads(text)
        judged = evaluation["models"]["challenger"].get("version")
        holdout = holdout_evaluation(evaluation)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, ModelLoadError) as exc:
        raise DeploymentRepoError(
            f"{EVALUATION_DIR}/evaluation.json at commit {commit[:12]} of {repo} is corrupt: {exc}"
        ) from exc
    if judged != version:
        return
    staging = model_dir / f".{HOLDOUT_FILE}.tmp"
    staging.write_text(holdout.model_dump_json(indent=2))
    os.replace(staging, model_dir / HOLDOUT_FILE)


def _complete(directory: Path) -> bool:
    return (directory / MODEL_FILE).is_file() and (directory / METADATA_FILE).is_file()


class RepoLock:
    """One writer at a time in a deployment repo: ``flock`` on a file beside it.

    The flock excludes other processes and, since every ``with`` opens the file anew, other
    threads of this process too. One instance is re-entrant in the thread that holds it; a
    second instance for the same path waits like any other writer, so a step takes the lock
    once and calls the unlocked bodies of the steps it runs.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = threading.RLock()
        self._depth = 0
        self._handle: IO[str] | None = None

    @classmethod
    def beside(cls, repo: Path) -> RepoLock:
        """The lock of ``repo``: ``.<name>.lock`` next to it (outside the repo's git tree)."""
        return cls(repo.parent / f".{repo.name}.lock")

    def __enter__(self) -> RepoLock:
        self._thread.acquire()
        if self._depth == 0:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                handle = self.path.open("w")
                fcntl.flock(handle, fcntl.LOCK_EX)
            except BaseException:
                self._thread.release()
                raise
            self._handle = handle
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0 and self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
        self._thread.release()


def locked(step: Callable[Concatenate[Settings, P], R]) -> Callable[Concatenate[Settings, P], R]:
    """Run ``step(settings, ...)`` holding the deployment repo's :class:`RepoLock`."""

    @wraps(step)
    def run(settings: Settings, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with RepoLock.beside(settings.registry):
            return step(settings, *args, **kwargs)

    return run
