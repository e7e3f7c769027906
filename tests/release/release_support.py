"""Helpers for the release tests."""

from __future__ import annotations

import polars as pl

from pipelines.settings import BUNDLED_SPEC
from pipelines.spec import load_spec
from scoreloop.release.smoke import SmokeCase


def smoke_case(scores: pl.DataFrame, rows: pl.DataFrame, index: int = 3) -> SmokeCase:
    spec = load_spec(BUNDLED_SPEC)
    record = rows.row(index, named=True)
    score = scores.filter(pl.col("entity_id") == record[spec.id.name])["score"][0]
    return SmokeCase(
        entity_id=record[spec.id.name],
        score=float(score),
        record={name: record[name] for name in spec.feature_names},
    )


class LookupLoad:
    """A thread issuing GET /scores/{id} against ``url`` until stopped (or ``max_requests``)."""

    def __init__(self, url: str, ids: list[int], max_requests: int = 20_000) -> None:
        import threading

        self.url, self.ids, self.max_requests = url, ids, max_requests
        self.ok = 0
        self.failures: list[str] = []
        self.versions: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import httpx

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
                    self.versions.append(response.json()["model_version"])
                else:
                    self.failures.append(f"{response.status_code}: {response.text[:100]}")

    def __enter__(self) -> LookupLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
