"""The service's Prometheus metrics, from ``prometheus_client``: one registry per app.

Requests are labelled by route template (``/scores/{entity_id}``), never by raw path, so label
cardinality stays bounded. What is exposed (``docs/monitoring.md`` lists every series and the
alerting rules over them, ``deploy/prometheus/rules.yml``):

- ``scoreloop_http_requests_total{method,route,status}`` and the latency histogram
  ``scoreloop_http_request_duration_seconds{method,route,status}``;
- ``scoreloop_snapshot_info{snapshot_id,model_name,model_version}`` (always 1), its rows, when it
  was created and loaded, and ``scoreloop_snapshot_age_seconds`` (now minus its creation);
- ``scoreloop_snapshot_reloads_total{result}`` (swapped, unchanged, refused, empty) and
  ``scoreloop_snapshot_last_reload_success`` (0 from a refusal until a good snapshot serves);
- ``scoreloop_score{source}``, the histogram of answered scores, and
  ``scoreloop_decisions_total{source,decision}`` (``source``: ``lookup`` for ``/scores``,
  ``predict`` for ``/predict``), from which the decision rate follows;
- ``process_*`` (CPU, memory, start time) from the client's process collector.

The service runs one process per instance (``serving.main.run``: one uvicorn or granian
worker), so the registry lives in memory; prometheus_client's multiprocess mode is not needed.
Replicas are scraped one by one and summed in PromQL.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Latency buckets (seconds): a lookup answers in well under a millisecond.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Score buckets: twenty equal bins of the probability.
SCORE_BUCKETS = tuple(round(0.05 * k, 2) for k in range(1, 21))
RELOAD_RESULTS = ("swapped", "unchanged", "refused", "empty")
SOURCES = ("lookup", "predict")
UNMATCHED = "<unmatched>"
#: Methods labelled as themselves; any other (a client can send any token) is ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass
class SnapshotInfo:
    snapshot_id: str
    model_name: str
    model_version: str
    rows: int
    loaded_at: float
    #: When the snapshot was published (its manifest's ``created_at``), epoch seconds.
    created_at: float


class Metrics:
    """The metrics of one service instance (thread-safe: prometheus_client locks each value)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._lock = threading.Lock()
        self.requests = Counter(
            "scoreloop_http_requests",
            "HTTP requests by method, route template and status.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "scoreloop_http_request_duration_seconds",
            "Request latency by method, route template and status.",
            ("method", "route", "status"),
            buckets=BUCKETS,
            registry=registry,
        )
        self.snapshot_info = Info(
            "scoreloop_snapshot",
            "The snapshot being served (value is always 1).",
            registry=registry,
        )
        self.snapshot_rows = Gauge(
            "scoreloop_snapshot_rows", "Entities in the snapshot being served.", registry=registry
        )
        self.snapshot_created = Gauge(
            "scoreloop_snapshot_created_timestamp_seconds",
            "When the snapshot being served was published (0 before one is loaded).",
            registry=registry,
        )
        self.snapshot_loaded = Gauge(
            "scoreloop_snapshot_loaded_timestamp_seconds",
            "When the snapshot being served was loaded (0 before one is loaded).",
            registry=registry,
        )
        age = Gauge(
            "scoreloop_snapshot_age_seconds",
            "Seconds since the snapshot being served was published (NaN before one is loaded).",
            registry=registry,
        )
        age.set_function(self._snapshot_age)
        self.reloads = Counter(
            "scoreloop_snapshot_reloads",
            "Snapshot reload attempts by result (swapped, unchanged, refused, empty).",
            ("result",),
            registry=registry,
        )
        for result in RELOAD_RESULTS:
            self.reloads.labels(result=result)
        self.last_reload = Gauge(
            "scoreloop_snapshot_last_reload_timestamp_seconds",
            "Last reload attempt (0 before the first).",
            registry=registry,
        )
        self.reload_success = Gauge(
            "scoreloop_snapshot_last_reload_success",
            "0 from a refused snapshot until a good one is loaded, else 1.",
            registry=registry,
        )
        self.reload_success.set(1)
        self.scores = Histogram(
            "scoreloop_score",
            "Scores answered, by source (lookup: /scores, predict: /predict).",
            ("source",),
            buckets=SCORE_BUCKETS,
            registry=registry,
        )
        self.decisions = Counter(
            "scoreloop_decisions",
            "Decisions answered, by source and decision (true: at or above the threshold).",
            ("source", "decision"),
            registry=registry,
        )
        self._score_children = {source: self.scores.labels(source=source) for source in SOURCES}
        self._decision_children = {
            (source, decision): self.decisions.labels(
                source=source, decision="true" if decision else "false"
            )
            for source in SOURCES
            for decision in (True, False)
        }
        ProcessCollector(registry=registry)
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.snapshot: SnapshotInfo | None = None
        self.last_reload_at: float | None = None
        self.last_reload_result: str | None = None
        self.last_reload_error: str | None = None
        #: The refusal in force: set by a refused reload, cleared only once the snapshot that
        #: CURRENT names is a good one being served (an "unchanged" poll does not clear it).
        self.refusal: str | None = None

    def _snapshot_age(self) -> float:
        snapshot = self.snapshot
        return time.time() - snapshot.created_at if snapshot is not None else math.nan

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "other"
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            labels = {"method": method, "route": route, "status": str(status)}
            children = (self.requests.labels(**labels), self.latency.labels(**labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_answer(self, source: str, score: float, decision: bool) -> None:
        """One answered score (``source``: ``lookup`` or ``predict``)."""
        self._score_children[source].observe(score)
        self._decision_children[(source, bool(decision))].inc()

    def observe_reload(self, result: str, error: str | None = None) -> None:
        """Record a reload attempt: ``swapped``, ``unchanged``, ``refused`` or ``empty``."""
        with self._lock:
            self.reloads.labels(result=result).inc()
            self.last_reload_at = time.time()
            self.last_reload.set(self.last_reload_at)
            self.last_reload_result = result
            self.last_reload_error = error
            if result == "refused":
                self.refusal = error or "refused"
            elif result == "swapped":
                self.refusal = None
            self.reload_success.set(0 if self.refusal is not None else 1)

    def clear_refusal(self) -> None:
        """CURRENT names the snapshot being served again: no refusal in force."""
        with self._lock:
            self.refusal = None
            self.reload_success.set(1)

    def set_snapshot(self, info: SnapshotInfo) -> None:
        with self._lock:
            self.snapshot = info
            self.snapshot_info.info(
                {
                    "snapshot_id": info.snapshot_id,
                    "model_name": info.model_name,
                    "model_version": info.model_version,
                }
            )
            self.snapshot_rows.set(info.rows)
            self.snapshot_created.set(info.created_at)
            self.snapshot_loaded.set(info.loaded_at)

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The body and content type for a scrape (OpenMetrics when ``accept`` asks for it)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        body, _ = self.exposition()
        return body.decode()


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task or body copy) timing every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.observe_request(
                scope["method"], template, status, time.perf_counter() - start
            )
