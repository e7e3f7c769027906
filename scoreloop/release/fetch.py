"""Fetch a promoted version's release: its model from the DVC remote, its serving snapshot, and a
smoke case, in one folder the image's user can read.

The release folder (``<state root>/releases/<version>-<commit[:12]>`` by default)::

    bundle/      the version's model directory, pulled with ``dvc get`` at the version's commit
                 (the registry clone's cache, then the DVC remote) and loaded once to prove it
    snapshots/   the version's newest published snapshot (from ``settings.snapshots``) and its
                 own CURRENT, so each release mounts its own and a rollback serves the old one
    case.json    a known entity and its batch score under the version (for ``smoke``)

The snapshot must carry the very model file that was fetched: a corrupt or swapped artifact in
the DVC remote stops the release here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.deployment_repo import MODEL_PATH, DeploymentRepoError, fetch_file
from pipelines.model_bundle import MODEL_FILE, ModelLoadError, load_bundle
from pipelines.registry import RegistryError, version_commit
from pipelines.settings import Settings, get_settings
from pipelines.snapshot import CURRENT_FILE, SnapshotError, SnapshotManifest, read_manifest
from scoreloop.release.errors import ReleaseError
from scoreloop.release.smoke import SmokeCase, smoke_case_from_tables

BUNDLE_DIR = "bundle"
SNAPSHOTS_DIR = "snapshots"
CASE_FILE = "case.json"


@dataclass(frozen=True)
class FetchedRelease:
    version: str
    commit: str
    directory: Path
    snapshot_id: str

    @property
    def bundle_dir(self) -> Path:
        return self.directory / BUNDLE_DIR

    @property
    def snapshot_dir(self) -> Path:
        return self.directory / SNAPSHOTS_DIR


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot_of(snapshots: Path, version: str) -> tuple[Path, SnapshotManifest]:
    found: list[tuple[SnapshotManifest, Path]] = []
    for directory in sorted(snapshots.iterdir()) if snapshots.is_dir() else []:
        if directory.is_dir() and not directory.name.startswith("."):
            try:
                manifest = read_manifest(directory)
            except SnapshotError:
                continue
            if manifest.model_version == version:
                found.append((manifest, directory))
    if not found:
        raise ReleaseError(
            f"no serving snapshot of {version} in {snapshots}: rescore the population with it "
            "(`scoreloop rescore`, or the Dagster serving_snapshot asset) before deploying"
        )
    manifest, directory = max(found, key=lambda item: item[0].created_at)
    return directory, manifest


def _readable(root: Path) -> None:
    # The image runs as uid 10001: the mounted release must be world-readable.
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def read_case(release_dir: Path) -> SmokeCase:
    """The smoke case a fetch wrote (``case.json``)."""
    try:
        raw = json.loads((release_dir / CASE_FILE).read_text())
        return SmokeCase(**raw)
    except (OSError, ValueError, TypeError) as exc:
        raise ReleaseError(
            f"{release_dir / CASE_FILE} is missing or unreadable ({exc}): run "
            "`scoreloop release fetch` first"
        ) from exc


def fetch(
    version: str, out: Path | None = None, settings: Settings | None = None
) -> FetchedRelease:
    """Materialise the release of ``version`` in ``out`` (replaced when it exists).

    Raises:
        ReleaseError: the version is unknown; its artifacts cannot be pulled or do not load
            (missing or corrupt in the DVC remote); no snapshot of it is published, or the
            snapshot's model differs from the fetched one; no batch score of it to smoke-test.
    """
    settings = settings or get_settings()
    try:
        commit = version_commit(settings, version)
    except RegistryError as exc:
        raise ReleaseError(str(exc)) from exc
    out = out or settings.state_root / "releases" / f"{version}-{commit[:12]}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    bundle = out / BUNDLE_DIR
    try:
        fetch_file(settings.registry, MODEL_PATH, commit, bundle)
        metadata = load_bundle(bundle).metadata
    except (DeploymentRepoError, ModelLoadError) as exc:
        raise ReleaseError(
            f"the artifacts of {settings.model_name} {version} (commit {commit[:12]}) cannot be "
            f"used: {exc}; re-push them (`dvc push` in the registry) or promote another version"
        ) from exc
    if metadata.version not in (None, version):
        raise ReleaseError(f"the model fetched for {version} says it is {metadata.version}")
    source, manifest = _snapshot_of(settings.snapshots, version)
    if _sha256(source / MODEL_FILE) != _sha256(bundle / MODEL_FILE):
        raise ReleaseError(
            f"snapshot {manifest.snapshot_id} of {version} in {settings.snapshots} carries another "
            f"model file than the one the DVC remote holds for {version}: the artifact in the "
            "remote is corrupt or was replaced; re-push it, or rescore with the right model"
        )
    snapshots = out / SNAPSHOTS_DIR
    shutil.copytree(source, snapshots / manifest.snapshot_id)
    (snapshots / CURRENT_FILE).write_text(manifest.snapshot_id + "\n")
    case = smoke_case_from_tables(version, settings)
    (out / CASE_FILE).write_text(json.dumps(asdict(case), default=str, indent=2) + "\n")
    _readable(out)
    return FetchedRelease(
        version=version, commit=commit, directory=out, snapshot_id=manifest.snapshot_id
    )
