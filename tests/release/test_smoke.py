"""Smoke step against real containers: passes on a good release, fails clearly on bad ones."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import polars as pl
import pytest
from support.release import smoke_case

from pipelines.model_bundle import MODEL_FILE
from pipelines.snapshot import current_id
from scoreloop.release.build import BuiltImage, build_image
from scoreloop.release.errors import ReleaseError
from scoreloop.release.smoke import smoke_test

pytestmark = pytest.mark.slow
Release = tuple[Path, Path, pl.DataFrame]


def test_smoke_passes_on_a_good_release(
    image_v1: BuiltImage, release_v1: Release, release_rows: pl.DataFrame
) -> None:
    _, snapshots, scores = release_v1
    case = smoke_case(scores, release_rows)
    result = smoke_test(image_v1.image, snapshots, case)
    assert result.uid == 10001
    assert result.healthcheck is True
    assert result.model_version == "v0.0.1"
    assert result.lookup_score == case.score
    assert result.predict_score == pytest.approx(case.score, abs=1e-9)


def test_smoke_fails_when_the_model_artifact_is_missing(
    image_v1: BuiltImage, release_v1: Release, release_rows: pl.DataFrame, release_root: Path
) -> None:
    _, snapshots, scores = release_v1
    broken = release_root / "snapshots-no-model"
    shutil.copytree(snapshots, broken)
    snapshot_id = current_id(broken)
    assert snapshot_id is not None
    (broken / snapshot_id / MODEL_FILE).unlink()
    with pytest.raises(ReleaseError, match=r"refuses the mounted snapshot.*model") as info:
        smoke_test(image_v1.image, broken, smoke_case(scores, release_rows), ready_timeout=30)
    assert "fix:" in str(info.value)


def test_build_refuses_a_bundle_without_its_model_artifact(
    release_v1: Release, release_root: Path
) -> None:
    bundle, snapshots, _ = release_v1
    broken = release_root / "bundle-no-model"
    shutil.copytree(bundle, broken)
    (broken / MODEL_FILE).unlink()
    with pytest.raises(ReleaseError, match=r"model artifact .*model.cbm is missing.*dvc pull"):
        build_image(broken, snapshots)


def test_smoke_fails_on_an_unhealthy_image(
    unhealthy_image: str, release_v1: Release, release_rows: pl.DataFrame
) -> None:
    _, snapshots, scores = release_v1
    with pytest.raises(ReleaseError, match=r"not ready after 8 s"):
        smoke_test(
            unhealthy_image,
            snapshots,
            smoke_case(scores, release_rows),
            expected_version="v0.0.1",
            ready_timeout=8,
        )


def test_smoke_fails_when_the_lookup_disagrees_with_the_batch_score(
    image_v1: BuiltImage, release_v1: Release, release_rows: pl.DataFrame
) -> None:
    _, snapshots, scores = release_v1
    case = smoke_case(scores, release_rows)
    wrong = dataclasses.replace(case, score=case.score + 0.05)
    with pytest.raises(ReleaseError, match=r"GET /scores for entity .* batch score"):
        smoke_test(image_v1.image, snapshots, wrong)
