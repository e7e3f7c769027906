"""Follow serving snapshots published to the object store (``SCORELOOP_OBJECT_STORE``).

A replica keeps a local cache (its ``SCORELOOP_SNAPSHOT_DIR``): each poll pulls the snapshot the
store's ``CURRENT`` names into the cache (:func:`pipelines.snapshot_store.pull_current`), then
:meth:`serving.store.SnapshotStore.reload` loads it from there with every usual check, so a bad
snapshot on the store is refused exactly like a bad local one and the last good one stays.
"""

from __future__ import annotations

import asyncio
import logging

from pipelines.snapshot_store import pull_current
from serving.config import ServingSettings
from serving.store import ReloadResult, SnapshotStore

logger = logging.getLogger("scoreloop.serving")


def pull_and_reload(store: SnapshotStore, settings: ServingSettings) -> ReloadResult:
    """Pull the store's current snapshot into the cache (when a store is configured), reload."""
    if settings.snapshot_store:
        try:
            pull_current(settings.snapshot_store, settings.snapshots, settings)
        except Exception as exc:  # an unreachable store must not stop serving the cache
            logger.error(
                "cannot pull the snapshot from %s, serving the cache: %s",
                settings.snapshot_store,
                exc,
            )
    return store.reload()


async def follow(store: SnapshotStore, settings: ServingSettings, interval_s: float) -> None:
    """Pull and reload every ``interval_s`` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(pull_and_reload, store, settings)
        except Exception:  # a poll must never kill the follower; the error is logged
            logger.exception("snapshot poll failed unexpectedly")
