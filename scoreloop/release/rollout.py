"""Blue/green rollout on this host: start the new colour, switch the front once it is ready.

The old colour serves until the new one answers ``/readyz`` with the expected version, directly
and through the front; only then is the old one drained and stopped (kept, for ``rollback``). Any
failure before the switch removes the new container and leaves the old one serving.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from scoreloop.release import front
from scoreloop.release.engine import Engine, container_engine
from scoreloop.release.errors import ReleaseError
from scoreloop.release.service import start_service, wait_ready
from scoreloop.release.smoke import image_model_version
from scoreloop.release.state import (
    COLOURS,
    Colour,
    DeployState,
    Slot,
    default_deploy_dir,
    load_state,
    other,
    save_state,
)


@dataclass(frozen=True)
class RolloutResult:
    colour: Colour
    previous: Colour | None
    container: str
    image: str
    model_version: str
    port: int
    front_url: str
    ready_s: float
    switch_s: float
    seconds: float


def front_url(state: DeployState) -> str:
    return f"http://127.0.0.1:{state.front_port}"


def _stop(engine: Engine, name: str) -> None:
    engine.run(["stop", "--time", "10", name], what=f"stopping {name}", check=False)


def rollout(
    image: str,
    snapshot_dir: Path,
    *,
    deploy_dir: Path | None = None,
    name: str | None = None,
    front_port: int | None = None,
    expected_version: str | None = None,
    ready_timeout: float = 60.0,
) -> RolloutResult:
    """Replace the live colour by ``image`` serving ``snapshot_dir``, without a failed request.

    Args:
        image: the smoke-tested image.
        snapshot_dir: snapshots folder mounted read-only at /snapshots.
        deploy_dir: state, front config and socket (default :func:`default_deploy_dir`).
        name: container name prefix for a new deployment (``<name>-blue``/``-green``).
        front_port: the front's port on 127.0.0.1 for a new deployment (default 8080).
        expected_version: version the new colour must serve (default: the image's label).
        ready_timeout: seconds the new colour has to become ready.

    Raises:
        ReleaseError: the new colour did not become ready or serves another version (the old
            colour keeps serving; the new container is removed).
    """
    started = time.perf_counter()
    deploy_dir = deploy_dir or default_deploy_dir()
    engine = container_engine()
    state = load_state(deploy_dir, name=name, front_port=front_port)
    expected_version = expected_version or image_model_version(image)
    front.ensure_front(state, deploy_dir)
    old = state.live
    new: Colour = other(old) if old else "blue"
    container_name = state.container_name(new)
    serving = f"{old} keeps serving" if old else "nothing was serving"
    try:
        container = start_service(engine, image, container_name, snapshot_dir)
        readiness = wait_ready(engine, container, timeout=ready_timeout)
        if readiness.model_version != expected_version:
            raise ReleaseError(
                f"{container_name} serves {readiness.model_version}, expected "
                f"{expected_version}: publish the release's snapshot in {snapshot_dir}"
            )
        previous_slot = state.slots.get(new)
        state.slots[new] = Slot(
            container=container_name,
            port=container.port,
            image=image,
            model_version=expected_version,
            snapshot_dir=str(snapshot_dir.resolve()),
        )
        try:
            switch_s = front.switch(deploy_dir, state, new)
        except ReleaseError:
            if previous_slot is None:
                state.slots.pop(new)
            else:
                state.slots[new] = previous_slot
            raise
    except ReleaseError as exc:
        engine.remove(container_name)
        raise ReleaseError(f"rollout of {image} aborted, {serving}: {exc}") from exc
    state.previous, state.live = old, new
    front.write_config(state, deploy_dir)
    save_state(deploy_dir, state)
    if old is not None:
        _stop(engine, state.container_name(old))
    return RolloutResult(
        colour=new,
        previous=old,
        container=container_name,
        image=image,
        model_version=expected_version,
        port=container.port,
        front_url=front_url(state),
        ready_s=round(readiness.seconds, 2),
        switch_s=round(switch_s, 2),
        seconds=round(time.perf_counter() - started, 2),
    )


@dataclass(frozen=True)
class TeardownResult:
    removed: list[str]
    front_stopped: bool


def teardown(deploy_dir: Path | None = None) -> TeardownResult:
    """Remove both colours' containers and stop the front of ``deploy_dir`` (state kept)."""
    deploy_dir = deploy_dir or default_deploy_dir()
    state = load_state(deploy_dir)
    engine = container_engine()
    removed = []
    for colour in COLOURS:
        container_name = state.container_name(colour)
        if engine.container_exists(container_name):
            engine.remove(container_name)
            removed.append(container_name)
    was_running = front.front_pid(deploy_dir) is not None
    front.stop_front(deploy_dir)
    state.live, state.previous, state.slots = None, None, {}
    save_state(deploy_dir, state)
    return TeardownResult(removed=removed, front_stopped=was_running)
