"""Session fixtures shared by tests/serving and tests/reliability/serving: two tiny real model
versions, their scores frames and a published snapshot (import them into a conftest)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from pydantic import SecretStr
from starlette.exceptions import StarletteDeprecationWarning

# Starlette 1.10 asks for httpx2 in its TestClient; httpx (in the lock) still works. Import it once
# here with that one warning silenced, so the warnings-as-errors policy holds for everything else.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from pipelines.settings import BUNDLED_SPEC
from pipelines.snapshot import publish_snapshot
from pipelines.spec import load_spec
from serving.config import ServingSettings
from serving.main import create_app
from support.serving import TOKEN, fit_bundle, scores_frame

SCORED_ROWS = 400


@pytest.fixture(scope="session")
def train_rows(acs: pl.DataFrame) -> pl.DataFrame:
    return acs.slice(0, 3000)


@pytest.fixture(scope="session")
def scored_rows(acs: pl.DataFrame) -> pl.DataFrame:
    """Entities in the test snapshots (a shuffled slice, so publishing has to sort them)."""
    return acs.slice(50_000, SCORED_ROWS).sample(fraction=1.0, shuffle=True, seed=3)


@pytest.fixture(scope="session")
def bundle_v1(tmp_path_factory: pytest.TempPathFactory, train_rows: pl.DataFrame) -> Path:
    spec = load_spec(BUNDLED_SPEC)
    return fit_bundle(train_rows, spec, tmp_path_factory.mktemp("v1"), version="v0.0.1", seed=1)


@pytest.fixture(scope="session")
def bundle_v2(tmp_path_factory: pytest.TempPathFactory, train_rows: pl.DataFrame) -> Path:
    spec = load_spec(BUNDLED_SPEC)
    return fit_bundle(train_rows, spec, tmp_path_factory.mktemp("v2"), version="v0.0.2", seed=2)


@pytest.fixture(scope="session")
def scores_v1(bundle_v1: Path, scored_rows: pl.DataFrame) -> pl.DataFrame:
    return scores_frame(bundle_v1, scored_rows, load_spec(BUNDLED_SPEC))


@pytest.fixture(scope="session")
def scores_v2(bundle_v2: Path, scored_rows: pl.DataFrame) -> pl.DataFrame:
    return scores_frame(bundle_v2, scored_rows, load_spec(BUNDLED_SPEC), batch_id="2015-02")


@pytest.fixture
def snapshots(state: Path, bundle_v1: Path, scores_v1: pl.DataFrame) -> Path:
    """The state root's snapshot folder with v0.0.1 published as CURRENT."""
    directory = state / "snapshots"
    publish_snapshot(scores_v1, bundle_v1, BUNDLED_SPEC, directory)
    return directory


@pytest.fixture
def serving_settings(snapshots: Path) -> ServingSettings:
    return ServingSettings(admin_token=SecretStr(TOKEN), reload_interval_s=0)


@pytest.fixture
def client(serving_settings: ServingSettings) -> Iterator[TestClient]:
    with TestClient(create_app(serving_settings)) as test_client:
        yield test_client
