"""Secrets and start-up guards of a real ``scoreloop serve`` process."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from scoreloop.serve_process import ServiceProcess, ServiceStartError


@pytest.mark.slow
def test_the_admin_token_never_reaches_the_logs(
    snapshots: Path, state: Path, tmp_path: Path
) -> None:
    token = secrets.token_urlsafe(32)
    log = tmp_path / "server.log"
    env = {"SCORELOOP_STATE_ROOT": str(state), "SCORELOOP_ADMIN_TOKEN": token}
    with ServiceProcess(env, "--log-level", "debug", log=log, ready_timeout=120) as service:
        base, process = service.base_url, service.process
        assert process is not None
        with httpx.Client(base_url=base, timeout=30) as http:
            good = {"Authorization": f"Bearer {token}"}
            assert http.post("/admin/reload", headers=good).status_code == 200
            near = {"Authorization": f"Bearer {token[:-1]}x"}
            assert http.post("/admin/reload", headers=near).status_code == 401
            # The token inside bodies and paths that are refused: never echoed, never logged.
            assert http.post("/scores/lookup", json={"ids": [token]}).status_code == 422
            assert http.post("/predict", json={token: token}).status_code == 422
            assert http.get(f"/scores/{token}").status_code == 422
            assert token not in http.get("/metrics").text
        (snapshots / "CURRENT").write_text("no-such-snapshot\n")  # a logged refusal
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.post("/admin/reload", headers=good).status_code == 409
    text = log.read_text()
    assert "refused" in text  # the log was written, at debug level
    assert token not in text
    assert token[:12] not in text


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"SCORELOOP_ADMIN_TOKEN": "xxxxxxxxxxxxxxxx"}, (), "too weak"),
        ({}, ("--dev", "--host", "0.0.0.0"), "non-loopback host '0.0.0.0'"),
        ({"SCORELOOP_DEV_MODE": "1"}, ("--host", "0.0.0.0"), "non-loopback host"),
    ],
    ids=["weak-token", "dev-flag-on-0.0.0.0", "dev-env-on-0.0.0.0"],
)
def test_serve_refuses_to_start(
    state: Path, tmp_path: Path, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    log = tmp_path / "server.log"
    service = ServiceProcess(
        {"SCORELOOP_STATE_ROOT": str(state), **env}, *args, log=log, ready_path="/healthz"
    )
    with pytest.raises(ServiceStartError) as refused:
        service.start()
    assert refused.value.returncode == 2
    text = log.read_text()
    assert message in text
    assert "secrets.token_urlsafe(32)" in text
    assert "xxxxxxxxxxxxxxxx" not in text
