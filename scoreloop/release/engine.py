"""The container engine: podman here (docker works too), called as a subprocess.

Podman on this kind of machine needs the runc runtime and explicit ulimits: the engine is run
with ``CONTAINERS_CONF`` pointing at ``deploy/container/containers.conf`` unless the caller set it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoreloop.release.errors import ReleaseError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO_ROOT / "deploy" / "container" / "containers.conf"
SETUP_SCRIPT = REPO_ROOT / "deploy" / "container" / "setup.sh"
#: The base image deploy/container/setup.sh builds with debootstrap (no registry reachable here).
LOCAL_BASE_IMAGE = "localhost/scoreloop-base:bookworm"


@dataclass(frozen=True)
class Engine:
    """A container engine binary and the environment it runs with."""

    binary: str
    env: Mapping[str, str]

    @property
    def name(self) -> str:
        return Path(self.binary).name

    def run(
        self,
        args: Sequence[str],
        *,
        what: str,
        fix: str = "",
        check: bool = True,
        timeout: float | None = 600,
        input_bytes: bytes | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``<engine> args``; on failure raise ReleaseError naming ``what`` and ``fix``."""
        try:
            result = subprocess.run(
                [self.binary, *args],
                env=dict(self.env),
                capture_output=True,
                text=input_bytes is None,
                input=input_bytes,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise ReleaseError(
                f"{what}: `{self.name} {args[0]}` timed out after {timeout} s"
            ) from exc
        if isinstance(result.stdout, bytes):
            result = subprocess.CompletedProcess(
                result.args,
                result.returncode,
                result.stdout.decode(errors="replace"),
                (result.stderr or b"").decode(errors="replace"),
            )
        if check and result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-15:])
            raise ReleaseError(
                f"{what}: `{self.name} {' '.join(args[:3])} ...` exited {result.returncode}:\n"
                f"{tail}" + (f"\nfix: {fix}" if fix else "")
            )
        return result

    def image_exists(self, image: str) -> bool:
        return (
            self.run(["image", "exists", image], what="image exists", check=False).returncode == 0
        )

    def inspect_image(self, image: str) -> dict[str, Any]:
        out = self.run(
            ["image", "inspect", image],
            what=f"inspect image {image}",
            fix="build it first (scoreloop.release.build.build_image)",
        ).stdout
        data: list[dict[str, Any]] = json.loads(out)
        return data[0]

    def container_exists(self, name: str) -> bool:
        result = self.run(["container", "exists", name], what="container exists", check=False)
        return result.returncode == 0

    def container_running(self, name: str) -> bool:
        result = self.run(
            ["container", "inspect", "--format", "{{.State.Running}}", name],
            what=f"inspect container {name}",
            check=False,
        )
        return result.returncode == 0 and result.stdout.strip() == "true"

    def logs(self, name: str, lines: int = 30) -> str:
        result = self.run(["logs", "--tail", str(lines), name], what="logs", check=False)
        return (result.stdout + result.stderr).strip()

    def remove(self, name: str) -> None:
        """Stop and remove a container by name (nothing if it does not exist)."""
        self.run(["rm", "--force", "--time", "5", name], what=f"remove {name}", check=False)


def container_engine() -> Engine:
    """The engine to use: ``SCORELOOP_CONTAINER_ENGINE`` or podman, else docker, on PATH."""
    wanted = os.environ.get("SCORELOOP_CONTAINER_ENGINE")
    candidates = [wanted] if wanted else ["podman", "docker"]
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            env = dict(os.environ)
            if Path(found).name == "podman" and CONTAINERS_CONF.exists():
                env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
            return Engine(binary=found, env=env)
    raise ReleaseError(
        f"no container engine found ({' or '.join(candidates)} not on PATH): run "
        f"`sudo {SETUP_SCRIPT.relative_to(REPO_ROOT)}` (installs podman and builds the base "
        "image), or set SCORELOOP_CONTAINER_ENGINE"
    )
