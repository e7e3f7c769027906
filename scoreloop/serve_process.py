"""A ``scoreloop serve`` process on 127.0.0.1: the one start/wait/stop for the demo, the
benchmarks and the tests.

``with ServiceProcess({"SCORELOOP_STATE_ROOT": ...}) as service:`` starts the lookup service on a
free port, waits until it answers ``/readyz`` with 200 (bounded, checking meanwhile that the
process is alive: one that exits first is reported with its exit code and the tail of its
output), and on leaving the block stops it by PID: SIGTERM, then SIGKILL after a bound. The
service runs in its own process group, so whatever it started (granian's workers) is killed with
it: nothing is left behind, whether the block ends normally, raises or is interrupted.

Only the standard library is used here (``httpx`` is a dev dependency; the demo talks to the
service too).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pipelines.errors import ScoreloopError

HOST = "127.0.0.1"
#: How much of the service's output an error quotes.
TAIL_CHARS = 2000


class ServiceStartError(ScoreloopError, RuntimeError):
    """The service exited before it was ready, or was not ready in time (it has been stopped).

    Attributes:
        returncode: the exit code if the process exited by itself, else ``None``.
        output: the tail of what it wrote to stdout and stderr.
    """

    def __init__(self, message: str, *, returncode: int | None, output: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output = output


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def scoreloop_command() -> list[str]:
    """The ``scoreloop`` console script of this interpreter's environment, or its equivalent."""
    script = Path(sys.executable).with_name("scoreloop")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from scoreloop.cli import main; main()"]


def http_json(method: str, url: str, body: object = None, timeout: float = 10.0) -> tuple[int, Any]:
    """One JSON request; returns the status and the decoded body (error statuses too)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"null")


def stop_process(process: subprocess.Popen[bytes], *, grace: float = 10.0) -> int:
    """Stop a process that leads its own process group (``start_new_session=True``).

    SIGTERM to its PID, SIGKILL to its group if it has not exited after ``grace`` seconds, then
    SIGKILL to whatever is still left in the group (children that outlived it). Returns its exit
    code (negative: the signal that ended it).
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            process.wait(timeout=grace)
    # The group id is the leader's PID; Linux does not reuse it while any member lives, so this
    # reaches only what the service started.
    _kill_group(process.pid)
    return int(process.returncode)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing left in the group
        os.killpg(pgid, signal.SIGKILL)


class ServiceProcess:
    """``scoreloop serve`` on a free 127.0.0.1 port, ready on entering, stopped on leaving.

    Args:
        env: ``SCORELOOP_*`` settings of the service (state root, admin token, ...).
        *args: more ``scoreloop serve`` options (``"--dev"``, ``"--server", "granian"``).
        log: where its stdout and stderr go (kept); default a temporary file, deleted on stop.
        ready_path: the route that must answer 200 (``/healthz`` for a service with no
            snapshot, whose ``/readyz`` answers 503).
        ready_timeout: seconds to wait for that answer before stopping it and raising.
        stop_timeout: seconds SIGTERM is given before SIGKILL.
        inherit_scoreloop_env: keep the caller's own ``SCORELOOP_*`` variables (under ``env``);
            by default they are dropped, so the service sees only the settings given here.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *args: str,
        log: Path | None = None,
        ready_path: str = "/readyz",
        ready_timeout: float = 90.0,
        stop_timeout: float = 10.0,
        inherit_scoreloop_env: bool = False,
    ) -> None:
        self.env = {
            key: value
            for key, value in os.environ.items()
            if inherit_scoreloop_env or not key.startswith("SCORELOOP_")
        }
        self.env.update(env)
        self.args = args
        self.ready_path = ready_path
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self._own_log = log is None
        self.log_path = log
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        #: Seconds from start until the service answered ``ready_path``.
        self.ready_seconds: float | None = None
        #: The exit code, once stopped.
        self.returncode: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the service is not started: use `with ServiceProcess(...)`")
        return self.process.pid

    def start(self) -> Self:
        """Start the process and wait until it is ready; on failure it is stopped and
        :class:`ServiceStartError` says why."""
        if self.process is not None:
            raise RuntimeError(f"the service already runs (pid {self.process.pid})")
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="scoreloop-serve-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        argv = [*scoreloop_command(), "serve", "--host", HOST, "--port", str(self.port)]
        with self.log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [*argv, *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        started = time.monotonic()
        deadline = started + self.ready_timeout
        url = self.base_url + self.ready_path
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise self._error(f"exited with code {code} before it was ready", code)
            if _status(url) == 200:
                self.ready_seconds = time.monotonic() - started
                return
            time.sleep(0.1)
        raise self._error(
            f"did not answer {self.ready_path} with 200 within {self.ready_timeout:g} s", None
        )

    def _error(self, what: str, returncode: int | None) -> ServiceStartError:
        output = self.output_tail()
        kept = "" if self._own_log else f" ({self.log_path})"
        return ServiceStartError(
            f"`scoreloop serve` (pid {self.pid}, port {self.port}) {what}; its output{kept} "
            f"ends with:\n{output}",
            returncode=returncode,
            output=output,
        )

    def output_tail(self, chars: int = TAIL_CHARS) -> str:
        """The end of what the service wrote to stdout and stderr so far."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_bytes()[-chars:].decode(errors="replace")

    def request(
        self, method: str, path: str, body: object = None, timeout: float = 10.0
    ) -> tuple[int, Any]:
        """A JSON request to the service: ``(status, decoded body)``."""
        return http_json(method, self.base_url + path, body, timeout=timeout)

    def stop(self) -> int | None:
        """Stop the process (idempotent); returns its exit code, ``None`` if never started."""
        if self.process is None:
            return None
        if self.returncode is None:  # once only: a second group kill could reach a reused PID
            self.returncode = stop_process(self.process, grace=self.stop_timeout)
            if self._own_log and self.log_path is not None:
                self.log_path.unlink(missing_ok=True)
        return self.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _status(url: str) -> int | None:
    """The status a GET answers, or ``None`` while nothing accepts the connection."""
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:  # refused, reset, timed out: not listening yet
        return None
