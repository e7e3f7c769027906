"""The one Dagster resource: where scoreloop keeps its state (thin wrapper over ``Settings``)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from pipelines.settings import Settings


class ScoreloopResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Optional overrides on top of the ``SCORELOOP_*`` environment.

    ``settings()`` reads the environment when called, never at import or construction time.
    """

    state_root: str | None = None
    landing_dir: str | None = None
    table_root: str | None = None
    dvc_remote: str | None = None
    dagster_home: str | None = None
    registry_repo: str | None = None
    snapshot_dir: str | None = None
    spec_path: str | None = None
    params_path: str | None = None
    model_name: str | None = None

    def settings(self) -> Settings:
        """:class:`Settings` from the environment, with the set overrides applied on top."""
        overrides: dict[str, Any] = {
            name: value
            for name in (
                "state_root",
                "landing_dir",
                "table_root",
                "dvc_remote",
                "dagster_home",
                "registry_repo",
                "snapshot_dir",
                "spec_path",
                "params_path",
                "model_name",
            )
            if (value := getattr(self, name)) is not None
        }
        return Settings(**overrides)


#: The resources every area's ``Definitions`` passes (the same objects, so ``Definitions.merge``
#: accepts them): ``dg.Definitions(..., resources=RESOURCES)``; an asset takes
#: ``scoreloop: ScoreloopResource`` and calls ``scoreloop.settings()``.
RESOURCES: dict[str, ScoreloopResource] = {"scoreloop": ScoreloopResource()}
