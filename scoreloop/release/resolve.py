"""From a pushed prod tag to the model version it promoted, in a registry synced from its remote.

A deploy runs where the training did not: the registry (the deployment repo) is cloned from
``SCORELOOP_REGISTRY_REMOTE`` into ``settings.registry`` on first use and its tags fetched on
every later one, so the deploy sees exactly what was pushed. ``SCORELOOP_DVC_REMOTE`` (with the
remote's credentials in the environment, e.g. ``AWS_*``) overrides the DVC remote the repo names,
in ``.dvc/config.local`` of the clone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.deployment_repo import (
    DeploymentRepoError,
    git,
    init,
    is_deployment_repo,
)
from pipelines.registry import PROD_STAGE, REMOTE_NAME, champion_version, list_versions
from pipelines.settings import Settings, get_settings
from scoreloop.release.errors import ReleaseError

PROD_TAG = re.compile(rf"^(?P<model>[^@#!]+)#{PROD_STAGE}#(?P<number>\d+)$")


@dataclass(frozen=True)
class ResolvedTag:
    """A prod tag and the version it assigned; ``current`` when it is still the champion."""

    tag: str
    model: str
    number: int
    version: str
    commit: str
    champion: str | None

    @property
    def current(self) -> bool:
        """False when a newer promotion (or a rollback) superseded this one: skip the deploy."""
        return self.champion == self.version

    def outputs(self) -> dict[str, str]:
        """``key=value`` pairs for ``$GITHUB_OUTPUT``."""
        return {
            "tag": self.tag,
            "model": self.model,
            "version": self.version,
            "commit": self.commit,
            "champion": self.champion or "",
            "current": "true" if self.current else "false",
        }


def parse_tag(ref: str) -> tuple[str, int]:
    """``(model, number)`` of ``<model>#prod#<n>`` or ``refs/tags/<model>#prod#<n>``."""
    tag = ref.removeprefix("refs/tags/")
    match = PROD_TAG.match(tag)
    if match is None:
        raise ReleaseError(
            f"{ref!r} is not a prod promotion tag: expected <model>#{PROD_STAGE}#<n> (for "
            f"example employment#{PROD_STAGE}#3), the tag `scoreloop model promote` pushes"
        )
    return match["model"], int(match["number"])


def sync_registry(settings: Settings | None = None) -> Settings:
    """Clone or update ``settings.registry`` from ``SCORELOOP_REGISTRY_REMOTE`` (when set)."""
    settings = settings or get_settings()
    url = settings.registry_remote
    repo = settings.registry
    try:
        if url and not is_deployment_repo(repo):
            repo.parent.mkdir(parents=True, exist_ok=True)
            git(repo.parent, "clone", "--quiet", "--origin", REMOTE_NAME, url, str(repo))
        elif url:
            git(repo, "fetch", "--quiet", "--force", "--tags", REMOTE_NAME)
        if url and not git(repo, "rev-parse", "--verify", "-q", "HEAD", check=False):
            # The remote holds tags only (no branch is pushed): work on the newest tagged commit.
            newest = git(
                repo,
                "for-each-ref",
                "--sort=-creatordate",
                "--count=1",
                "--format=%(refname)",
                "refs/tags",
            )
            git(repo, "checkout", "--quiet", "--detach", newest)
    except DeploymentRepoError as exc:
        raise ReleaseError(
            f"cannot sync the registry {repo} from {url}: {exc}; check SCORELOOP_REGISTRY_REMOTE "
            "and the credentials of that git remote"
        ) from exc
    if not is_deployment_repo(repo):
        raise ReleaseError(
            f"no registry at {repo}: set SCORELOOP_REGISTRY_REMOTE (the git URL the tags are "
            "pushed to) or SCORELOOP_REGISTRY_REPO"
        )
    init(settings)  # local git identity for the rollback's tags
    if settings.dvc_remote:
        (repo / ".dvc" / "config.local").write_text(
            f"['remote \"storage\"']\n    url = {settings.dvc_remote}\n"
        )
    return settings


def resolve(ref: str, settings: Settings | None = None) -> ResolvedTag:
    """The version the prod tag ``ref`` promoted, after syncing the registry.

    Raises:
        ReleaseError: not a prod tag, a tag of another model, a tag the registry does not have,
            or a tag on a commit no version is registered at.
    """
    model, number = parse_tag(ref)
    settings = sync_registry(settings)
    if model != settings.model_name:
        raise ReleaseError(
            f"{ref!r} promotes model {model!r} but this deployment serves "
            f"{settings.model_name!r} (SCORELOOP_MODEL_NAME)"
        )
    tag = ref.removeprefix("refs/tags/")
    commit = git(settings.registry, "rev-list", "-n", "1", f"refs/tags/{tag}", check=False)
    if not commit:
        raise ReleaseError(
            f"tag {tag!r} is not in the registry {settings.registry} (remote "
            f"{settings.registry_remote or 'none'}): push it with `scoreloop model push`"
        )
    versions = [v.version for v in list_versions(settings) if v.commit == commit]
    if not versions:
        raise ReleaseError(f"tag {tag!r} points at {commit[:12]}, where no version is registered")
    found = champion_version(settings)
    return ResolvedTag(
        tag=tag,
        model=model,
        number=number,
        version=versions[-1],
        commit=commit,
        champion=found[0] if found else None,
    )
