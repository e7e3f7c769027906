"""The snapshot being served, and how it is replaced.

``SnapshotStore.current`` is one reference. A reload builds the next :class:`Snapshot` completely
(checksum, schema, model, index) and only then assigns it; a request that already took the old
reference keeps using it until it answers. A bad snapshot is refused and the last good one stays.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipelines.snapshot import (
    LoadedSnapshot,
    SnapshotError,
    SnapshotManifest,
    load_snapshot,
    read_current,
)
from pipelines.spec import DType
from serving.index import ScoreIndex
from serving.metrics import Metrics, SnapshotInfo

logger = logging.getLogger("scoreloop.serving")

ReloadResultKind = Literal["swapped", "unchanged", "refused", "empty"]


@dataclass(frozen=True)
class Snapshot:
    """A loaded, verified snapshot plus its lookup index: what a request works with."""

    loaded: LoadedSnapshot
    index: ScoreIndex
    loaded_at: float

    @property
    def manifest(self) -> SnapshotManifest:
        return self.loaded.manifest

    @property
    def snapshot_id(self) -> str:
        return self.loaded.manifest.snapshot_id


@dataclass(frozen=True)
class ReloadResult:
    result: ReloadResultKind
    snapshot_id: str | None
    error: str | None = None
    seconds: float = 0.0


def open_snapshot(
    snapshots_dir: Path,
    manifest: SnapshotManifest,
    *,
    id_dtype: DType | None,
    verify_checksum: bool = True,
) -> Snapshot:
    """Load and index one snapshot (raises SnapshotError when it is corrupt or incompatible)."""
    loaded = load_snapshot(
        snapshots_dir, manifest, expected_id_dtype=id_dtype, verify_checksum=verify_checksum
    )
    try:
        index = ScoreIndex(loaded.scores)
    except (ValueError, TypeError) as exc:
        raise SnapshotError(f"snapshot {manifest.snapshot_id}: cannot index: {exc}") from exc
    return Snapshot(loaded=loaded, index=index, loaded_at=time.time())


class SnapshotStore:
    """Holds the current snapshot and follows ``<snapshots_dir>/CURRENT``."""

    def __init__(
        self,
        snapshots_dir: Path,
        *,
        id_dtype: DType,
        metrics: Metrics,
        verify_checksum: bool = True,
    ) -> None:
        self.snapshots_dir = Path(snapshots_dir)
        self.id_dtype: DType = id_dtype
        self.metrics = metrics
        self.verify_checksum = verify_checksum
        self._current: Snapshot | None = None
        self._lock = threading.Lock()
        self._refused_id: str | None = None
        self.last_error: str | None = None

    @property
    def current(self) -> Snapshot | None:
        return self._current

    def install(self, snapshot: Snapshot) -> None:
        """Make ``snapshot`` the current one (one reference assignment)."""
        self._current = snapshot
        manifest = snapshot.manifest
        self.metrics.set_snapshot(
            SnapshotInfo(
                snapshot_id=manifest.snapshot_id,
                model_name=manifest.model_name,
                model_version=manifest.model_version,
                rows=manifest.row_count,
                loaded_at=snapshot.loaded_at,
                created_at=manifest.created_at.timestamp(),
            )
        )

    def _refuse(self, snapshot_id: str | None, error: str, start: float) -> ReloadResult:
        self._refused_id = snapshot_id
        self.last_error = error
        serving = self._current.snapshot_id if self._current else None
        logger.error(
            "snapshot %s refused, still serving %s: %s", snapshot_id or "<CURRENT>", serving, error
        )
        self.metrics.observe_reload("refused", error)
        return ReloadResult("refused", snapshot_id, error, time.perf_counter() - start)

    def reload(self, *, force: bool = False) -> ReloadResult:
        """Load CURRENT if it names a new snapshot; refuse it (and keep the old one) if bad.

        A snapshot refused once is not retried on every poll (``force`` retries it).
        """
        start = time.perf_counter()
        with self._lock:
            try:
                manifest = read_current(self.snapshots_dir)
            except SnapshotError as exc:
                return self._refuse(None, str(exc), start)
            if manifest is None:
                self.metrics.observe_reload("empty")
                return ReloadResult("empty", None, None, time.perf_counter() - start)
            current = self._current
            if current is not None and current.snapshot_id == manifest.snapshot_id:
                if self._refused_id is not None or self.last_error is not None:
                    # CURRENT was pointed back at the snapshot being served: nothing refused.
                    self._refused_id = None
                    self.last_error = None
                    self.metrics.clear_refusal()
                self.metrics.observe_reload("unchanged")
                return ReloadResult("unchanged", manifest.snapshot_id)
            if manifest.snapshot_id == self._refused_id and not force:
                self.metrics.observe_reload("unchanged")
                return ReloadResult("unchanged", current.snapshot_id if current else None)
            try:
                snapshot = open_snapshot(
                    self.snapshots_dir,
                    manifest,
                    id_dtype=self.id_dtype,
                    verify_checksum=self.verify_checksum,
                )
            except SnapshotError as exc:
                return self._refuse(manifest.snapshot_id, str(exc), start)
            self.install(snapshot)
            self._refused_id = None
            self.last_error = None
            seconds = time.perf_counter() - start
            self.metrics.observe_reload("swapped")
            logger.info(
                "serving snapshot %s (model %s:%s, %d entities, loaded in %.2f s)",
                manifest.snapshot_id,
                manifest.model_name,
                manifest.model_version,
                manifest.row_count,
                seconds,
            )
            return ReloadResult("swapped", manifest.snapshot_id, None, seconds)

    async def follow(self, interval_s: float) -> None:
        """Poll CURRENT every ``interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.reload)
            except Exception:  # a poll must never kill the follower; the error is logged
                logger.exception("snapshot poll failed unexpectedly")
