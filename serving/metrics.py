"""Prometheus metrics without a client library: counters, a latency histogram and gauges.

The exposition is the plain-text format 0.0.4 that Prometheus scrapes. Requests are labelled by
route template (``/scores/{entity_id}``), never by raw path, so label cardinality stays bounded.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNMATCHED = "<unmatched>"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items())
    return "{" + inner + "}" if inner else ""


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0
    n: int = 0


@dataclass
class SnapshotInfo:
    snapshot_id: str
    model_name: str
    model_version: str
    rows: int
    loaded_at: float


class Metrics:
    """In-process metrics of one service instance (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._latency: dict[tuple[str, str], _Histogram] = defaultdict(_Histogram)
        self._reloads: dict[str, int] = defaultdict(int)
        self.snapshot: SnapshotInfo | None = None
        self.last_reload_at: float | None = None
        self.last_reload_result: str | None = None
        self.last_reload_error: str | None = None
        #: The refusal in force: set by a refused reload, cleared only once the snapshot that
        #: CURRENT names is a good one being served (an "unchanged" poll does not clear it).
        self.refusal: str | None = None
        self.started_at = time.time()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            hist = self._latency[(method, route)]
            hist.counts[bisect_left(BUCKETS, seconds)] += 1
            hist.total += seconds
            hist.n += 1

    def observe_reload(self, result: str, error: str | None = None) -> None:
        """Record a reload attempt: ``swapped``, ``unchanged``, ``refused`` or ``empty``."""
        with self._lock:
            self._reloads[result] += 1
            self.last_reload_at = time.time()
            self.last_reload_result = result
            self.last_reload_error = error
            if result == "refused":
                self.refusal = error or "refused"
            elif result == "swapped":
                self.refusal = None

    def clear_refusal(self) -> None:
        """CURRENT names the snapshot being served again: no refusal in force."""
        with self._lock:
            self.refusal = None

    def set_snapshot(self, info: SnapshotInfo) -> None:
        with self._lock:
            self.snapshot = info

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        out: list[str] = []
        with self._lock:
            out += [
                "# HELP scoreloop_http_requests_total HTTP requests by method, route, status.",
                "# TYPE scoreloop_http_requests_total counter",
            ]
            for (method, route, status), n in sorted(self._requests.items()):
                labels = _labels({"method": method, "route": route, "status": status})
                out.append(f"scoreloop_http_requests_total{labels} {n}")
            out += [
                "# HELP scoreloop_http_request_duration_seconds Request latency by route.",
                "# TYPE scoreloop_http_request_duration_seconds histogram",
            ]
            for (method, route), hist in sorted(self._latency.items()):
                cumulative = 0
                for bound, count in zip((*BUCKETS, float("inf")), hist.counts, strict=True):
                    cumulative += count
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    labels = _labels({"method": method, "route": route, "le": le})
                    out.append(
                        f"scoreloop_http_request_duration_seconds_bucket{labels} {cumulative}"
                    )
                labels = _labels({"method": method, "route": route})
                out.append(f"scoreloop_http_request_duration_seconds_sum{labels} {hist.total!r}")
                out.append(f"scoreloop_http_request_duration_seconds_count{labels} {hist.n}")
            out += [
                "# HELP scoreloop_snapshot_reloads_total Snapshot reload attempts by result.",
                "# TYPE scoreloop_snapshot_reloads_total counter",
            ]
            for result in ("swapped", "unchanged", "refused", "empty"):
                labels = _labels({"result": result})
                out.append(
                    f"scoreloop_snapshot_reloads_total{labels} {self._reloads.get(result, 0)}"
                )
            out += [
                "# HELP scoreloop_snapshot_last_reload_timestamp_seconds Last reload attempt.",
                "# TYPE scoreloop_snapshot_last_reload_timestamp_seconds gauge",
                f"scoreloop_snapshot_last_reload_timestamp_seconds {self.last_reload_at or 0.0!r}",
                "# HELP scoreloop_snapshot_last_reload_success 0 from a refused snapshot until a "
                "good one is loaded, else 1.",
                "# TYPE scoreloop_snapshot_last_reload_success gauge",
                f"scoreloop_snapshot_last_reload_success {0 if self.refusal is not None else 1}",
            ]
            snap = self.snapshot
            out += [
                "# HELP scoreloop_snapshot_info The snapshot being served (value is always 1).",
                "# TYPE scoreloop_snapshot_info gauge",
            ]
            if snap is not None:
                labels = _labels(
                    {
                        "snapshot_id": snap.snapshot_id,
                        "model_name": snap.model_name,
                        "model_version": snap.model_version,
                    }
                )
                out.append(f"scoreloop_snapshot_info{labels} 1")
            out += [
                "# HELP scoreloop_snapshot_rows Entities in the snapshot being served.",
                "# TYPE scoreloop_snapshot_rows gauge",
                f"scoreloop_snapshot_rows {snap.rows if snap else 0}",
                "# HELP scoreloop_snapshot_loaded_timestamp_seconds When it was loaded.",
                "# TYPE scoreloop_snapshot_loaded_timestamp_seconds gauge",
                f"scoreloop_snapshot_loaded_timestamp_seconds {snap.loaded_at if snap else 0.0!r}",
                "# HELP scoreloop_up_since_timestamp_seconds Process start.",
                "# TYPE scoreloop_up_since_timestamp_seconds gauge",
                f"scoreloop_up_since_timestamp_seconds {self.started_at!r}",
            ]
        return "\n".join(out) + "\n"


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
