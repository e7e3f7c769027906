"""The front: haproxy on 127.0.0.1, switching between the blue and green containers.

Why haproxy (docs/deploy.md): its runtime API changes a server's state without a reload, so the
clients' connections to the front are never closed: ``ready`` on the new colour, wait until the
front's own ``/readyz`` check sees it UP, ``drain`` the old one (in-flight requests finish, new
ones go to the new colour), then ``maint``. The config is rewritten on every switch, so a
restarted front comes back with the live colour.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from scoreloop.release.errors import ReleaseError
from scoreloop.release.state import COLOURS, Colour, DeployState

BACKEND = "serving"
CONFIG_FILE = "haproxy.cfg"
PID_FILE = "haproxy.pid"
SOCKET_FILE = "haproxy.sock"


@dataclass(frozen=True)
class ServerStatus:
    colour: Colour
    status: str  # UP, DOWN, MAINT, DRAIN, ...
    sessions: int
    address: str


def render_config(state: DeployState, deploy_dir: Path) -> str:
    """haproxy.cfg for ``state``: the live colour enabled, the other disabled."""
    servers = []
    for colour in COLOURS:
        slot = state.slot(colour)
        port = slot.port if slot else 1
        disabled = "" if colour == state.live else " disabled"
        servers.append(f"    server {colour} 127.0.0.1:{port} check{disabled}")
    return "\n".join(
        [
            "# Written by scoreloop.release.front; rewritten on every switch.",
            "global",
            f"    stats socket {deploy_dir / SOCKET_FILE} mode 600 level admin",
            f"    pidfile {deploy_dir / PID_FILE}",
            "    maxconn 4096",
            "defaults",
            "    mode http",
            "    timeout connect 2s",
            "    timeout client 60s",
            "    timeout server 60s",
            "    timeout http-keep-alive 10s",
            "    timeout http-request 10s",
            # A request that meets a closing or not-ready server is retried on the other one.
            "    retries 3",
            "    option redispatch 1",
            "    option http-buffer-request",
            "    retry-on conn-failure empty-response junk-response response-timeout 503",
            "frontend scoreloop",
            f"    bind 127.0.0.1:{state.front_port}",
            f"    default_backend {BACKEND}",
            f"backend {BACKEND}",
            "    option httpchk GET /readyz",
            "    http-check expect status 200",
            "    default-server inter 500ms fastinter 200ms downinter 500ms rise 1 fall 2",
            *servers,
            "",
        ]
    )


def _haproxy() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if not found:
        raise ReleaseError(
            "haproxy not found: run `sudo deploy/container/setup.sh` (installs it from Debian)"
        )
    return found


def write_config(state: DeployState, deploy_dir: Path) -> Path:
    deploy_dir.mkdir(parents=True, exist_ok=True)
    path = deploy_dir / CONFIG_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render_config(state, deploy_dir))
    check = subprocess.run([_haproxy(), "-c", "-q", "-f", str(tmp)], capture_output=True, text=True)
    if check.returncode != 0:
        raise ReleaseError(f"haproxy refused the config {tmp}: {check.stdout}{check.stderr}")
    os.replace(tmp, path)
    return path


def front_pid(deploy_dir: Path) -> int | None:
    """PID of the running front, or None."""
    try:
        pid = int((deploy_dir / PID_FILE).read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def ensure_front(state: DeployState, deploy_dir: Path) -> int:
    """Start the front (daemonised, pid file in ``deploy_dir``) unless it runs; its PID."""
    pid = front_pid(deploy_dir)
    if pid is not None:
        return pid
    config = write_config(state, deploy_dir)
    started = subprocess.run(
        [_haproxy(), "-D", "-f", str(config), "-p", str(deploy_dir / PID_FILE)],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        raise ReleaseError(
            f"the front (haproxy) did not start on 127.0.0.1:{state.front_port}: "
            f"{started.stderr.strip()}\nfix: free the port or choose another front port"
        )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pid = front_pid(deploy_dir)
        if pid is not None and (deploy_dir / SOCKET_FILE).exists():
            return pid
        time.sleep(0.05)
    raise ReleaseError(f"the front started but wrote no pid/socket in {deploy_dir}")


def stop_front(deploy_dir: Path) -> None:
    """Stop the front started from ``deploy_dir`` (by the PID in its pid file)."""
    pid = front_pid(deploy_dir)
    if pid is None:
        return
    os.kill(pid, signal.SIGUSR1)  # soft stop: finish what is in flight
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and front_pid(deploy_dir) is not None:
        time.sleep(0.05)
    if front_pid(deploy_dir) is not None:
        os.kill(pid, signal.SIGTERM)


def command(deploy_dir: Path, line: str) -> str:
    """One runtime-API command on the front's admin socket; its answer."""
    path = deploy_dir / SOCKET_FILE
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise ReleaseError(
            f"the front's admin socket {path} does not answer ({exc}): is haproxy running? "
            "(rollout starts it)"
        ) from exc
    answer = b"".join(chunks).decode(errors="replace").strip()
    if (
        answer
        and not answer.startswith("#")
        and any(word in answer.lower() for word in ("unknown", "not found", "error", "require"))
    ):
        raise ReleaseError(f"the front refused `{line}`: {answer}")
    return answer


def statuses(deploy_dir: Path) -> dict[Colour, ServerStatus]:
    """The front's view of each colour (from ``show stat``)."""
    lines = command(deploy_dir, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    out: dict[Colour, ServerStatus] = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == BACKEND and row.get("svname") in COLOURS:
            colour: Colour = "blue" if row["svname"] == "blue" else "green"
            out[colour] = ServerStatus(
                colour=colour,
                status=row.get("status", ""),
                sessions=int(row.get("scur") or 0),
                address=row.get("addr", ""),
            )
    return out


def wait_status(deploy_dir: Path, colour: Colour, wanted: str, timeout: float) -> ServerStatus:
    deadline = time.monotonic() + timeout
    status = statuses(deploy_dir).get(colour)
    while time.monotonic() < deadline:
        status = statuses(deploy_dir).get(colour)
        if status is not None and status.status.startswith(wanted):
            return status
        time.sleep(0.1)
    raise ReleaseError(
        f"the front does not see {colour} {wanted} after {timeout:.0f} s (status "
        f"{status.status if status else 'missing'}): its /readyz check fails through the front"
    )


def switch(
    deploy_dir: Path, state: DeployState, new: Colour, *, drain_timeout: float = 15.0
) -> float:
    """Send traffic to ``new`` (already ready) and drain the old live colour; seconds taken.

    ``state`` must already name ``new``'s slot; ``state.live`` is the colour being replaced.
    On a failure before the old colour is drained, the old colour stays enabled.
    """
    started = time.monotonic()
    slot = state.slot(new)
    if slot is None:
        raise ReleaseError(f"no {new} container in the deploy state to switch to")
    old = state.live
    command(deploy_dir, f"set server {BACKEND}/{new} addr 127.0.0.1 port {slot.port}")
    command(deploy_dir, f"set server {BACKEND}/{new} state ready")
    try:
        wait_status(deploy_dir, new, "UP", timeout=15)
    except ReleaseError:
        command(deploy_dir, f"set server {BACKEND}/{new} state maint")
        raise
    if old is not None and old != new:
        command(deploy_dir, f"set server {BACKEND}/{old} state drain")
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline:
            current = statuses(deploy_dir).get(old)
            if current is None or current.sessions == 0:
                break
            time.sleep(0.05)
        command(deploy_dir, f"set server {BACKEND}/{old} state maint")
    return time.monotonic() - started
