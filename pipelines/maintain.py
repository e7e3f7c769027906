"""Housekeeping of the state: vacuum old Delta files, drop leftovers of killed writes.

The step behind ``scoreloop maintain`` and the Dagster ``maintenance_schedule``. What it removes:

- Delta data files no longer referenced by a table's current version and removed (or never
  committed, e.g. written by a killed process) longer than ``retention_hours`` ago, except the
  files of the versions a training set pins: every ``selection.json`` in the deployment repo's
  git history (and its working tree) names the ``validated`` and ``labels`` versions it was built
  from, and those stay readable by time travel.
- 0-byte part files inside a table (a write killed before its first byte reached the disk).
- ``.staging-*`` folders in the snapshots folder older than ``staging_minutes`` (a publish that
  died before its rename; a live publish is younger than that).

The transaction logs (``_delta_log``) are never touched, so every kept version stays readable.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.deployment_repo import SELECTION_FILE, git, is_deployment_repo
from pipelines.settings import Settings

# pipelines.ingest / tables / training_set (pandera, deltalake, polars) are imported where used:
# `scoreloop maintain --help` (and every other CLI command) imports this module for its defaults.

#: Delta files a table no longer uses are kept this long by default (Delta's own default).
DEFAULT_RETENTION_HOURS = 168
#: A ``.staging-*`` snapshot folder older than this is a dead publish.
DEFAULT_STAGING_MINUTES = 60


@dataclass(frozen=True)
class Removed:
    """One removed file or folder, its size and why it went."""

    path: str
    bytes: int
    why: str


@dataclass
class MaintenanceReport:
    """What a maintenance run removed (or would remove, with ``dry_run``)."""

    removed: list[Removed] = field(default_factory=list)
    pinned: dict[str, list[int]] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def bytes_freed(self) -> int:
        return sum(item.bytes for item in self.removed)


def pinned_versions(settings: Settings) -> dict[str, list[int]]:
    """Table name -> the versions that training-set selections in the deployment repo pin."""
    repo = settings.registry
    texts: list[str] = []
    if (repo / SELECTION_FILE).is_file():
        texts.append((repo / SELECTION_FILE).read_text())
    if is_deployment_repo(repo):
        revisions = git(repo, "rev-list", "--all", "--", SELECTION_FILE, check=False).split()
        texts.extend(git(repo, "show", f"{rev}:{SELECTION_FILE}", check=False) for rev in revisions)
    from pipelines.ingest import LABELS, VALIDATED
    from pipelines.training_set import Selection

    pins: dict[str, set[int]] = {VALIDATED: set(), LABELS: set()}
    for text in texts:
        if not text.strip():
            continue
        selection = Selection.from_json(json.loads(text))
        pins[VALIDATED].add(selection.validated_version)
        pins[LABELS].add(selection.labels_version)
    return {name: sorted(versions) for name, versions in pins.items()}


def _tables(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.glob("*/_delta_log") if p.is_dir())


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _vacuum(
    table: Path, retention_hours: int, keep: list[int], dry_run: bool, report: MaintenanceReport
) -> None:
    from pipelines.tables import open_table

    delta = open_table(str(table))
    current = int(delta.version())
    keep = [v for v in keep if v <= current]

    def run(dry: bool) -> list[str]:
        return delta.vacuum(
            retention_hours=retention_hours,
            dry_run=dry,
            enforce_retention_duration=False,
            full=True,  # also files no commit references (a killed write's)
            keep_versions=keep or None,
        )

    listed = run(True)
    sizes = {name: _size(table / name) for name in listed}
    if not dry_run and listed:
        run(False)
    why = f"not in version {current}" + (f" nor pinned versions {keep}" if keep else "")
    seen = {item.path for item in report.removed}
    for name in listed:
        if str(table / name) in seen:
            continue
        report.removed.append(Removed(str(table / name), sizes[name], f"old Delta file ({why})"))


def _empty_parts(table: Path, dry_run: bool, report: MaintenanceReport) -> None:
    from pipelines.tables import open_table

    referenced = set(open_table(str(table)).file_uris())
    for part in table.rglob("*.parquet"):
        if "_delta_log" in part.parts or _size(part) != 0 or part.is_dir():
            continue
        if str(part) in referenced or part.as_uri() in referenced:
            continue
        if not dry_run:
            part.unlink(missing_ok=True)
        report.removed.append(Removed(str(part), 0, "0-byte part file of a killed write"))


def _stale_staging(
    snapshots: Path, minutes: float, dry_run: bool, report: MaintenanceReport
) -> None:
    if not snapshots.is_dir():
        return
    cutoff = time.time() - minutes * 60
    for folder in sorted(snapshots.glob(".staging-*")):
        if not folder.is_dir() or folder.stat().st_mtime > cutoff:
            continue
        size = sum(_size(p) for p in folder.rglob("*") if p.is_file())
        if not dry_run:
            shutil.rmtree(folder, ignore_errors=True)
        report.removed.append(Removed(str(folder), size, "stale snapshot staging folder"))


def maintain(
    settings: Settings,
    *,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    staging_minutes: float = DEFAULT_STAGING_MINUTES,
    dry_run: bool = False,
) -> MaintenanceReport:
    """Vacuum the local Delta tables and remove leftovers of killed writes (see the module).

    Object-store table roots are not vacuumed here (their stores' lifecycle rules apply).
    """
    if retention_hours < 0 or staging_minutes < 0:
        raise ValueError("retention_hours and staging_minutes must be >= 0")
    report = MaintenanceReport(pinned=pinned_versions(settings), dry_run=dry_run)
    root = settings.tables
    if "://" not in root or root.startswith("file://"):
        for table in _tables(Path(root.removeprefix("file://"))):
            _empty_parts(table, dry_run, report)
            keep = report.pinned.get(table.name, [])
            _vacuum(table, retention_hours, keep, dry_run, report)
    _stale_staging(settings.snapshots, staging_minutes, dry_run, report)
    return report
