"""``/metrics`` of a real ``scoreloop serve`` process, scraped over HTTP and parsed with
``prometheus_client.parser``: requests and latencies per route and status, the snapshot (version,
age), reload results, and the scores and decisions of answered lookups."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from support.serving import TOKEN, Scrape

from pipelines.settings import BUNDLED_SPEC
from pipelines.snapshot import publish_snapshot, read_current
from pipelines.spec import load_spec
from scoreloop.serve_process import ServiceProcess
from serving.metrics import SCORE_BUCKETS

pytestmark = pytest.mark.slow


def _scrape(http: httpx.Client, **headers: str) -> Scrape:
    response = http.get("/metrics", headers=headers)
    assert response.status_code == 200
    return Scrape(response.text)


def _bucket_counts(scores: list[float]) -> dict[str, float]:
    """Cumulative histogram counts per ``le``, as Prometheus defines them."""
    counts = {str(float(bound)): float(sum(s <= bound for s in scores)) for bound in SCORE_BUCKETS}
    counts["+Inf"] = float(len(scores))
    return counts


def _wait_for(http: httpx.Client, name: str, least: float, **labels: str) -> Scrape:
    """The first scrape in which the sample has reached ``least``."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        scrape = _scrape(http)
        if scrape.get(name, -1.0, **labels) >= least:
            return scrape
        time.sleep(0.1)
    raise AssertionError(f"{name}{labels} never reached {least}")


def test_metrics_of_a_real_server(
    snapshots: Path,
    state: Path,
    tmp_path: Path,
    bundle_v2: Path,
    scores_v1: pl.DataFrame,
    scores_v2: pl.DataFrame,
    scored_rows: pl.DataFrame,
) -> None:
    manifest = read_current(snapshots)
    assert manifest is not None
    env = {
        "SCORELOOP_STATE_ROOT": str(state),
        "SCORELOOP_ADMIN_TOKEN": TOKEN,
        "SCORELOOP_RELOAD_INTERVAL_S": "0.1",
    }
    rows = scores_v1.sort("entity_id")
    single = rows.slice(0, 7)
    batch = rows.slice(7, 5)
    spec = load_spec(BUNDLED_SPEC)
    with (
        ServiceProcess(env, log=tmp_path / "server.log", ready_timeout=60) as service,
        httpx.Client(base_url=service.base_url, timeout=10) as http,
    ):
        before = _scrape(http)
        assert before.value("scoreloop_snapshot_reloads_total", result="swapped") == 1
        for result in ("unchanged", "refused", "empty"):  # every result exported from the start
            assert before.value("scoreloop_snapshot_reloads_total", result=result) >= 0
        assert before.get("scoreloop_score_count", source="lookup") == 0
        info = before.labels("scoreloop_snapshot_info")
        assert info == [
            {
                "snapshot_id": manifest.snapshot_id,
                "model_name": "employment",
                "model_version": "v0.0.1",
            }
        ]
        assert before.value("scoreloop_snapshot_rows") == scores_v1.height
        created = before.value("scoreloop_snapshot_created_timestamp_seconds")
        assert created == pytest.approx(manifest.created_at.timestamp())
        assert before.value("scoreloop_snapshot_age_seconds") >= 0
        assert before.value("scoreloop_snapshot_last_reload_success") == 1
        assert before.value("process_start_time_seconds") > 0

        for entity in single["entity_id"]:
            assert http.get(f"/scores/{entity}").status_code == 200
        assert http.get("/scores/123456789").status_code == 404
        assert http.get("/scores/not-a-number").status_code == 422
        lookup = http.post("/scores/lookup", json={"ids": [*batch["entity_id"], 123456789]})
        assert lookup.status_code == 200 and len(lookup.json()["found"]) == batch.height
        record: dict[str, Any] = {
            name: scored_rows.row(0, named=True)[name] for name in spec.feature_names
        }
        predicted = http.post("/predict", json=record)
        assert predicted.status_code == 200
        assert http.post("/predict", json={**record, "AGEP": -5}).status_code == 422
        scrape = _scrape(http)

        by_route = {"method": "GET", "route": "/scores/{entity_id}"}
        requests = "scoreloop_http_requests_total"
        assert scrape.value(requests, **by_route, status="200") == single.height
        assert scrape.value(requests, **by_route, status="404") == 1
        assert scrape.value(requests, **by_route, status="422") == 1
        assert scrape.value(requests, method="POST", route="/scores/lookup", status="200") == 1
        assert scrape.value(requests, method="POST", route="/predict", status="422") == 1
        latency = "scoreloop_http_request_duration_seconds"
        count = scrape.value(f"{latency}_count", **by_route, status="200")
        assert count == single.height
        assert scrape.value(f"{latency}_bucket", **by_route, status="200", le="+Inf") == count
        assert scrape.value(f"{latency}_sum", **by_route, status="200") > 0

        # Answered lookups: 7 single + 5 in the batch (the unknown ids answer no score).
        answered = pl.concat([single, batch])
        scores = answered["score"].to_list()
        assert scrape.value("scoreloop_score_count", source="lookup") == len(scores)
        assert scrape.value("scoreloop_score_sum", source="lookup") == pytest.approx(sum(scores))
        for le, expected in _bucket_counts(scores).items():
            assert scrape.value("scoreloop_score_bucket", source="lookup", le=le) == expected
        positives = int(answered["decision"].sum())
        decisions = "scoreloop_decisions_total"
        assert scrape.get(decisions, source="lookup", decision="true") == positives
        assert scrape.get(decisions, source="lookup", decision="false") == len(scores) - positives
        # /predict: the one valid record, its own score and decision.
        body = predicted.json()
        assert scrape.value("scoreloop_score_count", source="predict") == 1
        assert scrape.value("scoreloop_score_sum", source="predict") == pytest.approx(body["score"])
        label = "true" if body["decision"] else "false"
        assert scrape.value(decisions, source="predict", decision=label) == 1

        # OpenMetrics when the scraper asks for it (Prometheus does).
        open_metrics = http.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
        assert open_metrics.text.rstrip().endswith("# EOF")

        # A new snapshot: swapped, the version and row count follow.
        new = publish_snapshot(scores_v2, bundle_v2, BUNDLED_SPEC, snapshots)
        after = _wait_for(http, "scoreloop_snapshot_reloads_total", 2, result="swapped")
        assert after.value("scoreloop_snapshot_reloads_total", result="swapped") == 2
        assert after.labels("scoreloop_snapshot_info") == [
            {"snapshot_id": new.snapshot_id, "model_name": "employment", "model_version": "v0.0.2"}
        ]
        assert after.value("scoreloop_snapshot_created_timestamp_seconds") == pytest.approx(
            new.created_at.timestamp()
        )
        assert after.value("scoreloop_snapshot_reloads_total", result="unchanged") >= 1

        # A bad one (every poll refuses it again): success drops to 0, the old version serves.
        (snapshots / "CURRENT.tmp").write_text("no-such-snapshot\n")
        (snapshots / "CURRENT.tmp").replace(snapshots / "CURRENT")
        refused = _wait_for(http, "scoreloop_snapshot_reloads_total", 1, result="refused")
        assert refused.value("scoreloop_snapshot_last_reload_success") == 0
        assert refused.labels("scoreloop_snapshot_info")[0]["model_version"] == "v0.0.2"


def test_unknown_methods_share_one_label(client: Any) -> None:
    """A client can send any method token: the label stays bounded."""
    for method in ("BREW", "WHEN", "GET"):
        client.request(method, "/healthz")
    scrape = Scrape(client.get("/metrics").text)
    methods = {x["method"] for x in scrape.labels("scoreloop_http_requests_total")}
    assert methods == {"GET", "other"}
    assert (
        scrape.value(
            "scoreloop_http_requests_total", method="other", route="/healthz", status="405"
        )
        == 2
    )
