"""The scale-out stack on 127.0.0.1: a throwaway PostgreSQL cluster, moto's S3 endpoint, Redis.

One implementation for ``scoreloop demo --scale`` and the fixtures of ``tests/scale``: each
``start_*`` returns a handle whose ``stop()`` ends exactly the process it started (by PID); the
context managers :func:`postgres_cluster`, :func:`s3_endpoint`, :func:`redis_broker` (the
Celery broker, for the executor measured beside Dask) and :func:`scale_stack` start,
yield where the servers run, and stop them on the way out. A missing server binary raises
:class:`StackUnavailable` with what to install (the tests turn it into a skip, or a failure on
CI; the demo prints it).

:func:`ScaleStack.environment` is the configuration the rest of scoreloop reads
(``SCORELOOP_DAGSTER_PG_URL``, ``SCORELOOP_OBJECT_STORE``, ``SCORELOOP_S3_ENDPOINT_URL``, ...):
nothing else changes between the embedded run and the scaled-out one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from scoreloop.serve_process import free_port


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process we started (by PID), SIGKILL it after 10 s, and reap it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


#: Credentials the local endpoint accepts (moto checks none); never real ones.
LOCAL_S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "scoreloop-local",
    "AWS_SECRET_ACCESS_KEY": "scoreloop-local-secret",
}
LOCAL_S3_REGION = "us-east-1"


class StackUnavailable(RuntimeError):
    """A server binary is missing (the message says what to install)."""


def _wait(
    check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        try:
            if check():
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

    @property
    def pid(self) -> int:
        return self.proc.pid

    def create_bucket(self, name: str) -> None:
        """``PUT /<bucket>`` on the endpoint (moto accepts an unsigned request)."""
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(f"creating bucket {name}: HTTP {response.status}")

    def stop(self) -> None:
        _terminate(self.proc)


def start_s3() -> S3Server:
    """``moto_server`` on a free loopback port (a real HTTP S3 endpoint)."""
    binary = Path(sys.executable).parent / "moto_server"
    if not binary.exists():
        raise StackUnavailable(
            f"moto_server not found next to {sys.executable} (the `moto[server]` package; "
            "`make setup` installs it from the lock)"
        )
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

    try:
        _wait(up, "moto_server", proc, 60)
    except RuntimeError:
        S3Server(proc, endpoint).stop()
        raise
    return S3Server(proc, endpoint)


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
    def pid(self) -> int:
        return self.postmaster_pid

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
        raise StackUnavailable(
            "PostgreSQL server binaries (Debian package `postgresql`) not found; "
            "install them with `make scale-deps` (as root)"
        )
    as_user: list[str] = []
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise StackUnavailable(
            "running as root without `runuser` to start PostgreSQL as `postgres`"
        )
    base = Path(tempfile.mkdtemp(prefix="scoreloop-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its own user runs it
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, user="postgres")
    datadir = base / "data"
    port = free_port()
    try:
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
    except subprocess.CalledProcessError:
        shutil.rmtree(base, ignore_errors=True)
        raise
    pid = int((datadir / "postmaster.pid").read_text().split()[0])
    return PostgresServer(bindir, datadir, port, as_user, pid)


@dataclass
class RedisServer:
    """Debian's ``redis-server`` on a loopback port, its files in a temp dir (no persistence)."""

    proc: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        _terminate(self.proc)
        shutil.rmtree(self.directory, ignore_errors=True)


def _redis_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


def start_redis() -> RedisServer:
    """``redis-server`` on a free port of 127.0.0.1, no snapshots, no append-only file."""
    binary = _redis_binary()
    if binary is None:
        raise StackUnavailable(
            "redis-server (Debian package `redis-server`) not found; "
            "install it with `make scale-deps` (as root)"
        )
    directory = Path(tempfile.mkdtemp(prefix="scoreloop-redis-"))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(directory / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(proc, port, directory)

    def up() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")

    try:
        _wait(up, "redis-server", proc, 30)
    except RuntimeError:
        server.stop()
        raise
    return server


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_Server = TypeVar("_Server", bound=_Stoppable)


@contextmanager
def _running(start: Callable[[], _Server]) -> Iterator[_Server]:
    """The server ``start`` returns, for the duration of the block, stopped after it."""
    server = start()
    try:
        yield server
    finally:
        server.stop()


def redis_broker() -> AbstractContextManager[RedisServer]:
    """A throwaway Redis for the duration of the block, stopped by PID and removed after."""
    return _running(start_redis)


def s3_endpoint() -> AbstractContextManager[S3Server]:
    """moto's S3 endpoint for the duration of the block, stopped by PID after it."""
    return _running(start_s3)


def postgres_cluster() -> AbstractContextManager[PostgresServer]:
    """A throwaway PostgreSQL cluster for the duration of the block, stopped and removed after."""
    return _running(start_postgres)


@dataclass(frozen=True)
class ScaleStack:
    """Where the scaled-out demo's parts run: one database, one bucket, the worker count."""

    postgres: PostgresServer
    s3: S3Server
    pg_url: str
    store: str
    workers: int

    def environment(self) -> dict[str, str]:
        """The configuration block (docs/scale.md) pointing scoreloop at this stack."""
        return {
            "SCORELOOP_DAGSTER_PG_URL": self.pg_url,
            "SCORELOOP_OBJECT_STORE": self.store,
            "SCORELOOP_S3_ENDPOINT_URL": self.s3.endpoint,
            "SCORELOOP_S3_REGION": LOCAL_S3_REGION,
            **LOCAL_S3_CREDENTIALS,
        }

    def describe(self) -> list[str]:
        """One line per part: what it is, where it listens, its PID."""
        return [
            f"PostgreSQL   {self.pg_url}  (pid {self.postgres.pid}, data {self.postgres.datadir})",
            f"S3 (moto)    {self.s3.endpoint}  (pid {self.s3.pid}), state under {self.store}",
            f"Dask         a local cluster of {self.workers} one-thread worker processes "
            "on 127.0.0.1, started per backfill",
        ]


@contextmanager
def scale_stack(
    *,
    workers: int = 2,
    postgres: PostgresServer | None = None,
    s3: S3Server | None = None,
) -> Iterator[ScaleStack]:
    """PostgreSQL + S3 (started here unless given), a fresh database and bucket on them.

    Servers started here are stopped (by PID) when the block ends; given ones are left running
    (a test session shares its servers across tests).
    """
    with contextlib.ExitStack() as started:
        pg = postgres or started.enter_context(postgres_cluster())
        s3s = s3 or started.enter_context(s3_endpoint())
        name = uuid.uuid4().hex[:10]
        pg_url = pg.create_database(f"dagster_{name}")
        bucket = f"scoreloop-{name}"
        s3s.create_bucket(bucket)
        yield ScaleStack(pg, s3s, pg_url, f"s3://{bucket}/prod", workers)
