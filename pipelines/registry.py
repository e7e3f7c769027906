"""The model registry: GTO tags in the deployment git repo, model artifacts in DVC.

A model version is a commit of the deployment repo (see :mod:`pipelines.deployment_repo`) whose
``dvc.lock`` pins the model directory ``model/``; ``gto register`` tags it ``<name>@vX.Y.Z``.
The champion is the version holding the ``prod`` stage (``<name>#prod#N`` tags). Exactly one
version holds ``prod`` at a time: promoting assigns ``prod`` to the new version and unassigns it
from the previous one, so GTO's own ``gto show``/``gto which`` and :func:`resolve_champion` agree.

:func:`resolve_champion` is THE one way to find the champion. It materialises the champion's
model directory locally (from the DVC cache or remote) so callers can ``load_bundle`` it.
Rollback and the decisions log (``decisions/``: every gate, promotion and rollback) live here too.

With ``SCORELOOP_REGISTRY_REMOTE`` (a git URL) every registration, promotion and rollback pushes
its tags there (:func:`push_tags`), each only after the DVC outputs of the commit it names are in
the DVC remote, so a tag whose artifacts cannot be pulled never reaches the remote. A failed push
keeps the local change, is returned (``TagPush``), alerted, listed by :func:`unpushed_tags`
(``scoreloop model list``) and retried by the next push (``scoreloop model push``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.deployment_repo import (
    DECISIONS_DIR,
    DeploymentRepoError,
    fetch_model,
    git,
    is_deployment_repo,
    locked,
    push_revision,
)
from pipelines.errors import ScoreloopError
from pipelines.settings import Settings, get_settings

PROD_STAGE = "prod"
#: The git remote of the deployment repo that ``SCORELOOP_REGISTRY_REMOTE`` is configured as.
REMOTE_NAME = "origin"


class RegistryError(ScoreloopError, RuntimeError):
    """The registry cannot answer or cannot do what was asked (message says why and how to fix)."""


@dataclass(frozen=True)
class TagPush:
    """What a push of the registry's tags to ``SCORELOOP_REGISTRY_REMOTE`` did."""

    remote: str | None
    pushed: list[str] = field(default_factory=list)
    #: tag -> why it was not pushed (it stays local, listed by :func:`unpushed_tags`).
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        """One line for a CLI or Dagster metadata."""
        if self.remote is None:
            return "no registry remote (SCORELOOP_REGISTRY_REMOTE unset): tags stay local"
        if self.failed:
            first = next(iter(self.failed.values()))
            return (
                f"NOT pushed to {self.remote}: {', '.join(self.failed)} ({first}); retry with "
                "`scoreloop model push`"
            )
        return f"pushed to {self.remote}: {', '.join(self.pushed) or 'nothing new'}"


@dataclass(frozen=True)
class ChampionRef:
    """The model version currently serving (holding the ``prod`` stage)."""

    name: str
    version: str
    model_dir: Path
    #: The push of the tags this change made (None when nothing was pushed or asked).
    push: TagPush | None = None


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, as the registry sees it."""

    name: str
    version: str
    commit: str
    registered_at: datetime | None
    is_champion: bool


def _require_registry(settings: Settings) -> Path:
    repo = settings.registry
    if not is_deployment_repo(repo):
        raise RegistryError(
            f"no deployment repo at {repo}: run `scoreloop train` (or "
            f"`pipelines.deployment_repo.init`) first, or set SCORELOOP_REGISTRY_REPO"
        )
    return repo


def _tick(repo: Path) -> None:
    """Make sure the next tag is created in a later second than the newest one.

    GTO orders events by their tag time, which has one-second resolution; two stage changes in
    the same second would make the order (and so the champion) ambiguous.
    """
    newest = git(
        repo,
        "for-each-ref",
        "--sort=-creatordate",
        "--count=1",
        "--format=%(creatordate:unix)",
        "refs/tags",
        check=False,
    )
    if newest.isdigit():
        while int(time.time()) <= int(newest):
            time.sleep(0.05)


def _stage_versions(repo: Path, name: str) -> list[str]:
    """Versions whose ``prod`` assignment is currently active (GTO's own view)."""
    from gto import api as gto_api

    found = gto_api.find_versions_in_stage(
        str(repo), name, PROD_STAGE, versions_per_stage=-1, assignments_per_version=-1
    )
    return [v.version for v in found or []]


def champion_version(settings: Settings | None = None) -> tuple[str, str] | None:
    """(version, commit) of the champion, without fetching its artifacts; None if none."""
    settings = settings or get_settings()
    repo = settings.registry
    if not is_deployment_repo(repo) or not git(repo, "tag", "--list", check=False):
        return None
    from gto import api as gto_api

    found = gto_api.find_versions_in_stage(str(repo), settings.model_name, PROD_STAGE)
    if not found:
        return None
    if len(found) > 1:  # pragma: no cover - defensive: promote() keeps one version in prod
        raise RegistryError(
            f"more than one version of {settings.model_name} holds {PROD_STAGE}: "
            f"{[v.version for v in found]}; run `scoreloop model promote VERSION --force`"
        )
    return str(found[0].version), str(found[0].commit_hexsha)


def resolve_champion(settings: Settings | None = None) -> ChampionRef | None:
    """The champion model, materialised in a local directory; None when no model is promoted.

    Raises:
        RegistryError: the champion's tag points at a commit whose artifacts cannot be fetched
            (missing from both the DVC cache and the remote), or they are corrupt.
    """
    settings = settings or get_settings()
    found = champion_version(settings)
    if found is None:
        return None
    version, commit = found
    model_dir = fetch_version(settings, version, commit=commit)
    return ChampionRef(name=settings.model_name, version=version, model_dir=model_dir)


def version_commit(settings: Settings, version: str) -> str:
    """The deployment-repo commit a registered version points at."""
    repo = _require_registry(settings)
    tag = f"{settings.model_name}@{version}"
    commit = git(repo, "rev-list", "-n", "1", f"refs/tags/{tag}", check=False)
    if not commit:
        known = [v.version for v in list_versions(settings)]
        raise RegistryError(
            f"version {version!r} of {settings.model_name} is not registered in {repo} "
            f"(registered: {known or 'none'})"
        )
    return commit


def fetch_version(settings: Settings, version: str, *, commit: str | None = None) -> Path:
    """Materialise a registered version's model directory locally and return it.

    Fetched once (``dvc get`` from the deployment repo at the version's commit: DVC cache first,
    then the DVC remote) and reused afterwards; see :func:`pipelines.deployment_repo.fetch_model`.
    """
    _require_registry(settings)
    commit = commit or version_commit(settings, version)
    try:
        return fetch_model(settings, version, commit)
    except DeploymentRepoError as exc:
        raise RegistryError(
            f"{settings.model_name} {version} (DVC remote {settings.remote}): {exc}; "
            f"or pick another version"
        ) from exc


def _tag_lines(repo: Path, prefix: str) -> list[str]:
    """Lines ``tag|created (unix)|peeled commit|object`` of the tags ``prefix*``, oldest first."""
    return git(
        repo,
        "for-each-ref",
        "--sort=creatordate",
        "--format=%(refname:short)|%(creatordate:unix)|%(*objectname)|%(objectname)",
        f"refs/tags/{prefix}*",
        check=False,
    ).splitlines()


def list_versions(settings: Settings | None = None) -> list[ModelVersion]:
    """Registered versions, oldest first, with the champion marked."""
    settings = settings or get_settings()
    if not is_deployment_repo(settings.registry):
        return []
    return _versions(settings, champion_version(settings))


def _versions(settings: Settings, champion: tuple[str, str] | None) -> list[ModelVersion]:
    """Registered versions from the git tags alone (GTO, which knows the champion, is slow to
    import and ask: only :func:`list_versions` asks it)."""
    repo = settings.registry
    if not is_deployment_repo(repo):
        return []
    prefix = f"{settings.model_name}@"
    lines = _tag_lines(repo, prefix)
    versions = []
    for line in lines:
        tag, stamp, peeled, obj = line.split("|")
        version = tag[len(prefix) :]
        if version.endswith("!"):
            continue
        versions.append(
            ModelVersion(
                name=settings.model_name,
                version=version,
                commit=peeled or obj,
                registered_at=datetime.fromtimestamp(int(stamp), tz=UTC) if stamp else None,
                is_champion=champion is not None and champion[0] == version,
            )
        )
    versions.sort(key=lambda v: _semver_key(v.version))
    return versions


def _semver_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.lstrip("v").split("."))
    except ValueError:
        return (10**9,)


def next_version(settings: Settings) -> str:
    """The version the next registered model gets: last registered version + 1 patch."""
    versions = list_versions(settings)
    if not versions:
        return "v0.0.1"
    major, minor, patch = (*_semver_key(versions[-1].version), 0, 0, 0)[:3]
    return f"v{major}.{minor}.{patch + 1}"


def register_version(
    settings: Settings, ref: str = "HEAD", *, version: str | None = None, message: str = ""
) -> str:
    """Register the commit ``ref`` of the deployment repo (as ``version`` or the next patch)."""
    from gto import api as gto_api

    repo = _require_registry(settings)
    commit = git(repo, "rev-parse", ref)
    for existing in list_versions(settings):
        if existing.commit == commit:
            return existing.version
    _tick(repo)
    gto_api.register(
        str(repo),
        settings.model_name,
        commit,
        version=version or next_version(settings),
        message=message or None,
    )
    push_tags(settings)
    for registered in list_versions(settings):
        if registered.commit == commit:
            return registered.version
    raise RegistryError(f"gto register did not tag {commit[:12]} in {repo}")  # pragma: no cover


def assign_champion(settings: Settings, version: str, *, message: str = "") -> ChampionRef:
    """Make ``version`` the champion (GTO ``prod``); the previous champion loses ``prod``.

    The version's artifacts are fetched first: a version that cannot be fetched is never
    promoted, and the current champion stays in place.
    """
    from gto import api as gto_api

    repo = _require_registry(settings)
    commit = version_commit(settings, version)
    model_dir = fetch_version(settings, version, commit=commit)
    name = settings.model_name
    current = _stage_versions(repo, name)
    if current == [version]:
        return ChampionRef(name=name, version=version, model_dir=model_dir)
    _tick(repo)
    gto_api.assign(
        str(repo), name, PROD_STAGE, version=version, message=message or None, force=True
    )
    for other in current:
        if other != version:
            _tick(repo)
            gto_api.unassign(
                str(repo),
                name,
                stage=PROD_STAGE,
                version=other,
                message=f"replaced by {version}",
            )
    found = champion_version(settings)
    if found is None or found[0] != version:  # pragma: no cover - defensive
        raise RegistryError(f"assigning {PROD_STAGE} to {version} did not take effect in {repo}")
    return ChampionRef(name=name, version=version, model_dir=model_dir, push=push_tags(settings))


def champion_history(settings: Settings) -> list[tuple[datetime, str, str]]:
    """(time, version, event) of every ``prod`` stage change, oldest first."""
    repo = settings.registry
    if not is_deployment_repo(repo):
        return []
    prefix = f"{settings.model_name}#{PROD_STAGE}"
    lines = _tag_lines(repo, prefix)
    by_commit = {v.commit: v.version for v in _versions(settings, None)}
    events = []
    for line in lines:
        tag, stamp, peeled, obj = line.split("|")
        event = "unassigned" if tag.startswith(f"{prefix}!") else "assigned"
        version = by_commit.get(peeled or obj, (peeled or obj)[:12])
        events.append((datetime.fromtimestamp(int(stamp), tz=UTC), version, event))
    return events


def previous_champion(settings: Settings) -> str | None:
    """The version that held ``prod`` before the current champion (target of a rollback)."""
    found = champion_version(settings)
    if found is None:
        return None
    current = found[0]
    assigned = [v for _, v, e in champion_history(settings) if e == "assigned"]
    for version in reversed(assigned):
        if version != current:
            return version
    return None


@locked
def rollback(settings: Settings, *, reason: str = "") -> ChampionRef:
    """Put the previous champion back in ``prod``; the current one loses it.

    Holds the deployment repo's lock, so it never interleaves with a training step.
    """
    found = champion_version(settings)
    if found is None:
        raise RegistryError(f"no champion of {settings.model_name} to roll back from")
    previous = previous_champion(settings)
    if previous is None:
        raise RegistryError(
            f"{settings.model_name} {found[0]} is the only version ever promoted: nothing to roll "
            f"back to"
        )
    ref = assign_champion(
        settings, previous, message=f"rollback from {found[0]}" + (f": {reason}" if reason else "")
    )
    if ref.push is None:  # the champion was already `previous` (nothing new): push anything pending
        ref = replace(ref, push=push_tags(settings))
    record_decision(
        settings,
        {
            "action": "rollback",
            "from_version": found[0],
            "to_version": previous,
            "reason": reason,
        },
    )
    return ref


def record_decision(settings: Settings, decision: dict[str, Any]) -> Path:
    """Write a decision (gate, promotion, rollback) as JSON in the deployment repo and commit it."""
    repo = _require_registry(settings)
    now = datetime.now(UTC)
    payload = {"recorded_at": now.isoformat(), "model_name": settings.model_name, **decision}
    folder = repo / DECISIONS_DIR
    folder.mkdir(exist_ok=True)
    stem = now.strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{stem}-{decision.get('action', 'decision')}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    relative = str(path.relative_to(repo))
    git(repo, "add", relative)
    git(
        repo,
        "commit",
        "-q",
        "-m",
        f"{decision.get('action', 'decision')}: {settings.model_name}",
        "--",
        relative,
    )
    return path


def decisions(settings: Settings) -> list[dict[str, Any]]:
    """All recorded decisions, oldest first."""
    folder = settings.registry / DECISIONS_DIR
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


# --- The registry remote ------------------------------------------------------------------------


def _model_tags(repo: Path, name: str) -> list[tuple[str, str]]:
    """(tag, peeled commit) of every GTO tag of ``name``, oldest first (creation order)."""
    found = []
    for prefix in (f"{name}@", f"{name}#"):
        for line in _tag_lines(repo, prefix):
            tag, stamp, peeled, obj = line.split("|")
            found.append((int(stamp or 0), tag, peeled or obj))
    return [(tag, commit) for _, tag, commit in sorted(found)]


def _configure_remote(repo: Path, url: str) -> None:
    current = git(repo, "remote", "get-url", REMOTE_NAME, check=False)
    if current != url:
        verb = "set-url" if current else "add"
        git(repo, "remote", verb, REMOTE_NAME, url)


def remote_tags(settings: Settings) -> dict[str, str]:
    """Tag name -> object id of the tags in ``SCORELOOP_REGISTRY_REMOTE`` (empty when unset).

    Raises:
        RegistryError: the remote cannot be read (the message has git's reason).
    """
    url = settings.registry_remote
    if not url:
        return {}
    repo = _require_registry(settings)
    try:
        out = git(repo, "ls-remote", "--tags", url)
    except DeploymentRepoError as exc:
        raise RegistryError(
            f"cannot read the registry remote {url}: {exc}; check SCORELOOP_REGISTRY_REMOTE "
            "and its credentials"
        ) from exc
    tags = {}
    for line in out.splitlines():
        obj, ref = line.split("\t", 1)
        if not ref.endswith("^{}"):
            tags[ref.removeprefix("refs/tags/")] = obj
    return tags


def unpushed_tags(settings: Settings | None = None) -> list[str]:
    """The model's local tags missing from (or different in) the registry remote, oldest first."""
    settings = settings or get_settings()
    if not settings.registry_remote or not is_deployment_repo(settings.registry):
        return []
    remote = remote_tags(settings)
    repo = settings.registry
    pending = []
    for tag, _ in _model_tags(repo, settings.model_name):
        if remote.get(tag) != git(repo, "rev-parse", f"refs/tags/{tag}"):
            pending.append(tag)
    return pending


def push_tags(settings: Settings | None = None) -> TagPush:
    """Push every unpushed tag of the model to ``SCORELOOP_REGISTRY_REMOTE``, oldest first.

    A tag is pushed (``git push <remote> refs/tags/<tag>``) only after the DVC outputs of its
    commit are in the DVC remote. Not GTO's ``push=True``: it pushes through scmrepo/dulwich,
    which writes a local remote directly, so the remote's hooks (its refusals) never run. What
    could not be pushed stays local, is returned in ``failed`` and alerted; calling this again
    retries it. Never raises for a failed push.
    """
    settings = settings or get_settings()
    url = settings.registry_remote
    if not url:
        return TagPush(remote=None)
    repo = _require_registry(settings)
    result = TagPush(remote=url)
    try:
        _configure_remote(repo, url)
        # Learn what others pushed (a deploy's rollback) first; a tag that differs here and
        # there makes the fetch fail, and that is reported, never overwritten.
        git(repo, "fetch", "--quiet", "--tags", REMOTE_NAME)
        pending = unpushed_tags(settings)
    except (RegistryError, DeploymentRepoError) as exc:
        result.failed["*"] = str(exc)
        pending = []
    commits = dict(_model_tags(repo, settings.model_name))
    artifacts_ok: dict[str, str | None] = {}
    for tag in pending:
        commit = commits[tag]
        if commit not in artifacts_ok:
            try:
                push_revision(repo, commit)
                artifacts_ok[commit] = None
            except DeploymentRepoError as exc:
                artifacts_ok[commit] = str(exc)
        problem = artifacts_ok[commit]
        if problem is None:
            try:
                git(repo, "push", "--quiet", REMOTE_NAME, f"refs/tags/{tag}:refs/tags/{tag}")
                result.pushed.append(tag)
                continue
            except DeploymentRepoError as exc:
                problem = f"the remote rejected it: {exc}"
        result.failed[tag] = problem
    if result.failed:
        from pipelines.alerts import Alert, alert_sinks, send_alert  # polars/scipy: lazily

        send_alert(
            Alert(
                kind="registry_push",
                severity="error",
                title=f"registry tags of {settings.model_name} not pushed to {url}",
                message=result.describe(),
                details={"failed": result.failed, "pushed": result.pushed},
            ),
            alert_sinks(settings),
        )
    return result
