"""One settings class for the whole project, read when needed (never at import time).

Every location lives under one state root and can be overridden by a ``SCORELOOP_*`` environment
variable. ``table_root`` may be a local path or an object-store URI (``s3://bucket/prefix``).

Object storage is one block: ``SCORELOOP_OBJECT_STORE=s3://bucket/prefix`` puts the Delta tables,
the DVC remote (model artifacts and training sets) and the serving snapshots under that prefix
(``tables/``, ``dvc-remote/``, ``snapshots/``), and ``SCORELOOP_S3_ENDPOINT_URL`` names a
non-AWS endpoint (MinIO, moto, any S3-compatible store). Credentials are never settings: every
client (delta-rs, DVC's s3fs, pyarrow) reads ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
(or an instance profile) from the environment itself.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
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
    object_store: str | None = None
    snapshot_store_uri: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    dagster_pg_url: str | None = None
    spec_path: Path = Field(default=BUNDLED_SPEC)
    params_path: Path = Field(default=PROJECT_ROOT / "params.yaml")
    model_name_override: str | None = Field(
        default=None,
        validation_alias="SCORELOOP_MODEL_NAME",
        description="The registry's model name; None = the spec's (see :func:`model_name`).",
    )
    scoring_chunk_rows: int = 200_000

    @model_validator(mode="before")
    @classmethod
    def _model_name_keyword(cls, data: Any) -> Any:
        # ``Settings(model_name=...)`` (the Dagster resource's override) sets the env-var field.
        if isinstance(data, dict) and data.get("model_name") is not None:
            data = {**data, "SCORELOOP_MODEL_NAME": data.pop("model_name")}
        return data

    @cached_property
    def model_name(self) -> str:
        """The model's name in the registry (see :func:`model_name`)."""
        return model_name(self)

    @property
    def landing(self) -> Path:
        """Folder where batch and label files land."""
        return self.landing_dir or self.state_root / "landing"

    def _in_store(self, name: str) -> str | None:
        return f"{self.object_store.rstrip('/')}/{name}" if self.object_store else None

    @property
    def tables(self) -> str:
        """Root of the Delta tables: a local path or an object-store URI."""
        return self.table_root or self._in_store("tables") or str(self.state_root / "tables")

    @property
    def remote(self) -> str:
        """The DVC remote (a local directory by default, ``s3://...`` in production)."""
        local = str(self.state_root / "dvc-remote")
        return self.dvc_remote or self._in_store("dvc-remote") or local

    @property
    def snapshot_store(self) -> str | None:
        """Object-store prefix the serving snapshots are published to (None: local only).

        Publishing still writes :attr:`snapshots` first (the local folder is the writer's
        staging area and the lookup service's cache); the store is what replicas follow.
        """
        return self.snapshot_store_uri or self._in_store("snapshots")

    def storage_options(self) -> dict[str, str]:
        """Options for delta-rs / polars on an object store: endpoint, plain HTTP, region.

        Concurrent writers stay safe without a locking provider: delta-rs 1.x commits on S3
        with conditional puts (``If-None-Match: *`` on the next ``_delta_log`` entry), so the
        endpoint must support them (AWS S3 since 2024, MinIO, moto; tests/scale proves it).
        """
        options = {"AWS_REGION": self.s3_region} if self.s3_region else {}
        if self.s3_endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.s3_endpoint_url
            if self.s3_endpoint_url.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        return options

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


def model_name(settings: Settings) -> str:
    """The one answer to "which model": ``SCORELOOP_MODEL_NAME`` if set, else the spec's
    ``model_name``, else the spec's dataset name. Two datasets can share one registry this way.

    Read from the spec file when first asked (never at import or settings construction).
    """
    if settings.model_name_override:
        return settings.model_name_override
    # Only the two names are read here (yaml, no polars: `scoreloop model list` stays fast); a
    # file that is not a plain spec mapping goes through load_spec for its clear error.
    import yaml

    try:
        raw = yaml.safe_load(Path(settings.spec_path).read_text())
    except (OSError, yaml.YAMLError):
        raw = None
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        from pipelines.naming import registered_name

        return registered_name(raw.get("model_name"), raw["name"])
    from pipelines.spec import load_spec

    return load_spec(settings.spec_path).registered_name


def get_settings() -> Settings:
    """Read settings from the environment now (tests set env vars, then call this)."""
    return Settings()
