"""Monitoring (group ``monitoring``): per-batch ``drift``, ``performance`` and
``estimated_performance`` (CBPE) with their non-blocking checks (:mod:`.assets`,
:mod:`.checks`), and the alert and staleness sensors (:mod:`.sensors`). The logic is in
``pipelines.monitor``, ``pipelines.alerts`` and ``pipelines.staleness``; this package only wires
it into Dagster."""

import dagster as dg

from assets.monitoring.assets import drift, estimated_performance, performance
from assets.monitoring.sensors import (
    asset_check_alert_sensor,
    ingest_alert_sensor,
    monitoring_failure_sensor,
    staleness_sensor,
)
from assets.resources import RESOURCES

__all__ = [
    "asset_check_alert_sensor",
    "defs",
    "drift",
    "estimated_performance",
    "ingest_alert_sensor",
    "monitoring_failure_sensor",
    "monitoring_job",
    "performance",
    "staleness_sensor",
]

MONITORING_JOB = "monitoring"
monitoring_job = dg.define_asset_job(
    MONITORING_JOB,
    selection=dg.AssetSelection.assets(drift, performance, estimated_performance),
    description="Drift and realised / estimated performance of one batch with the champion.",
)

defs = dg.Definitions(
    assets=[drift, performance, estimated_performance],
    jobs=[monitoring_job],
    sensors=[
        monitoring_failure_sensor,
        ingest_alert_sensor,
        asset_check_alert_sensor,
        staleness_sensor,
    ],
    resources=RESOURCES,
)
