"""Deploy state: which colour is live, its container, port, image and model version.

One small JSON file, ``<deploy dir>/state.json``, written atomically. The deploy dir is
``SCORELOOP_DEPLOY_DIR`` or ``<state root>/deploy``; it also holds the front's config, pid file
and admin socket.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipelines.settings import get_settings
from scoreloop.release.errors import ReleaseError

Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, Colour] = ("blue", "green")
STATE_FILE = "state.json"
DEFAULT_FRONT_PORT = 8080
DEFAULT_NAME = "scoreloop"


def other(colour: Colour) -> Colour:
    return "green" if colour == "blue" else "blue"


def default_deploy_dir() -> Path:
    """``SCORELOOP_DEPLOY_DIR``, else ``<state root>/deploy``."""
    override = os.environ.get("SCORELOOP_DEPLOY_DIR")
    return Path(override) if override else get_settings().state_root / "deploy"


@dataclass
class Slot:
    """One colour's container (kept, stopped, after it stops being live, for rollback)."""

    container: str
    port: int
    image: str
    model_version: str
    snapshot_dir: str


@dataclass
class DeployState:
    """What runs where. ``name`` prefixes the container names: ``<name>-blue``, ``<name>-green``."""

    name: str = DEFAULT_NAME
    front_port: int = DEFAULT_FRONT_PORT
    live: Colour | None = None
    previous: Colour | None = None
    slots: dict[str, Slot] = field(default_factory=dict)

    def container_name(self, colour: Colour) -> str:
        return f"{self.name}-{colour}"

    def slot(self, colour: Colour | None) -> Slot | None:
        return self.slots.get(colour) if colour else None


def load_state(
    deploy_dir: Path, *, name: str | None = None, front_port: int | None = None
) -> DeployState:
    """The state in ``deploy_dir`` (a fresh one when none is there yet).

    ``name``/``front_port`` apply to a fresh state; for an existing one they must match it.
    """
    path = deploy_dir / STATE_FILE
    if not path.exists():
        return DeployState(name=name or DEFAULT_NAME, front_port=front_port or DEFAULT_FRONT_PORT)
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        state = DeployState(
            name=raw["name"],
            front_port=int(raw["front_port"]),
            live=raw.get("live"),
            previous=raw.get("previous"),
            slots={colour: Slot(**slot) for colour, slot in raw.get("slots", {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReleaseError(
            f"deploy state {path} is unreadable ({exc}): fix or delete it (the containers "
            "named in it keep running; remove them by name)"
        ) from exc
    for wanted, actual, what in (
        (name, state.name, "name"),
        (front_port, state.front_port, "front port"),
    ):
        if wanted is not None and wanted != actual:
            raise ReleaseError(
                f"deploy state {path} has {what} {actual!r}, not {wanted!r}: use another deploy "
                "dir (SCORELOOP_DEPLOY_DIR) for another deployment"
            )
    return state


def save_state(deploy_dir: Path, state: DeployState) -> Path:
    """Write the state atomically (a reader sees the old or the new file, never half)."""
    deploy_dir.mkdir(parents=True, exist_ok=True)
    path = deploy_dir / STATE_FILE
    tmp = deploy_dir / f".{STATE_FILE}.{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(asdict(state), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path
