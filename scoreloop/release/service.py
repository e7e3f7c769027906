"""Run the serving image as a container on a loopback port, and wait for it to be ready."""

from __future__ import annotations

import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from scoreloop.release.engine import Engine
from scoreloop.release.errors import ReleaseError
from scoreloop.serve_process import free_port

#: The image's user (serving/Dockerfile); mounted snapshots must be readable by it.
IMAGE_UID = 10001
CONTAINER_PORT = 8000


def check_readable(snapshot_dir: Path) -> None:
    """The image's user (uid 10001, not the owner) can reach and read ``snapshot_dir``."""
    if not snapshot_dir.is_dir():
        raise ReleaseError(f"snapshot dir {snapshot_dir} does not exist: publish a snapshot first")
    path = snapshot_dir.resolve()
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        needed = stat.S_IXOTH | (stat.S_IROTH if part == path else 0)
        if part.stat().st_uid != IMAGE_UID and mode & needed != needed:
            raise ReleaseError(
                f"snapshot dir {snapshot_dir} is not readable by the image's user (uid "
                f"{IMAGE_UID}): {part} has mode {stat.filemode(mode)}; `chmod o+rx {part}` or "
                f"`chown -R {IMAGE_UID} {snapshot_dir}`"
            )


@dataclass(frozen=True)
class Container:
    """A started service container, reachable at ``url`` (127.0.0.1)."""

    name: str
    image: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_service(
    engine: Engine, image: str, name: str, snapshot_dir: Path, *, port: int | None = None
) -> Container:
    """Start ``image`` as container ``name`` serving ``snapshot_dir`` (read-only) on a port."""
    check_readable(snapshot_dir)
    port = port or free_port()
    engine.remove(name)
    token = os.environ.get("SCORELOOP_ADMIN_TOKEN") or secrets.token_urlsafe(32)
    engine.run(
        [
            "run",
            "--detach",
            "--name",
            name,
            "--init",
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=32768:32768",
            "--publish",
            f"127.0.0.1:{port}:{CONTAINER_PORT}",
            "--volume",
            f"{snapshot_dir.resolve()}:/snapshots:ro",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--env",
            f"SCORELOOP_ADMIN_TOKEN={token}",
            "--env",
            "SCORELOOP_RELOAD_INTERVAL_S=2",
            "--label",
            "ai.scoreloop.managed=true",
            image,
        ],
        what=f"starting container {name} from {image}",
        fix="check the image exists (`podman images`) and the port is free",
    )
    return Container(name=name, image=image, port=port)


@dataclass(frozen=True)
class Readiness:
    """What /readyz said last."""

    ready: bool
    seconds: float
    model_version: str | None
    last_error: str | None


def wait_ready(
    engine: Engine, container: Container, *, timeout: float = 60.0, interval: float = 0.2
) -> Readiness:
    """Poll ``/readyz`` until 200; raise ReleaseError (with the container's logs) otherwise."""
    started = time.monotonic()
    last: str | None = "no answer yet"
    while time.monotonic() - started < timeout:
        if not engine.container_running(container.name):
            raise ReleaseError(
                f"container {container.name} ({container.image}) exited before it was ready:\n"
                f"{engine.logs(container.name)}\nfix: read the log above (configuration, "
                "snapshot, model)"
            )
        try:
            response = httpx.get(f"{container.url}/readyz", timeout=2.0)
            body = response.json()
            if response.status_code == 200:
                return Readiness(True, time.monotonic() - started, body.get("model_version"), None)
            if body.get("last_error"):
                # The snapshot was read and refused: waiting longer changes nothing.
                raise ReleaseError(
                    f"container {container.name} ({container.image}) refuses the mounted "
                    f"snapshot: {body['last_error']}\nfix: publish a complete snapshot (model "
                    "artifact included) in the snapshot dir, then retry"
                )
            last = f"/readyz answered {response.status_code}"
        except (httpx.HTTPError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(interval)
    raise ReleaseError(
        f"container {container.name} ({container.image}) not ready after {timeout:.0f} s on "
        f"{container.url}/readyz; last: {last}\nlogs:\n{engine.logs(container.name)}\n"
        "fix: a snapshot with a loadable model must be published in the mounted snapshot dir"
    )
