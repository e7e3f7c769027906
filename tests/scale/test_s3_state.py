"""Model artifacts (DVC remote) and serving snapshots on a real S3 endpoint; replicas follow it."""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path

import polars as pl
from pydantic import SecretStr
from starlette.exceptions import StarletteDeprecationWarning
from support.scoring import promote_bundle
from support.servers import S3State
from support.serving import TOKEN, fit_bundle, scores_frame

from pipelines.deployment_repo import fetch_model
from pipelines.registry import version_commit
from pipelines.settings import BUNDLED_SPEC, get_settings
from pipelines.snapshot import publish_snapshot
from pipelines.snapshot_store import pull_current, push_current, remote_current
from pipelines.spec import DatasetSpec
from serving.config import ServingSettings
from serving.main import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


def _keys(s3_state: S3State, prefix: str) -> list[str]:
    listing = s3_state.client().list_objects_v2(Bucket=s3_state.bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_model_artifacts_go_to_the_s3_dvc_remote_and_come_back(
    s3_state: S3State, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    settings = get_settings()
    assert settings.remote == f"{s3_state.store}/dvc-remote"
    bundle = fit_bundle(acs.slice(0, 1500), spec, tmp_path / "v1", version="v0.0.1", seed=1)
    champion = promote_bundle(settings, bundle)
    config = (settings.registry / ".dvc" / "config").read_text()
    assert f"endpointurl = {s3_state.endpoint}" in config
    assert "secret" not in config.lower()  # credentials stay in the environment
    assert _keys(s3_state, "prod/dvc-remote/")  # dvc push reached the bucket

    # a fresh machine: no DVC cache, no model cache -> the model comes from S3
    shutil.rmtree(settings.registry / ".dvc" / "cache", ignore_errors=True)
    shutil.rmtree(settings.state_root / "model-cache", ignore_errors=True)
    fetched = fetch_model(settings, champion.version, version_commit(settings, champion.version))
    assert (fetched / "model.cbm").read_bytes() == (bundle / "model.cbm").read_bytes()


def test_the_service_follows_a_new_snapshot_published_to_s3(
    s3_state: S3State, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    settings = get_settings()
    store = settings.snapshot_store
    assert store == f"{s3_state.store}/snapshots"
    rows = acs.slice(50_000, 200)
    v1 = fit_bundle(acs.slice(0, 1500), spec, tmp_path / "v1", version="v0.0.1", seed=1)
    v2 = fit_bundle(acs.slice(0, 1500), spec, tmp_path / "v2", version="v0.0.2", seed=2)
    writer = tmp_path / "writer-snapshots"  # the publishing machine's staging folder
    publish_snapshot(scores_frame(v1, rows, spec), v1, BUNDLED_SPEC, writer)
    first = push_current(writer, store)
    assert remote_current(store) == first

    cache = tmp_path / "replica-cache"  # the replica: nothing local but its cache
    replica = ServingSettings(
        admin_token=SecretStr(TOKEN), reload_interval_s=0.2, snapshot_dir=cache
    )
    entity = int(rows["id"][0])
    with TestClient(create_app(replica)) as client:
        assert client.get(f"/scores/{entity}").json()["model_version"] == "v0.0.1"
        publish_snapshot(scores_frame(v2, rows, spec, batch_id="2015-02"), v2, BUNDLED_SPEC, writer)
        second = push_current(writer, store)
        deadline = time.monotonic() + 60
        version = "v0.0.1"
        while version != "v0.0.2" and time.monotonic() < deadline:
            time.sleep(0.2)
            version = client.get(f"/scores/{entity}").json()["model_version"]
        assert version == "v0.0.2"
    assert (cache / "CURRENT").read_text().strip() == second
    assert pull_current(store, cache) == second  # already cached: nothing to download
