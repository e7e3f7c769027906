"""A bounded lookup load against the front, to count failed requests across a rollout.

    with LookupLoad("http://127.0.0.1:8080", ids) as load:
        rollout(...)
    load.result().failed == 0

One thread, one keep-alive connection, ``GET /scores/{id}`` cycling through ``ids`` until the
block ends or ``max_requests`` were sent. Any transport error or non-200 answer is a failure.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

import httpx


@dataclass(frozen=True)
class LoadResult:
    ok: int
    failed: int
    failures: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)


class LookupLoad:
    """Lookups against ``url`` in a background thread while the ``with`` block runs."""

    def __init__(self, url: str, ids: list[int] | list[str], max_requests: int = 50_000) -> None:
        if not ids:
            raise ValueError("LookupLoad needs at least one entity id")
        self.url, self.ids, self.max_requests = url, list(ids), max_requests
        self.ok = 0
        self.failures: list[str] = []
        self.versions: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lookup-load", daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10.0) as http:
            for i in range(self.max_requests):
                if self._stop.is_set():
                    return
                entity = self.ids[i % len(self.ids)]
                try:
                    response = http.get(f"/scores/{entity}")
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if response.status_code == 200:
                    self.ok += 1
                    self.versions.append(str(response.json()["model_version"]))
                else:
                    self.failures.append(f"{response.status_code}: {response.text[:100]}")

    def __enter__(self) -> LookupLoad:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def result(self) -> LoadResult:
        return LoadResult(
            ok=self.ok,
            failed=len(self.failures),
            failures=list(self.failures[:20]),
            versions=dict(Counter(self.versions)),
        )
