"""The service's hostile-input corpus (tests/data/hostile_requests/*.json), each case run against
the app: the expected status, never a 500, and an answer that never echoes the request.

A case file: ``{"why", "request": {"method", "path", "headers"?, body}, "expect_status"}`` where
the body is ``"body"`` (text), ``"body_hex"`` (bytes) or ``"parts"`` (``[[text, times], ...]``
concatenated, for the huge ones); ``"chunked": true`` sends it without a Content-Length.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

CORPUS = Path(__file__).resolve().parents[2] / "data" / "hostile_requests"
CASES = sorted(CORPUS.glob("*.json"))
#: An error answer names the problem; anything longer is echoing the request.
MAX_ANSWER_BYTES = 4096


def _body(request: dict[str, Any]) -> bytes | None:
    if "body" in request:
        return str(request["body"]).encode()
    if "body_hex" in request:
        return bytes.fromhex(request["body_hex"])
    if "parts" in request:
        return b"".join(text.encode() * times for text, times in request["parts"])
    return None


def _chunks(body: bytes, size: int = 65_536) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_the_corpus_covers_the_named_faults() -> None:
    names = {path.stem for path in CASES}
    assert len(names) >= 20
    for needed in (
        "body_18mb_declared_length",
        "lookup_nan",
        "predict_1e400",
        "lookup_deep_nesting",
    ):
        assert needed in names


@pytest.mark.parametrize("case_path", CASES, ids=[p.stem for p in CASES])
def test_hostile_request(client: TestClient, case_path: Path) -> None:
    case = json.loads(case_path.read_text())
    request = case["request"]
    body = _body(request)
    content: bytes | Iterator[bytes] | None = body
    if body is not None and request.get("chunked"):
        content = _chunks(body)
    response = client.request(
        request["method"], request["path"], headers=request.get("headers"), content=content
    )
    assert response.status_code == case["expect_status"], (case["why"], response.text[:500])
    assert len(response.content) <= MAX_ANSWER_BYTES, (case["why"], len(response.content))
    assert response.json()["detail"]
