"""Alerts that reach a person: refused or failed batches, drift, performance drops, staleness,
failed runs.

An :class:`AlertSink` delivers an :class:`Alert`. :class:`LogFileSink` appends JSON lines to a
file under the state root (always on: ``<state root>/alerts/alerts.jsonl``); :class:`WebhookSink`
POSTs the alert as JSON to a URL (Slack/Teams/PagerDuty-style incoming webhooks, or any HTTP
endpoint). :func:`alert_sinks` builds the configured sinks: the log file, plus a webhook when
``SCORELOOP_ALERT_WEBHOOK_URL`` (or ``monitoring.webhook_url`` in params.yaml) is set.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl

from pipelines.drift_stats import P_VALUE_METHODS
from pipelines.errors import ScoreloopError
from pipelines.ingest import read_ingest_log
from pipelines.params import load_params
from pipelines.settings import Settings, get_settings

log = logging.getLogger(__name__)

Severity = Literal["info", "warning", "error"]
WEBHOOK_ENV = "SCORELOOP_ALERT_WEBHOOK_URL"
ALERTS_FILE = Path("alerts") / "alerts.jsonl"


class AlertDeliveryError(ScoreloopError, RuntimeError):
    """An alert could not be delivered by a sink (the message names the sink and the cause)."""


@dataclass
class Alert:
    """One thing a person should look at."""

    # batch_refused | batch_failed | drift | performance_drop | stale | run_failure |
    # registry_push | deploy_failed | check_failed | check_refused
    kind: str
    severity: Severity
    title: str
    message: str
    batch_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AlertSink(ABC):
    """Somewhere alerts go."""

    @abstractmethod
    def send(self, alert: Alert) -> None:
        """Deliver ``alert``; raise :class:`AlertDeliveryError` when it cannot."""


class LogFileSink(AlertSink):
    """Append each alert as one JSON line to ``path`` (folders created on first alert)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def send(self, alert: Alert) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(alert.to_dict(), sort_keys=True, default=str) + "\n")
        except OSError as exc:
            raise AlertDeliveryError(f"cannot write alert to {self.path}: {exc}") from exc

    def read(self) -> list[dict[str, Any]]:
        """The alerts written so far, oldest first."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


class WebhookSink(AlertSink):
    """POST each alert as JSON (``{"text": title + message, "alert": {...}}``) to ``url``.

    The ``text`` field makes the payload readable by Slack/Teams-style incoming webhooks; the
    ``alert`` field carries every detail for other receivers.
    """

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must be http(s)://..., got {url!r}")
        self.url = url
        self.timeout = timeout

    def send(self, alert: Alert) -> None:
        body = json.dumps(
            {
                "text": f"[{alert.severity}] {alert.title}: {alert.message}",
                "alert": alert.to_dict(),
            },
            default=str,
        ).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = int(response.status)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise AlertDeliveryError(f"webhook {self._safe_url()} failed: {exc}") from exc
        if status >= 300:
            raise AlertDeliveryError(f"webhook {self._safe_url()} answered HTTP {status}")

    def _safe_url(self) -> str:
        # Webhook URLs often embed a token in the path: show the host only.
        return "/".join(self.url.split("/")[:3]) + "/..."


def alerts_path(settings: Settings) -> Path:
    return settings.state_root / ALERTS_FILE


def alert_sinks(settings: Settings | None = None) -> list[AlertSink]:
    """The configured sinks: the JSON-lines log file, plus a webhook if one is configured."""
    settings = settings or get_settings()
    sinks: list[AlertSink] = [LogFileSink(alerts_path(settings))]
    url = os.environ.get(WEBHOOK_ENV) or load_params(settings.params_path).section(
        "monitoring"
    ).get("webhook_url")
    if url:
        sinks.append(WebhookSink(str(url)))
    return sinks


def send_alert(alert: Alert, sinks: Sequence[AlertSink] | None = None) -> list[str]:
    """Deliver ``alert`` to every sink; returns the delivery errors (each also logged).

    One sink failing does not stop the others, so the log file still records an alert whose
    webhook is down.
    """
    errors = []
    for sink in alert_sinks() if sinks is None else sinks:
        try:
            sink.send(alert)
        except AlertDeliveryError as exc:
            log.error("alert %r not delivered: %s", alert.title, exc)
            errors.append(str(exc))
    return errors


# --- Alerts of each kind ------------------------------------------------------------------------


def ingest_alerts(log_frame: pl.DataFrame, kind: str = "records") -> list[Alert]:
    """One alert per refused or failed entry of an ingest log (``pipelines.ingest.LOG_SCHEMA``)."""
    alerts = []
    what = "batch" if kind == "records" else "labels of batch"
    for row in log_frame.filter(pl.col("status").is_in(["refused", "failed"])).iter_rows(
        named=True
    ):
        refused = row["status"] == "refused"
        why = (
            f"reject rate {row['reject_rate']:.2%} of {row['rows']} rows"
            if refused and row["reject_rate"] is not None
            else (row["error"] or "unknown error")
        )
        alerts.append(
            Alert(
                kind="batch_refused" if refused else "batch_failed",
                severity="error",
                title=f"{what} {row['batch_id']} {row['status']}",
                message=f"{row['source_file']}: {why}",
                batch_id=row["batch_id"],
                details={
                    "kind": kind,
                    "source_file": row["source_file"],
                    "status": row["status"],
                    "processed_at": str(row["processed_at"]),
                },
            )
        )
    return alerts


def _outcome(row: dict[str, Any]) -> str:
    """What an ingest attempt ended with, as compared between attempts of one batch: the status,
    the file and the reason (a re-run of the same failure has the same outcome)."""
    return json.dumps([row["status"], row["source_file"], row["reject_rate"], row["error"]])


def new_ingest_alerts(
    table_root: str, since: Mapping[str, Any]
) -> tuple[list[Alert], dict[str, Any]]:
    """Alerts for refused/failed ingest-log entries newer than ``since``, and the updated
    ``since`` to remember for the next call.

    ``since`` holds, per kind, the ISO time of the newest entry already seen and, under
    ``alerted``, the outcome last alerted per ``kind/batch_id``: an attempt that repeats it (the
    same file failing the same way again, e.g. the landing sensor re-running a file the demo
    already failed on) is not alerted twice; an accepted attempt clears it, so a failure after
    a success is alerted again.
    """
    seen = dict(since)
    alerted: dict[str, str] = dict(seen.pop("alerted", {}))
    alerts: list[Alert] = []
    for kind in ("records", "labels"):
        log_frame = read_ingest_log(table_root, kind)
        if last := since.get(kind):
            log_frame = log_frame.filter(pl.col("processed_at") > datetime.fromisoformat(last))
        if log_frame.height:
            newest = log_frame["processed_at"].max()
            assert isinstance(newest, datetime)
            seen[kind] = newest.isoformat()
        fresh = []
        for row in log_frame.sort("processed_at").iter_rows(named=True):
            key = f"{kind}/{row['batch_id']}"
            if row["status"] == "accepted":
                alerted.pop(key, None)
            elif alerted.get(key) != (outcome := _outcome(row)):
                alerted[key] = outcome
                fresh.append(row)
        alerts.extend(ingest_alerts(pl.DataFrame(fresh, schema=log_frame.schema), kind))
    return alerts, {**seen, "alerted": alerted} if alerted else seen


@dataclass(frozen=True)
class IngestAlerts:
    """What the ingest-alert sensor delivers: new alerts, and the cursor to store for next time."""

    alerts: list[Alert]
    cursor: str


def pending_ingest_alerts(table_root: str, cursor: str | None) -> IngestAlerts:
    """:func:`new_ingest_alerts` since a stored cursor (JSON: the ``since`` times per kind and
    the ``alerted`` outcomes per batch; None at first)."""
    alerts, seen = new_ingest_alerts(table_root, json.loads(cursor) if cursor else {})
    return IngestAlerts(alerts=alerts, cursor=json.dumps(seen, sort_keys=True))


def ingest_failure_logged(table_root: str, batch_id: str | None, since: datetime) -> bool:
    """Whether the ingest log records a failed attempt of ``batch_id`` (records or labels) at or
    after ``since`` (a failed ``ingest`` run's creation). The ingest-alert sensor alerts that
    failure as ``batch_failed``, so the failed run itself is not alerted a second time."""
    if batch_id is None:
        return False
    return any(
        read_ingest_log(table_root, kind, batch_id)
        .filter((pl.col("status") == "failed") & (pl.col("processed_at") >= since))
        .height
        for kind in ("records", "labels")
    )


def drift_alert(batch_id: str, model_version: str, drifted: pl.DataFrame) -> Alert | None:
    """An alert naming the drifted features of a batch (None when nothing drifted)."""
    if drifted.height == 0:
        return None
    parts = [
        # p-values (ks, chi2) drift below their threshold, distances above it
        f"{r['feature']} {r['metric']} {r['value']:.3g} < {r['threshold']}"
        if r["metric"] in P_VALUE_METHODS
        else f"{r['feature']} {r['metric']} {r['value']:.3f} > {r['threshold']}"
        for r in drifted.sort("value", descending=True).iter_rows(named=True)
    ]
    return Alert(
        kind="drift",
        severity="warning",
        title=f"drift in batch {batch_id}",
        message=f"{drifted.height} metric(s) over threshold vs model {model_version}: "
        + "; ".join(parts[:8]),
        batch_id=batch_id,
        details={"model_version": model_version, "drifted": parts},
    )


def performance_alert(
    metrics: dict[str, Any], reference_auc: float | None, tolerance: float
) -> Alert | None:
    """An alert when a batch's realised AUC is below ``reference_auc - tolerance``."""
    auc = metrics.get("roc_auc")
    if auc is None or reference_auc is None or auc >= reference_auc - tolerance:
        return None
    return Alert(
        kind="performance_drop",
        severity="warning",
        title=f"performance drop in batch {metrics['batch_id']}",
        message=f"realised ROC AUC {auc:.4f} of model {metrics['model_version']} is below the "
        f"reference {reference_auc:.4f} - {tolerance} on {metrics['rows']} labelled rows",
        batch_id=str(metrics["batch_id"]),
        details={k: v for k, v in metrics.items() if k != "computed_at"},
    )


def stale_alert(model_version: str, reasons: list[str], run_requested: bool) -> Alert:
    return Alert(
        kind="stale",
        severity="warning",
        title=f"model {model_version} is stale",
        message=("retraining requested: " if run_requested else "") + "; ".join(reasons),
        details={"model_version": model_version, "reasons": reasons},
    )


def run_failure_alert(
    job_name: str, run_id: str, partition: str | None, error: str, steps: list[str]
) -> Alert:
    where = f" (partition {partition})" if partition else ""
    return Alert(
        kind="run_failure",
        severity="error",
        title=f"run of {job_name}{where} failed",
        message=error,
        batch_id=partition,
        details={"job": job_name, "run_id": run_id, "partition": partition, "failed_steps": steps},
    )


@dataclass(frozen=True)
class StepFailure:
    """One failed step of a run: the user-facing description if any, else the error message."""

    step: str
    description: str | None = None
    error: str | None = None

    @property
    def message(self) -> str | None:
        why = self.description or (self.error.strip() if self.error else None)
        return f"{self.step}: {why}" if why else None


def failed_run_alert(
    job_name: str,
    run_id: str,
    partition: str | None,
    failures: Sequence[StepFailure],
    run_message: str | None,
) -> Alert:
    """The alert of a failed run: each failed step's reason, else the run's own failure message."""
    reasons = [m for f in failures if (m := f.message)]
    error = "; ".join(reasons) or run_message or "run failed"
    return run_failure_alert(job_name, run_id, partition, error, [f.step for f in failures])


@dataclass(frozen=True)
class FailedRuns:
    """What the failed-run sensor alerts next: the run ids not alerted yet, oldest failure
    first, and its new cursor."""

    run_ids: list[str]
    cursor: str


def failed_runs_after(cursor: str | None) -> datetime | None:
    """The update time from which the failed-run sensor looks again (None: every run so far,
    including runs that failed before the sensor first ran)."""
    return datetime.fromisoformat(json.loads(cursor)["after"]) if cursor else None


def pending_failed_runs(failed: Sequence[tuple[str, datetime]], cursor: str | None) -> FailedRuns:
    """The failed runs (run id, time of the failure's last update) not alerted yet.

    The cursor is JSON: ``after``, the newest update time alerted, and ``at``, the runs alerted
    with exactly that time (a run updated in the same instant as the cursor is neither alerted
    twice nor missed, whether the store's "updated after" is strict or not). Each failed run is
    alerted once, in the order its failure was recorded.
    """
    state = json.loads(cursor) if cursor else {}
    after = datetime.fromisoformat(state["after"]) if state else None
    at = set(state.get("at", []))
    new = sorted(
        (
            (run_id, updated)
            for run_id, updated in failed
            if after is None or updated > after or (updated == after and run_id not in at)
        ),
        key=lambda run: (run[1], run[0]),
    )
    if not new:
        return FailedRuns(run_ids=[], cursor=cursor or "")
    newest = new[-1][1]
    seen = {run_id for run_id, updated in new if updated == newest}
    if newest == after:
        seen |= at
    return FailedRuns(
        run_ids=[run_id for run_id, _ in new],
        cursor=json.dumps({"after": newest.isoformat(), "at": sorted(seen)}),
    )


@dataclass(frozen=True)
class FailedCheck:
    """One failed asset check evaluation as the orchestrator recorded it (``id``: its storage id,
    increasing, so a cursor of the highest id seen alerts each evaluation once)."""

    id: int
    asset: str
    check: str
    severity: str  # ERROR | WARN (the orchestrator's check severity)
    partition: str | None = None
    run_id: str | None = None
    description: str | None = None


#: WARN checks whose failure is a decision worth an info alert (the promotion gate refusing a
#: challenger). Other WARN checks (drift, performance) have their own alerts and are not repeated.
REFUSAL_CHECKS = frozenset({"gate"})


#: ERROR checks that refuse a batch: the ingest-alert sensor already alerts the refusal from the
#: ingest log (``batch_refused``), so a refused batch is alerted once, not again as a check.
INGEST_REFUSAL_CHECKS = frozenset({"reject_rate_within_limit", "labels_reject_rate_within_limit"})


def alerts_on(failed: FailedCheck) -> bool:
    """ERROR failures alert (except :data:`INGEST_REFUSAL_CHECKS`, alerted as ``batch_refused``);
    WARN failures only for :data:`REFUSAL_CHECKS`."""
    if failed.check in INGEST_REFUSAL_CHECKS:
        return False
    return failed.severity.upper() == "ERROR" or failed.check in REFUSAL_CHECKS


def failed_check_alert(failed: FailedCheck) -> Alert:
    """A failed ERROR check alerts like a failed run (``check_failed``, error); a failed WARN
    check (the promotion gate refusing a challenger) is a ``check_refused`` info alert."""
    where = f" (partition {failed.partition})" if failed.partition else ""
    error = failed.severity.upper() == "ERROR"
    name = f"{failed.asset}:{failed.check}"
    return Alert(
        kind="check_failed" if error else "check_refused",
        severity="error" if error else "info",
        title=f"check {name}{where} " + ("failed" if error else "refused"),
        message=failed.description or f"asset check {name} did not pass",
        batch_id=failed.partition,
        details={
            "asset": failed.asset,
            "check": failed.check,
            "check_severity": failed.severity.upper(),
            "partition": failed.partition,
            "run_id": failed.run_id,
            "evaluation_id": failed.id,
        },
    )


def pending_check_alerts(
    failed: Sequence[FailedCheck], cursor: str | None
) -> tuple[list[Alert], str]:
    """Alerts for the failed evaluations after ``cursor`` (the highest evaluation id seen; none:
    every evaluation so far), oldest first, and the new cursor."""
    after = int(cursor) if cursor else 0
    new = sorted((f for f in failed if f.id > after), key=lambda f: f.id)
    alerts = [failed_check_alert(f) for f in new if alerts_on(f)]
    return alerts, str(max([after, *(f.id for f in new)]))
