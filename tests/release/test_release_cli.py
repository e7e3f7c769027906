"""``scoreloop release ...``: each deploy step by hand, with its failure paths (real git, DVC,
GTO and containers; the happy path end to end is tests/release/test_rehearsal.py)."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import polars as pl
import pytest
from support.release import smoke_case
from typer.testing import CliRunner

from pipelines.alerts import alerts_path
from pipelines.registry import assign_champion
from pipelines.settings import Settings, get_settings
from scoreloop.cli import app
from scoreloop.release.build import BuiltImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
import test_registry  # the registry tests' fixture: tiny versions in a real repo
import test_registry_remote  # its bare origin as SCORELOOP_REGISTRY_REMOTE

add_version = test_registry.add_version
origin = test_registry_remote.origin
AddVersion = test_registry.AddVersion
runner = CliRunner()


def _outputs(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.fixture
def promoted(origin: Path, add_version: AddVersion) -> tuple[str, str]:
    """Two versions promoted one after the other (tags pushed): (v1, v2)."""
    settings = get_settings()
    v1 = add_version(3)
    assign_champion(settings, v1)
    v2 = add_version(5)
    assign_champion(settings, v2)
    return v1, v2


def _fresh_runner_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the registry at an empty folder, like a fresh CI runner (cloned from the remote)."""
    clone = tmp_path / "runner" / "registry"
    monkeypatch.setenv("SCORELOOP_REGISTRY_REPO", str(clone))
    return clone


def test_resolve_maps_a_pushed_prod_tag_to_its_version_from_a_fresh_clone(
    promoted: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1, v2 = promoted
    clone = _fresh_runner_registry(tmp_path, monkeypatch)
    newest = runner.invoke(app, ["release", "resolve", "refs/tags/employment#prod#2"])
    assert newest.exit_code == 0, newest.output
    out = _outputs(newest.stdout)
    assert (out["version"], out["current"]) == (v2, "true")
    assert (clone / ".git").exists()
    older = runner.invoke(app, ["release", "resolve", "employment#prod#1"])
    assert older.exit_code == 0 and _outputs(older.stdout)["version"] == v1
    assert _outputs(older.stdout)["current"] == "false"  # superseded: the workflow skips it


@pytest.mark.parametrize(
    ("ref", "message"),
    [("employment#prod#99", "not in the registry"), ("employment@v0.0.1", "not a prod")],
)
def test_resolve_refuses_unknown_and_non_prod_tags(
    promoted: tuple[str, str], ref: str, message: str
) -> None:
    result = runner.invoke(app, ["release", "resolve", ref])
    assert result.exit_code == 2 and message in result.output


def test_fetch_fails_when_the_artifacts_are_not_in_the_dvc_remote(
    promoted: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = Path(get_settings().remote)
    _fresh_runner_registry(tmp_path, monkeypatch)
    assert runner.invoke(app, ["release", "resolve", "employment#prod#2"]).exit_code == 0
    shutil.rmtree(remote)  # the DVC remote lost everything; the fresh clone has no cache
    result = runner.invoke(app, ["release", "fetch", promoted[1]])
    assert result.exit_code == 2
    assert "cannot be used" in result.output and promoted[1] in result.output


@pytest.fixture
def release_dir(
    tmp_path: Path,
    release_root: Path,
    release_v1: tuple[Path, Path, pl.DataFrame],
    release_rows: pl.DataFrame,
) -> Path:
    """A release folder like `fetch` writes, for v0.0.1 (readable by the image's user)."""
    bundle, snapshots, scores = release_v1
    folder = release_root / f"release-{tmp_path.name}"
    shutil.copytree(bundle, folder / "bundle")
    shutil.copytree(snapshots, folder / "snapshots")
    case = smoke_case(scores, release_rows)
    (folder / "case.json").write_text(json.dumps(asdict(case), default=str))
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


@pytest.mark.slow
def test_build_refuses_a_release_without_its_model_artifact(
    container_ready: None, release_dir: Path
) -> None:
    (release_dir / "bundle" / "model.cbm").unlink()
    result = runner.invoke(app, ["release", "build", str(release_dir)])
    assert result.exit_code == 2 and "model artifact" in result.output


@pytest.mark.slow
def test_smoke_passes_on_a_good_release(image_v1: BuiltImage, release_dir: Path) -> None:
    result = runner.invoke(app, ["release", "smoke", image_v1.image, str(release_dir)])
    assert result.exit_code == 0, result.output
    assert "smoke_s=" in result.stdout


@pytest.mark.slow
def test_smoke_fails_when_the_lookup_disagrees_with_the_batch_score(
    image_v1: BuiltImage, release_dir: Path
) -> None:
    case = json.loads((release_dir / "case.json").read_text())
    case["score"] = case["score"] + 0.25
    (release_dir / "case.json").write_text(json.dumps(case))
    result = runner.invoke(app, ["release", "smoke", image_v1.image, str(release_dir)])
    assert result.exit_code == 2 and "batch score" in result.output


@pytest.mark.slow
def test_smoke_fails_on_an_unhealthy_image(unhealthy_image: str, release_dir: Path) -> None:
    result = runner.invoke(app, ["release", "smoke", unhealthy_image, str(release_dir)])
    assert result.exit_code == 2 and "release smoke failed" in result.output


def test_verify_fails_when_nothing_is_live(state: Path) -> None:
    result = runner.invoke(app, ["release", "verify", "v0.0.1"])
    assert result.exit_code == 2 and "nothing is live" in result.output


def test_rollback_reassigns_prod_and_reports_a_rejected_push(
    promoted: tuple[str, str], origin: Path, settings: Settings
) -> None:
    v1, v2 = promoted
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'registry is read-only' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = runner.invoke(app, ["release", "rollback", v2, "--reason", "smoke failed"])
    assert result.exit_code == 1, result.output
    assert _outputs(result.stdout)["champion"] == v1
    assert "registry push" in result.output
    alerts = [json.loads(line) for line in alerts_path(get_settings()).read_text().splitlines()]
    failed = [a for a in alerts if a["kind"] == "deploy_failed"]
    assert failed and failed[-1]["details"]["champion"] == v1
    hook.unlink()
    retried = runner.invoke(app, ["model", "push"])
    assert retried.exit_code == 0, retried.output
