"""Registry with a remote: every change pushes its GTO tags to SCORELOOP_REGISTRY_REMOTE (a local
bare repo here), only once the version's artifacts are in the DVC remote; a failed push is
reported, alerted, listed as unpushed and retried."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import test_registry
from support.retraining import save_toy_bundle
from typer.testing import CliRunner

from pipelines.alerts import alerts_path
from pipelines.deployment_repo import commit, dvc_add, push
from pipelines.registry import (
    assign_champion,
    push_tags,
    register_version,
    remote_tags,
    rollback,
    unpushed_tags,
)
from pipelines.settings import Settings, get_settings
from scoreloop.cli import app

AddVersion = test_registry.AddVersion
add_version = test_registry.add_version  # the fixture, shared with the registry tests


@pytest.fixture
def origin(tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    monkeypatch.setenv("SCORELOOP_REGISTRY_REMOTE", str(bare))
    return bare


@pytest.fixture
def remote_settings(origin: Path) -> Settings:
    return get_settings()


def _origin_tags(origin: Path) -> set[str]:
    out = subprocess.run(
        ["git", "-C", str(origin), "tag", "--list"], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def _alerts(settings: Settings) -> list[dict[str, object]]:
    path = alerts_path(settings)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_registration_promotion_and_rollback_push_their_tags(
    remote_settings: Settings, origin: Path, add_version: AddVersion
) -> None:
    v1 = add_version(3)
    assert _origin_tags(origin) == {f"employment@{v1}"}
    first = assign_champion(remote_settings, v1)
    assert first.push is not None and first.push.ok and first.push.pushed == ["employment#prod#1"]
    v2 = add_version(5)
    assign_champion(remote_settings, v2)
    ref = rollback(remote_settings, reason="bad release")
    assert ref.version == v1 and ref.push is not None and ref.push.ok
    assert unpushed_tags(remote_settings) == []
    local = subprocess.run(
        ["git", "-C", str(remote_settings.registry), "tag", "--list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # every tag (v2's registration and prod assignment, the rollback's reassignment of v1) is
    # in the origin, so a clone of it has the same GTO view: v1 in prod
    assert _origin_tags(origin) == set(local) == set(remote_tags(remote_settings))
    assert f"employment@{v2}" in local and len([t for t in local if "#prod#" in t]) >= 3


def test_tag_whose_artifacts_are_not_in_the_dvc_remote_is_never_pushed(
    remote_settings: Settings, origin: Path, add_version: AddVersion
) -> None:
    add_version(3)
    # committed, but `dvc push` never ran and the cache lost it, so the artifacts cannot reach
    # the remote: registering it must leave its tag local.
    repo = remote_settings.registry
    save_toy_bundle(repo / "model", remote_settings.model_name, iterations=5)
    dvc_add(repo, "model")
    commit(repo, "model with 5 iterations")
    shutil.rmtree(repo / ".dvc" / "cache")
    v2 = register_version(remote_settings)
    tag = f"employment@{v2}"
    assert tag not in _origin_tags(origin)
    assert unpushed_tags(remote_settings) == [tag]
    alert = _alerts(remote_settings)[-1]
    assert alert["kind"] == "registry_push" and tag in str(alert["details"])

    listed = CliRunner().invoke(app, ["model", "list"])
    assert listed.exit_code == 0, listed.output
    assert "unpushed" in listed.output and tag in listed.output

    retry = CliRunner().invoke(app, ["model", "push"])
    assert retry.exit_code == 1 and "NOT pushed" in retry.output


def test_rejected_push_is_reported_and_retried(
    remote_settings: Settings, origin: Path, add_version: AddVersion
) -> None:
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'tags are frozen today' >&2\nexit 1\n")
    hook.chmod(0o755)
    v1 = add_version(3)
    ref = assign_champion(remote_settings, v1)
    assert ref.push is not None and not ref.push.ok
    assert set(ref.push.failed) == {f"employment@{v1}", "employment#prod#1"}
    assert _origin_tags(origin) == set()
    assert _alerts(remote_settings)[-1]["kind"] == "registry_push"

    rejected = CliRunner().invoke(app, ["model", "push"])
    assert rejected.exit_code == 1 and "retry with `scoreloop model push`" in rejected.output

    hook.unlink()
    retried = CliRunner().invoke(app, ["model", "push"])
    assert retried.exit_code == 0, retried.output
    assert _origin_tags(origin) == {f"employment@{v1}", "employment#prod#1"}
    assert push_tags(remote_settings).pushed == []  # nothing left


def test_no_remote_means_nothing_is_pushed(settings: Settings, add_version: AddVersion) -> None:
    v1 = add_version(3)
    assert assign_champion(settings, v1).push is not None
    assert push_tags(settings).remote is None
    assert unpushed_tags(settings) == []
    push(settings.registry)
