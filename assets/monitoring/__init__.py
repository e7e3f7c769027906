"""Monitoring (group ``monitoring``): per-batch ``drift``, ``performance`` and
``estimated_performance`` (CBPE) with their non-blocking checks (:mod:`.assets`,
:mod:`.checks`), and the alert and staleness sensors (:mod:`.sensors`). The logic is in
``pipelines.monitor``, ``pipelines.alerts`` and ``pipelines.staleness``; this package only wires
it into Dagster."""

import dagster as dg

from assets.monitoring.assets import drift, estimated_performance, performance
from assets.monitoring.sensors import (
    ingest_alert_sensor,
    monitoring_failure_sensor,
    staleness_sensor,
)
from assets.resources import RESOURCES

__all__ = [
    "defs",
    "drift",
    "estimated_performance",
    "ingest_alert_sensor",
    "monitoring_failure_sensor",
    "performance",
    "staleness_sensor",
]

defs = dg.Definitions(
    assets=[drift, performance, estimated_performance],
    sensors=[monitoring_failure_sensor, ingest_alert_sensor, staleness_sensor],
    resources=RESOURCES,
)
