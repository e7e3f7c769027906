"""Put the previous colour back: restart its (stopped) container, switch the front to it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from scoreloop.release import front
from scoreloop.release.engine import container_engine
from scoreloop.release.errors import ReleaseError
from scoreloop.release.service import Container, wait_ready
from scoreloop.release.state import Colour, default_deploy_dir, load_state, save_state


@dataclass(frozen=True)
class RollbackResult:
    colour: Colour
    replaced: Colour
    model_version: str
    image: str
    seconds: float


def rollback(*, deploy_dir: Path | None = None, ready_timeout: float = 60.0) -> RollbackResult:
    """Serve the previous colour again (its container was kept, stopped, by ``rollout``).

    Raises:
        ReleaseError: there is no previous colour, its container is gone, or it does not become
            ready (the current colour keeps serving).
    """
    started = time.perf_counter()
    deploy_dir = deploy_dir or default_deploy_dir()
    state = load_state(deploy_dir)
    current, previous = state.live, state.previous
    slot = state.slot(previous)
    if current is None or previous is None or slot is None:
        raise ReleaseError(
            f"nothing to roll back to in {deploy_dir} (live {current}, previous {previous}): "
            "roll out the previous image again instead"
        )
    engine = container_engine()
    if not engine.container_exists(slot.container):
        raise ReleaseError(
            f"the previous container {slot.container} ({slot.image}) is gone: roll out "
            f"{slot.image} again instead; {current} keeps serving"
        )
    front.ensure_front(state, deploy_dir)
    engine.run(["start", slot.container], what=f"starting {slot.container} again")
    try:
        wait_ready(engine, Container(slot.container, slot.image, slot.port), timeout=ready_timeout)
        front.switch(deploy_dir, state, previous)
    except ReleaseError as exc:
        engine.run(["stop", "--time", "5", slot.container], what="stop", check=False)
        raise ReleaseError(
            f"rollback to {previous} failed, {current} keeps serving: {exc}"
        ) from exc
    state.live, state.previous = previous, current
    front.write_config(state, deploy_dir)
    save_state(deploy_dir, state)
    engine.run(["stop", "--time", "10", state.container_name(current)], what="stop", check=False)
    return RollbackResult(
        colour=previous,
        replaced=current,
        model_version=slot.model_version,
        image=slot.image,
        seconds=round(time.perf_counter() - started, 2),
    )
