"""A huge request against a real ``scoreloop serve``: refused with 413 before it is even sent
whole, while ``/healthz`` keeps answering (it used to take 8 s to refuse an 18 MB lookup, echo
12 MB back, and hold /healthz for 6.7 s)."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest
from support.serving import TOKEN

from scoreloop.serve_process import ServiceProcess

BODY_BYTES = 18_000_000
CHUNK = 65_536
#: Pause between chunks: the client takes seconds to send 18 MB, so "answered while still
#: sending" is a matter of ordering, not of how fast this machine is.
PAUSE_S = 0.012


def _huge_request(port: int, chunked: bool) -> dict[str, float | int | bytes]:
    """Send an 18 MB lookup slowly; note when the answer arrived and when sending ended."""
    result: dict[str, float | int | bytes] = {"started_at": time.monotonic()}
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    framing = b"Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY_BYTES}".encode()
    sock.sendall(
        b"POST /scores/lookup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + framing
        + b"\r\n\r\n"
    )

    def read_answer() -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(65_536)
            if not data:
                break
            head += data
        result["answered_at"] = time.monotonic()
        result["head"] = head

    reader = threading.Thread(target=read_answer)
    reader.start()
    piece = b"1234567," * (CHUNK // 8)
    sent = 0
    try:
        while sent < BODY_BYTES:
            data = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
            sock.sendall(data)
            sent += len(piece)
            time.sleep(PAUSE_S)
    except OSError:
        pass  # the server may close the connection once it has answered
    result["stopped_sending_at"] = time.monotonic()
    result["sent"] = sent
    reader.join(timeout=60)
    sock.close()
    return result


@pytest.mark.slow
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_18mb_body_is_refused_early_and_healthz_keeps_answering(
    snapshots: Path, state: Path, tmp_path: Path, chunked: bool
) -> None:
    env = {"SCORELOOP_STATE_ROOT": str(state), "SCORELOOP_ADMIN_TOKEN": TOKEN}
    with ServiceProcess(env, log=tmp_path / "server.log", ready_timeout=120) as service:
        port, base, process = service.port, service.base_url, service.process
        assert process is not None
        with httpx.Client(base_url=base, timeout=30) as http:
            baseline = []
            for _ in range(5):
                start = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                baseline.append(time.perf_counter() - start)
            outcome: dict[str, float | int | bytes] = {}
            sender = threading.Thread(target=lambda: outcome.update(_huge_request(port, chunked)))
            sender.start()
            time.sleep(0.3)
            during = []
            while sender.is_alive() and len(during) < 5:
                start = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                during.append(time.perf_counter() - start)
            sender.join(timeout=120)
        assert during, "the big request was over before /healthz could be asked"
        assert str(outcome["head"]).startswith("b'HTTP/1.1 413"), outcome["head"]
        # The answer came in the first half of the time the client took to send the body.
        started, answered = float(outcome["started_at"]), float(outcome["answered_at"])
        assert answered - started < (float(outcome["stopped_sending_at"]) - started) / 2
        # Generous, relative to this machine: /healthz was not held up behind the big body.
        assert statistics.median(during) < 50 * statistics.median(baseline) + 1.0
        assert process.poll() is None
