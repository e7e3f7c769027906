"""Alerts: the JSON-lines log, a webhook received by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.alerts import (
    WEBHOOK_ENV,
    Alert,
    AlertDeliveryError,
    LogFileSink,
    WebhookSink,
    alert_sinks,
    alerts_path,
    drift_alert,
    ingest_alerts,
    new_ingest_alerts,
    performance_alert,
    send_alert,
)
from pipelines.drift import DRIFT_SCHEMA
from pipelines.ingest import LOG_SCHEMA
from pipelines.settings import Settings, get_settings
from pipelines.spec import DatasetSpec


class Receiver:
    """A real HTTP server on 127.0.0.1 (random port) recording the JSON bodies POSTed to it."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        received, paths = self.received, self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                paths.append(self.path)
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 5
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(timeout=5)


def _alert() -> Alert:
    return Alert(kind="drift", severity="warning", title="drift in batch 2015-03", message="AGEP")


def test_webhook_alert_is_received_by_a_real_server(receiver: Receiver) -> None:
    WebhookSink(receiver.url, timeout=5).send(_alert())
    assert receiver.paths == ["/hooks/T0KEN"]
    body = receiver.received[0]
    assert body["text"] == "[warning] drift in batch 2015-03: AGEP"
    assert body["alert"]["kind"] == "drift"
    assert body["alert"]["title"] == "drift in batch 2015-03"


def test_webhook_error_status_is_a_delivery_error() -> None:
    server = Receiver(status=500)
    server.thread.start()
    try:
        with pytest.raises(AlertDeliveryError, match=r"127\.0\.0\.1.*/\.\.\. "):
            WebhookSink(server.url, timeout=5).send(_alert())
    finally:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(timeout=5)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_dead_webhook_does_not_lose_the_alert(tmp_path: Path) -> None:
    log_sink = LogFileSink(tmp_path / "alerts.jsonl")
    dead = WebhookSink(f"http://127.0.0.1:{_closed_port()}/x", timeout=2)
    errors = send_alert(_alert(), [dead, log_sink])
    assert len(errors) == 1
    assert "T0KEN" not in errors[0]
    assert [a["title"] for a in log_sink.read()] == ["drift in batch 2015-03"]


def test_webhook_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookSink("file:///etc/passwd")


def test_configured_sinks_log_file_and_webhook_from_env(
    settings: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    sinks = alert_sinks(settings)
    assert [type(s) for s in sinks] == [LogFileSink]
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
    sinks = alert_sinks(get_settings())
    assert [type(s) for s in sinks] == [LogFileSink, WebhookSink]
    assert send_alert(_alert(), sinks) == []
    assert len(receiver.received) == 1
    lines = alerts_path(settings).read_text().splitlines()
    assert json.loads(lines[0])["kind"] == "drift"


def test_webhook_from_params(settings: Settings, tmp_path: Path, receiver: Receiver) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(f"monitoring:\n  webhook_url: {receiver.url}\n")
    sinks = alert_sinks(settings.model_copy(update={"params_path": params}))
    assert isinstance(sinks[-1], WebhookSink)
    assert sinks[-1].url == receiver.url


def test_ingest_alerts_name_refused_and_failed_batches() -> None:
    now = datetime.now(UTC)
    base = {
        "kind": "records",
        "data_version": "x",
        "accepted": 0,
        "ignored_columns": [],
        "processed_at": now,
    }
    log_frame = pl.DataFrame(
        [
            base
            | {
                "batch_id": "01",
                "source_file": "a",
                "status": "accepted",
                "rows": 10,
                "rejected": 0,
                "reject_rate": 0.0,
                "error": None,
            },
            base
            | {
                "batch_id": "02",
                "source_file": "b.parquet",
                "status": "refused",
                "rows": 10,
                "rejected": 5,
                "reject_rate": 0.5,
                "error": None,
            },
            base
            | {
                "batch_id": "03",
                "source_file": "c.csv",
                "status": "failed",
                "rows": None,
                "rejected": None,
                "reject_rate": None,
                "error": "truncated file",
            },
        ],
        schema=LOG_SCHEMA,
    )
    alerts = ingest_alerts(log_frame)
    assert [(a.kind, a.batch_id) for a in alerts] == [
        ("batch_refused", "02"),
        ("batch_failed", "03"),
    ]
    assert alerts[0].message == "b.parquet: reject rate 50.00% of 10 rows"
    assert alerts[1].message == "c.csv: truncated file"
    assert ingest_alerts(log_frame, "labels")[0].title == "labels of batch 02 refused"


def test_drift_and_performance_alerts() -> None:
    drifted = pl.DataFrame(
        [
            {
                "batch_id": "b",
                "feature": "AGEP",
                "metric": "psi",
                "value": 1.5,
                "threshold": 0.2,
                "drifted": True,
                "model_version": "v1",
                "computed_at": datetime.now(UTC),
            },
        ],
        schema=DRIFT_SCHEMA,
    )
    alert = drift_alert("b", "v1", drifted)
    assert alert is not None
    assert "AGEP psi 1.500 > 0.2" in alert.message
    assert drift_alert("b", "v1", drifted.clear()) is None
    metrics = {"batch_id": "b", "model_version": "v1", "rows": 500, "roc_auc": 0.7}
    drop = performance_alert(metrics, 0.85, 0.03)
    assert drop is not None
    assert drop.kind == "performance_drop"
    assert performance_alert(metrics | {"roc_auc": 0.83}, 0.85, 0.03) is None
    assert performance_alert(metrics, None, 0.03) is None


def test_new_ingest_alerts_reports_each_refused_or_failed_entry_once(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec
) -> None:
    from support.scoring import ingest_batch

    assert new_ingest_alerts(settings.tables, {}) == ([], {})
    ingest_batch(settings, acs, spec, "2015-01", start=0, rows=200)
    alerts, seen = new_ingest_alerts(settings.tables, {})
    assert alerts == [] and set(seen) == {"records"}

    ingest_batch(settings, acs, spec, "2015-02", start=200, rows=200, bad=50)
    alerts, seen = new_ingest_alerts(settings.tables, seen)
    assert [(a.kind, a.batch_id) for a in alerts] == [("batch_refused", "2015-02")]
    assert new_ingest_alerts(settings.tables, seen) == ([], seen)
