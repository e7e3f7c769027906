"""Delivering alerts from Dagster: every sink, and a sink that fails is logged, not raised."""

import logging
from collections.abc import Iterable

from pipelines.alerts import Alert, alert_sinks, send_alert
from pipelines.settings import Settings


def deliver(alerts: Iterable[Alert], settings: Settings, log: logging.Logger, what: str) -> None:
    """Send each alert to every configured sink; a failed delivery is logged and the run goes on."""
    for alert in alerts:
        for problem in send_alert(alert, alert_sinks(settings)):
            log.error(f"{what} not delivered: {problem}")
