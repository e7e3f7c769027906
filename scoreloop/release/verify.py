"""After a rollout: the front answers, ready, with the new version, on every request."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from scoreloop.release.errors import ReleaseError
from scoreloop.release.state import default_deploy_dir, load_state


@dataclass(frozen=True)
class VerifyResult:
    front_url: str
    model_version: str
    colour: str
    requests: int
    seconds: float


def verify(
    expected_version: str, *, deploy_dir: Path | None = None, requests: int = 20
) -> VerifyResult:
    """``/readyz`` and ``requests`` calls of ``/model`` through the front say ``expected_version``.

    Raises:
        ReleaseError: nothing live, the front does not answer, or some answer names another
            version (roll back with ``scoreloop.release.rollback.rollback``).
    """
    started = time.perf_counter()
    deploy_dir = deploy_dir or default_deploy_dir()
    state = load_state(deploy_dir)
    if state.live is None:
        raise ReleaseError(f"nothing is live in {deploy_dir}: roll a release out first")
    url = f"http://127.0.0.1:{state.front_port}"
    try:
        with httpx.Client(base_url=url, timeout=5.0) as http:
            ready = http.get("/readyz")
            if ready.status_code != 200:
                raise ReleaseError(
                    f"verify: {url}/readyz answered {ready.status_code}: {ready.text}"
                )
            for _ in range(requests):
                version = http.get("/model").json().get("version")
                if version != expected_version:
                    raise ReleaseError(
                        f"verify: {url}/model says {version!r}, expected {expected_version!r}: "
                        "roll back (scoreloop.release.rollback.rollback)"
                    )
    except httpx.HTTPError as exc:
        raise ReleaseError(
            f"verify: the front {url} does not answer ({exc}); roll back or restart it"
        ) from exc
    return VerifyResult(
        front_url=url,
        model_version=expected_version,
        colour=state.live,
        requests=requests,
        seconds=round(time.perf_counter() - started, 2),
    )
