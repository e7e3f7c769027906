"""The demo's state root: what ``--fresh`` may wipe, and the Dagster instance folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
import yaml

from pipelines.settings import PROJECT_ROOT, Settings

#: Written into the state root by ``--fresh``: a folder holding it may be wiped whatever it holds.
STATE_MARKER = ".scoreloop-state"
#: Entries a scoreloop state root may hold; ``--fresh`` refuses to wipe a folder with others.
STATE_ENTRIES = frozenset(
    {
        "landing",
        "tables",
        "dagster",
        "registry",
        ".registry.lock",
        "dvc-remote",
        "snapshots",
        "model-cache",
        "alerts",
        "monitoring",
        "demo",
        STATE_MARKER,
    }
)


#: First line of a dagster.yaml scoreloop wrote (and may therefore rewrite).
GENERATED = "# written by scoreloop (ensure_dagster_home): edit freely, then remove this line\n"
#: The instance's storage on PostgreSQL: run storage, event log and schedules in one database.
#: The URL is read from the environment by Dagster, so no password lands in the file.
PG_STORAGE = {"storage": {"postgres": {"postgres_url": {"env": "SCORELOOP_DAGSTER_PG_URL"}}}}


def instance_config(pg_url: str | None) -> str:
    """The ``dagster.yaml`` scoreloop writes: SQLite under DAGSTER_HOME, or PostgreSQL."""
    if not pg_url:
        return GENERATED
    return GENERATED + yaml.safe_dump(PG_STORAGE, sort_keys=False)


def ensure_dagster_home(path: Path, pg_url: str | None = None) -> Path:
    """A DAGSTER_HOME folder with its ``dagster.yaml``: SQLite there, or PostgreSQL at ``pg_url``.

    ``pg_url`` is ``SCORELOOP_DAGSTER_PG_URL`` (``Settings.dagster_pg_url``), which must also be
    in the environment of every process that opens the instance (the file refers to it). A
    ``dagster.yaml`` someone wrote by hand (without scoreloop's first line) is left alone.
    """
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    existing = config.read_text() if config.exists() else ""
    if not existing.strip() or existing.startswith(GENERATED):
        wanted = instance_config(pg_url)
        if existing != wanted:
            config.write_text(wanted)
    return path


def reset_state_root(settings: Settings) -> list[str]:
    """Wipe ``settings.state_root`` for a fresh demo; returns warnings.

    Refuses a root that is (or contains) the project, the home folder or ``/``, and a folder
    holding anything a state root does not (see :data:`STATE_ENTRIES`) unless it carries the
    marker file the demo writes. Locations overridden to live outside the root are left alone.
    """
    root = settings.state_root.resolve()
    if root in {Path("/"), Path.home().resolve()} or PROJECT_ROOT.resolve().is_relative_to(root):
        raise typer.BadParameter(f"refusing to wipe {root}: it is not a state root")
    warnings = []
    overridden = [
        ("SCORELOOP_LANDING_DIR", settings.landing_dir),
        ("SCORELOOP_TABLE_ROOT", settings.table_root),
        ("SCORELOOP_DVC_REMOTE", settings.dvc_remote),
        ("SCORELOOP_DAGSTER_HOME", settings.dagster_home),
        ("SCORELOOP_REGISTRY_REPO", settings.registry_repo),
        ("SCORELOOP_SNAPSHOT_DIR", settings.snapshot_dir),
    ]
    for name, value in overridden:
        if value is not None and "://" not in str(value):
            if not Path(value).resolve().is_relative_to(root):
                warnings.append(f"{name}={value} is outside the state root: not wiped")
        elif value is not None:
            warnings.append(f"{name}={value} is remote: not wiped")
    if root.exists():
        entries = {p.name for p in root.iterdir()}
        unknown = sorted(entries - STATE_ENTRIES)
        if unknown and STATE_MARKER not in entries:
            raise typer.BadParameter(
                f"refusing to wipe {root}: it holds {unknown}, which scoreloop did not write; "
                "remove it yourself or run with --keep"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / STATE_MARKER).write_text("scoreloop state root (wiped by `scoreloop demo --fresh`)\n")
    return warnings
