"""Snapshot follow: swap to a new snapshot, refuse corrupt or incompatible ones, keep serving."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import yaml
from pydantic import SecretStr
from starlette.testclient import TestClient
from support.serving import TOKEN, Scrape

from pipelines.settings import BUNDLED_SPEC
from pipelines.snapshot import SCORES_FILE, publish_snapshot
from serving.config import ServingSettings
from serving.main import create_app
from serving.store import SnapshotStore


def _store(client: TestClient) -> SnapshotStore:
    store: SnapshotStore = client.app.state.store  # type: ignore[attr-defined]
    return store


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x5A
    path.write_bytes(bytes(data))


def _string_id_spec(tmp_path: Path) -> Path:
    raw = yaml.safe_load(BUNDLED_SPEC.read_text())
    raw["id"]["dtype"] = "string"
    path = tmp_path / "string_ids.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_reload_swaps_and_old_reference_keeps_answering(
    client: TestClient, snapshots: Path, bundle_v2: Path, scores_v2: pl.DataFrame
) -> None:
    store = _store(client)
    old = store.current
    assert old is not None
    entity = int(scores_v2["entity_id"][0])
    publish_snapshot(scores_v2, bundle_v2, BUNDLED_SPEC, snapshots)
    assert store.reload().result == "swapped"
    new = store.current
    assert new is not None and new.manifest.model_version == "v0.0.2"
    # A request that took the old reference before the swap still reads the old snapshot.
    row = old.index.get(entity)
    assert row is not None and row["model_version"] == "v0.0.1"
    assert client.get(f"/scores/{entity}").json()["model_version"] == "v0.0.2"
    assert store.reload().result == "unchanged"


def test_corrupt_snapshot_is_refused_and_the_last_good_one_serves(
    client: TestClient, snapshots: Path, bundle_v2: Path, scores_v2: pl.DataFrame
) -> None:
    store = _store(client)
    manifest = publish_snapshot(scores_v2, bundle_v2, BUNDLED_SPEC, snapshots)
    _corrupt(snapshots / manifest.snapshot_id / SCORES_FILE)
    result = store.reload()
    assert result.result == "refused"
    assert result.error is not None and "sha256" in result.error
    entity = int(scores_v2["entity_id"][3])
    assert client.get(f"/scores/{entity}").json()["model_version"] == "v0.0.1"
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and "sha256" in ready["last_error"]
    metrics = Scrape(client.get("/metrics").text)
    assert metrics.value("scoreloop_snapshot_reloads_total", result="refused") == 1
    assert metrics.value("scoreloop_snapshot_last_reload_success") == 0
    # Refused once, not retried on every poll; an operator reload retries (and refuses again).
    assert store.reload().result == "unchanged"
    forced = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert forced.status_code == 409
    assert forced.json()["serving"] != manifest.snapshot_id


def test_incompatible_snapshot_is_refused(
    client: TestClient,
    snapshots: Path,
    bundle_v2: Path,
    scores_v2: pl.DataFrame,
    tmp_path: Path,
) -> None:
    store = _store(client)
    string_ids = scores_v2.with_columns(pl.col("entity_id").cast(pl.String))
    publish_snapshot(string_ids, bundle_v2, _string_id_spec(tmp_path), snapshots)
    result = store.reload()
    assert result.result == "refused"
    assert result.error is not None and "id dtype 'string'" in result.error
    assert client.get("/model").json()["version"] == "v0.0.1"
    # A good snapshot published afterwards is taken.
    publish_snapshot(scores_v2, bundle_v2, BUNDLED_SPEC, snapshots)
    assert store.reload().result == "swapped"
    assert client.get("/model").json()["version"] == "v0.0.2"


def test_unreadable_current_pointer_keeps_serving(client: TestClient, snapshots: Path) -> None:
    (snapshots / "CURRENT").write_text("does-not-exist\n")
    result = _store(client).reload()
    assert result.result == "refused"
    assert client.get("/model").json()["version"] == "v0.0.1"


def test_background_follower_picks_up_a_new_snapshot(
    snapshots: Path, bundle_v2: Path, scores_v2: pl.DataFrame
) -> None:
    settings = ServingSettings(admin_token=SecretStr(TOKEN), reload_interval_s=0.05)
    with TestClient(create_app(settings)) as client:
        assert client.get("/model").json()["version"] == "v0.0.1"
        publish_snapshot(scores_v2, bundle_v2, BUNDLED_SPEC, snapshots)
        deadline = time.monotonic() + 10
        version = "v0.0.1"
        while version == "v0.0.1" and time.monotonic() < deadline:
            time.sleep(0.05)
            version = client.get("/model").json()["version"]
        assert version == "v0.0.2"


def test_string_id_service(
    state: Path, bundle_v1: Path, scores_v1: pl.DataFrame, tmp_path: Path
) -> None:
    spec_path = _string_id_spec(tmp_path)
    frame = scores_v1.with_columns(pl.col("entity_id").cast(pl.String).str.zfill(8))
    publish_snapshot(frame, bundle_v1, spec_path, state / "snapshots")
    settings = ServingSettings(admin_token=SecretStr(TOKEN), reload_interval_s=0)
    with TestClient(create_app(settings)) as client:
        some = frame["entity_id"][5]
        body = client.get(f"/scores/{some}").json()
        assert body["entity_id"] == some
        assert client.get("/scores/nope").status_code == 404
        found = client.post("/scores/lookup", json={"ids": [some, "zz"]}).json()
        assert [r["entity_id"] for r in found["found"]] == [some]
        assert found["missing"] == ["zz"]
        schema = client.get("/openapi.json").json()
        param = schema["paths"]["/scores/{entity_id}"]["get"]["parameters"][0]
        assert param["schema"]["type"] == "string"
