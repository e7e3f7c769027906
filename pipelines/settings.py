"""One settings class for the whole project, read when needed (never at import time).

Every location lives under one state root and can be overridden by a ``SCORELOOP_*`` environment
variable. ``table_root`` may be a local path or an object-store URI (``s3://bucket/prefix``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_SPEC = PROJECT_ROOT / "data" / "acs_employment" / "spec.yaml"


class Settings(BaseSettings):
    """Where scoreloop keeps its state. Build with :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="SCORELOOP_", extra="ignore")

    state_root: Path = Field(default=PROJECT_ROOT / ".scoreloop")
    landing_dir: Path | None = None
    table_root: str | None = None
    dvc_remote: str | None = None
    dagster_home: Path | None = None
    registry_repo: Path | None = None
    #: A git URL the registry's GTO tags are pushed to (``SCORELOOP_REGISTRY_REMOTE``); unset: none.
    registry_remote: str | None = None
    snapshot_dir: Path | None = None
    spec_path: Path = Field(default=BUNDLED_SPEC)
    params_path: Path = Field(default=PROJECT_ROOT / "params.yaml")
    model_name: str = "employment"
    scoring_chunk_rows: int = 200_000

    @property
    def landing(self) -> Path:
        """Folder where batch and label files land."""
        return self.landing_dir or self.state_root / "landing"

    @property
    def tables(self) -> str:
        """Root of the Delta tables: a local path or an object-store URI."""
        return self.table_root or str(self.state_root / "tables")

    @property
    def remote(self) -> str:
        """The DVC remote (a local directory by default, ``s3://...`` in production)."""
        return self.dvc_remote or str(self.state_root / "dvc-remote")

    @property
    def dagster(self) -> Path:
        """DAGSTER_HOME for the persistent instance used by the demo and the UI."""
        return self.dagster_home or self.state_root / "dagster"

    @property
    def registry(self) -> Path:
        """The deployment git repository that holds GTO tags and DVC-tracked model artifacts."""
        return self.registry_repo or self.state_root / "registry"

    @property
    def snapshots(self) -> Path:
        """Folder holding versioned serving snapshots and the CURRENT pointer."""
        return self.snapshot_dir or self.state_root / "snapshots"


def get_settings() -> Settings:
    """Read settings from the environment now (tests set env vars, then call this)."""
    return Settings()
