"""Blue/green on this host behind the haproxy front: no failed request, verify, rollback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from scoreloop.release.build import BuiltImage
from scoreloop.release.errors import ReleaseError
from scoreloop.release.front import front_pid
from scoreloop.release.load import LookupLoad
from scoreloop.release.rollback import rollback
from scoreloop.release.rollout import rollout, teardown
from scoreloop.release.state import load_state
from scoreloop.release.verify import verify
from scoreloop.serve_process import free_port

pytestmark = pytest.mark.slow
Release = tuple[Path, Path, pl.DataFrame]


@pytest.fixture
def deploy_dir(tmp_path: Path) -> Iterator[Path]:
    """A deployment of its own (containers named after the test), torn down by name after."""
    directory = tmp_path / "deploy"
    yield directory
    teardown(directory)
    assert front_pid(directory) is None


def _model_version(url: str) -> str:
    return str(httpx.get(f"{url}/model", timeout=5).json()["version"])


def test_rollout_under_load_has_no_failed_request_then_rollback(
    deploy_dir: Path,
    image_v1: BuiltImage,
    image_v2: BuiltImage,
    release_v1: Release,
    release_v2: Release,
) -> None:
    name = f"sl-test-{deploy_dir.parent.name[-12:]}".replace("_", "-").lower()
    first = rollout(
        image_v1.image, release_v1[1], deploy_dir=deploy_dir, name=name, front_port=free_port()
    )
    assert first.colour == "blue" and first.previous is None
    assert verify("v0.0.1", deploy_dir=deploy_dir).colour == "blue"

    ids = release_v1[2]["entity_id"].to_list()
    with LookupLoad(first.front_url, ids) as load:
        second = rollout(image_v2.image, release_v2[1], deploy_dir=deploy_dir)
        after_switch = len(load.versions)
        while len(load.versions) < after_switch + 50 and not load.failures:
            time.sleep(0.01)
    print(f"rollout under load: {load.ok} ok, {len(load.failures)} failed, {second}")
    assert load.failures == []
    assert load.ok > 100
    assert {"v0.0.1", "v0.0.2"} <= set(load.versions)
    assert load.versions[-1] == "v0.0.2"
    assert (second.colour, second.previous) == ("green", "blue")
    assert verify("v0.0.2", deploy_dir=deploy_dir).model_version == "v0.0.2"

    back = rollback(deploy_dir=deploy_dir)
    assert (back.colour, back.model_version) == ("blue", "v0.0.1")
    assert _model_version(first.front_url) == "v0.0.1"
    assert load_state(deploy_dir).live == "blue"


def test_failed_rollout_keeps_the_old_colour_serving(
    deploy_dir: Path, image_v1: BuiltImage, unhealthy_image: str, release_v1: Release
) -> None:
    name = f"sl-fail-{deploy_dir.parent.name[-12:]}".replace("_", "-").lower()
    first = rollout(
        image_v1.image, release_v1[1], deploy_dir=deploy_dir, name=name, front_port=free_port()
    )
    with pytest.raises(ReleaseError, match=r"aborted, blue keeps serving.*not ready"):
        rollout(
            unhealthy_image,
            release_v1[1],
            deploy_dir=deploy_dir,
            expected_version="v0.0.1",
            ready_timeout=8,
        )
    state = load_state(deploy_dir)
    assert state.live == "blue" and "green" not in state.slots
    assert verify("v0.0.1", deploy_dir=deploy_dir).colour == "blue"
    assert _model_version(first.front_url) == "v0.0.1"
    with pytest.raises(ReleaseError, match="nothing to roll back to"):
        rollback(deploy_dir=deploy_dir)
