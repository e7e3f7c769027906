"""Fixtures for the release tests: real images built once per session, real snapshots.

Needs a container engine. As root without podman, deploy/container/setup.sh installs it (and the
base image); a non-root user without podman skips, saying why; under CI=true nothing skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

# The tiny-model helpers of the serving tests (tests/serving is not a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from support.serving import fit_bundle, scores_frame

from pipelines.settings import BUNDLED_SPEC
from pipelines.snapshot import publish_snapshot
from pipelines.spec import load_spec
from scoreloop.release.build import BuiltImage, build_image
from scoreloop.release.engine import LOCAL_BASE_IMAGE, SETUP_SCRIPT, container_engine

#: Wheels are keyed by the hash of the requirements, so one folder serves every session.
BUILD_CACHE = Path(tempfile.gettempdir()) / "scoreloop-test-build"


@pytest.fixture(scope="session")
def container_ready() -> None:
    """podman and the local base image are there (installed when root), or the test skips."""
    is_root = os.geteuid() == 0
    on_ci = os.environ.get("CI", "").lower() == "true"
    if not is_root and shutil.which("podman") is None:
        reason = "no container engine: podman is absent and installing it needs root"
        if on_ci:
            pytest.fail(f"{reason} (CI=true never skips: run .ci/run as root)")
        print(f"skipping release tests: {reason}")
        pytest.skip(reason)
    if is_root and (
        shutil.which("podman") is None or not container_engine().image_exists(LOCAL_BASE_IMAGE)
    ):
        subprocess.run([str(SETUP_SCRIPT)], check=True)


@pytest.fixture(scope="session")
def release_root() -> Iterator[Path]:
    """A folder the image's user (uid 10001) can read: mounted snapshots live here."""
    root = Path(tempfile.mkdtemp(prefix="scoreloop-release-", dir="/var/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def release_rows(acs: pl.DataFrame) -> pl.DataFrame:
    return acs.slice(60_000, 300)


def _release(
    root: Path, rows: pl.DataFrame, train: pl.DataFrame, version: str, seed: int
) -> tuple[Path, Path, pl.DataFrame]:
    spec = load_spec(BUNDLED_SPEC)
    bundle = fit_bundle(train, spec, root / f"bundle-{version}", version=version, seed=seed)
    scores = scores_frame(bundle, rows, spec)
    snapshots = root / f"snapshots-{version}"
    publish_snapshot(scores, bundle, BUNDLED_SPEC, snapshots)
    for path in [snapshots, *snapshots.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return bundle, snapshots, scores


@pytest.fixture(scope="session")
def release_v1(
    release_root: Path, release_rows: pl.DataFrame, acs: pl.DataFrame
) -> tuple[Path, Path, pl.DataFrame]:
    """(bundle dir, snapshots dir, scores) of model v0.0.1."""
    return _release(release_root, release_rows, acs.slice(0, 2000), "v0.0.1", seed=1)


@pytest.fixture(scope="session")
def release_v2(
    release_root: Path, release_rows: pl.DataFrame, acs: pl.DataFrame
) -> tuple[Path, Path, pl.DataFrame]:
    """(bundle dir, snapshots dir, scores) of model v0.0.2."""
    return _release(release_root, release_rows, acs.slice(0, 2000), "v0.0.2", seed=2)


@pytest.fixture(scope="session")
def image_v1(container_ready: None, release_v1: tuple[Path, Path, pl.DataFrame]) -> BuiltImage:
    bundle, snapshots, _ = release_v1
    return build_image(bundle, snapshots, build_dir=BUILD_CACHE)


@pytest.fixture(scope="session")
def image_v2(container_ready: None, release_v2: tuple[Path, Path, pl.DataFrame]) -> BuiltImage:
    bundle, snapshots, _ = release_v2
    return build_image(bundle, snapshots, build_dir=BUILD_CACHE)


@pytest.fixture(scope="session")
def unhealthy_image(image_v1: BuiltImage, release_root: Path) -> Iterator[str]:
    """The v1 image whose process never serves (it sleeps): never ready, HEALTHCHECK fails."""
    context = release_root / "unhealthy"
    context.mkdir()
    (context / "Containerfile").write_text(
        f"FROM {image_v1.image}\n"
        'ENTRYPOINT ["python", "-c", "import time; time.sleep(3600)"]\n'
        "CMD []\n"
    )
    tag = "localhost/scoreloop-serving-unhealthy:test"
    engine = container_engine()
    engine.run(
        [
            "build",
            "--format",
            "docker",
            "-t",
            tag,
            "-f",
            str(context / "Containerfile"),
            str(context),
        ],
        what="building the unhealthy test image",
    )
    yield tag
    engine.run(["rmi", "--force", tag], what="rmi", check=False)
