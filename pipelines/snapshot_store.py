"""Serving snapshots on the object store: publish the local snapshot there, pull it into a cache.

The store mirrors the local layout (:mod:`pipelines.snapshot`)::

    <store>/<snapshot_id>/{scores.arrow, model.cbm, metadata.json, spec.yaml, manifest.json, ...}
    <store>/CURRENT        the snapshot id replicas serve

:func:`push_current` uploads the snapshot's files first and writes ``CURRENT`` last (one object
put, atomic on S3), so a replica never sees a pointer to a half-uploaded snapshot.
:func:`pull_current` downloads what ``CURRENT`` names into a local cache folder (staged, then
renamed into place) and swaps the cache's own ``CURRENT``; the lookup service's
:class:`serving.store.SnapshotStore` then loads and memory-maps it from the cache as from any
local snapshots folder, checksum included. Kept apart from :mod:`pipelines.snapshot` so the
snapshot format knows nothing of object stores.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from pipelines.object_store import filesystem_for
from pipelines.settings import Settings
from pipelines.snapshot import CURRENT_FILE, MANIFEST_FILE, SnapshotError, current_id

_CHUNK = 8 << 20


def _store(uri: str, settings: Settings | None) -> tuple[pafs.FileSystem, str]:
    filesystem, (root,) = filesystem_for([uri.rstrip("/")], settings)
    return filesystem, root


def push_current(snapshots_dir: Path, store_uri: str, settings: Settings | None = None) -> str:
    """Upload the snapshot ``snapshots_dir/CURRENT`` names, then point the store's CURRENT at it.

    Returns the snapshot id. Idempotent: a snapshot already complete in the store (its manifest
    is uploaded last) is not uploaded again.
    """
    snapshot_id = current_id(snapshots_dir)
    if snapshot_id is None:
        raise SnapshotError(f"nothing published under {snapshots_dir}: no CURRENT to push")
    filesystem, root = _store(store_uri, settings)
    source = Path(snapshots_dir) / snapshot_id
    target = f"{root}/{snapshot_id}"
    manifest = f"{target}/{MANIFEST_FILE}"
    if filesystem.get_file_info(manifest).type != pafs.FileType.File:
        files = sorted(p for p in source.iterdir() if p.is_file() and p.name != MANIFEST_FILE)
        for path in [*files, source / MANIFEST_FILE]:  # the manifest last: it marks completion
            pafs.copy_files(str(path), f"{target}/{path.name}", destination_filesystem=filesystem)
    with filesystem.open_output_stream(f"{root}/{CURRENT_FILE}") as out:
        out.write(f"{snapshot_id}\n".encode())
    return snapshot_id


def remote_current(store_uri: str, settings: Settings | None = None) -> str | None:
    """The snapshot id the store's CURRENT names (None when nothing was pushed)."""
    filesystem, root = _store(store_uri, settings)
    try:
        with filesystem.open_input_stream(f"{root}/{CURRENT_FILE}") as stream:
            text = bytes(stream.read()).decode().strip()
    except FileNotFoundError:
        return None
    if not text:
        raise SnapshotError(f"{store_uri}/{CURRENT_FILE} is empty")
    return text


def pull_current(store_uri: str, cache_dir: Path, settings: Settings | None = None) -> str | None:
    """Bring the store's current snapshot into ``cache_dir`` and point the cache's CURRENT at it.

    Returns the snapshot id (None when the store has none yet). A snapshot already in the cache
    is not downloaded again; a download is staged under a hidden name and renamed into place,
    so the cache never holds a partial snapshot under its id.
    """
    snapshot_id = remote_current(store_uri, settings)
    if snapshot_id is None:
        return None
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    local = cache_dir / snapshot_id
    if not (local / MANIFEST_FILE).is_file():
        filesystem, root = _store(store_uri, settings)
        source = f"{root}/{snapshot_id}"
        if filesystem.get_file_info(f"{source}/{MANIFEST_FILE}").type != pafs.FileType.File:
            raise SnapshotError(
                f"{store_uri}/{CURRENT_FILE} names {snapshot_id!r} but {store_uri}/{snapshot_id} "
                f"has no {MANIFEST_FILE}: push it again with push_current"
            )
        staging = cache_dir / f".{snapshot_id}.{uuid.uuid4().hex}"
        try:
            staging.mkdir()
            pafs.copy_files(
                source,
                str(staging),
                source_filesystem=filesystem,
                destination_filesystem=pafs.LocalFileSystem(),
                chunk_size=_CHUNK,
            )
            if local.exists():
                shutil.rmtree(local)
            os.replace(staging, local)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if current_id(cache_dir) != snapshot_id:
        tmp = cache_dir / f".{CURRENT_FILE}.{uuid.uuid4().hex}"
        tmp.write_text(f"{snapshot_id}\n")
        os.replace(tmp, cache_dir / CURRENT_FILE)
    return snapshot_id
