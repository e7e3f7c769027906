"""Snapshot integrity, the reload metric, token strength and the dev-host guard (in process)."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import polars as pl
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient
from support.serving import Scrape

from pipelines.settings import BUNDLED_SPEC
from pipelines.snapshot import (
    CARD_FILE,
    MANIFEST_FILE,
    SCORES_FILE,
    SnapshotError,
    load_snapshot,
    publish_snapshot,
    read_current,
)
from serving.config import (
    MAKE_TOKEN,
    ConfigError,
    ServingSettings,
    check_admin_token,
    check_dev_host,
    token_entropy_bits,
)
from serving.main import create_app
from serving.metrics import Metrics
from serving.store import SnapshotStore


def test_published_files_are_read_only_and_all_checksummed(snapshots: Path) -> None:
    manifest = read_current(snapshots)
    assert manifest is not None
    folder = snapshots / manifest.snapshot_id
    for path in folder.iterdir():
        assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), path
    assert set(manifest.files) == {p.name for p in folder.iterdir()} - {SCORES_FILE, MANIFEST_FILE}


def test_a_changed_model_file_is_refused(snapshots: Path) -> None:
    manifest = read_current(snapshots)
    assert manifest is not None
    model = snapshots / manifest.snapshot_id / "model.cbm"
    model.chmod(0o644)  # what an operator (or root, who ignores the bit) could do
    with model.open("r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(SnapshotError, match=r"model\.cbm .*changed after publishing"):
        load_snapshot(snapshots, manifest)


def test_served_snapshot_is_a_copy_in_memory(client: TestClient, snapshots: Path) -> None:
    """Truncating, overwriting and deleting every served file changes no answer."""
    manifest = read_current(snapshots)
    assert manifest is not None
    entity = client.app.state.store.current.index.row(0)["entity_id"]  # type: ignore[attr-defined]
    before = (client.get(f"/scores/{entity}").json(), client.get("/model").json())
    folder = snapshots / manifest.snapshot_id
    os.truncate(folder / SCORES_FILE, 100)
    (folder / CARD_FILE).unlink()
    after = (client.get(f"/scores/{entity}").json(), client.get("/model").json())
    assert after == before
    assert before[1]["card_summary"]


def test_reload_metric_keeps_a_refusal_until_a_good_snapshot_is_loaded(
    snapshots: Path, bundle_v2: Path, scores_v2: pl.DataFrame, tmp_path: Path
) -> None:
    metrics = Metrics()
    store = SnapshotStore(snapshots, id_dtype="int", metrics=metrics)

    def success() -> str:
        return str(int(Scrape(metrics.render()).value("scoreloop_snapshot_last_reload_success")))

    assert store.reload().result == "swapped"
    good = store.current
    assert good is not None
    bad = publish_snapshot(scores_v2, bundle_v2, BUNDLED_SPEC, snapshots)
    os.truncate(snapshots / bad.snapshot_id / SCORES_FILE, 1000)
    assert store.reload().result == "refused"
    assert success() == "0"
    for _ in range(3):  # the follower's next polls: CURRENT still names the refused one
        assert store.reload().result == "unchanged"
        assert success() == "0"
    publish_snapshot(scores_v2, bundle_v2, BUNDLED_SPEC, snapshots)
    assert store.reload().result == "swapped"
    assert success() == "1"


@pytest.mark.parametrize(
    "token", ["xxxxxxxxxxxxxxxx", "changemechangeme", "abcdefghijklmnopqrstuvwx", "0123456789" * 4]
)
def test_weak_tokens_are_refused_with_how_to_make_one(token: str) -> None:
    settings = ServingSettings(admin_token=SecretStr(token))
    with pytest.raises(ConfigError, match="too weak") as raised:
        check_admin_token(settings)
    assert MAKE_TOKEN in str(raised.value)
    assert 'python -c "import secrets; print(secrets.token_urlsafe(32))"' in str(raised.value)
    assert token not in str(raised.value)


def test_random_tokens_pass() -> None:
    for make in (secrets.token_urlsafe(16), secrets.token_urlsafe(32), secrets.token_hex(16)):
        check_admin_token(ServingSettings(admin_token=SecretStr(make)))
    assert token_entropy_bits("x" * 64) == 0.0


def test_dev_mode_is_refused_off_loopback() -> None:
    dev = ServingSettings(dev_mode=True)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        check_dev_host(dev, host)
    for host in ("0.0.0.0", "::", "10.0.0.7", "example.org"):
        with pytest.raises(ConfigError, match="non-loopback"):
            check_dev_host(dev, host)
    check_dev_host(ServingSettings(dev_mode=False), "0.0.0.0")


def test_body_limit_is_a_setting(serving_settings: ServingSettings) -> None:
    settings = serving_settings.model_copy(update={"max_body_bytes": 2048})
    with TestClient(create_app(settings)) as small:
        ids = list(range(100_000, 101_000))  # ~8 KB of JSON
        response = small.post("/scores/lookup", json={"ids": ids})
        assert response.status_code == 413
        assert "SCORELOOP_MAX_BODY_BYTES" in response.json()["detail"]
        assert small.post("/scores/lookup", json={"ids": ids[:100]}).status_code == 200
