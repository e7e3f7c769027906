"""Real servers on 127.0.0.1 for the scale-out tests: moto (S3), PostgreSQL, started by PID.

Each ``start_*`` returns a handle whose ``stop()`` ends exactly the process it started. When a
server binary is missing, :func:`unavailable` skips with the reason printed (``-ra``) on a
developer machine and fails under ``CI=true``: `.ci/run` installs them, so CI never skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest


def unavailable(reason: str) -> None:
    """Skip (saying why) off CI; fail on CI, where `.ci/run` must have installed the server."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must install it: see `make scale-deps`)")
    pytest.skip(f"{reason}; install it with `make scale-deps` (as root)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check: object, what: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        try:
            if callable(check) and check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer within {timeout:.0f} s")


@dataclass
class S3Server:
    """moto's S3 (and DynamoDB) endpoint as a separate process."""

    proc: subprocess.Popen[bytes]
    endpoint: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_s3() -> S3Server:
    """``moto_server`` on a free loopback port (a real HTTP S3 endpoint)."""
    binary = Path(sys.executable).parent / "moto_server"
    if not binary.exists():
        unavailable(f"moto_server not found next to {sys.executable}")
    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as response:
            return bool(response.status == 200)

    _wait(up, "moto_server", proc, 60)
    return S3Server(proc, endpoint)


@dataclass(frozen=True)
class S3State:
    root: Path
    endpoint: str
    bucket: str
    store: str

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")


def _pg_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).resolve().parent if on_path else None


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster under a temp dir (run as ``postgres`` when we are root)."""

    bindir: Path
    datadir: Path
    port: int
    as_user: list[str]
    postmaster_pid: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        subprocess.run(
            [
                *self.as_user,
                str(self.bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ],
            check=True,
            capture_output=True,
        )
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(
            [
                *self.as_user,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            check=False,
            capture_output=True,
        )
        try:
            os.kill(self.postmaster_pid, 0)
        except ProcessLookupError:
            pass
        else:
            os.kill(self.postmaster_pid, signal.SIGKILL)
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb + pg_ctl start on a free port; trust auth on loopback only."""
    bindir = _pg_bindir()
    if bindir is None:
        unavailable("PostgreSQL server binaries (Debian package `postgresql`) not found")
    assert bindir is not None
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="scoreloop-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            unavailable("running as root without `runuser` to start PostgreSQL as `postgres`")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, user="postgres")
    datadir = base / "data"
    port = free_port()
    subprocess.run(
        [
            *as_user,
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c fsync=off"
    subprocess.run(
        [
            *as_user,
            str(bindir / "pg_ctl"),
            "-D",
            str(datadir),
            "-o",
            options,
            "-w",
            "-l",
            str(base / "log"),
            "start",
        ],
        check=True,
        capture_output=True,
    )
    pid = int((datadir / "postmaster.pid").read_text().split()[0])
    return PostgresServer(bindir, datadir, port, as_user, pid)
