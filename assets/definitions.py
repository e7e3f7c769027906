"""The one Dagster entry point: ``dagster dev -m assets.definitions``.

Each area module in ``assets/`` exposes its own ``defs``; add yours to ``AREAS``. Importing this
does no work (no folders created, no environment read): settings are read when assets run.
"""

from __future__ import annotations

import dagster as dg

from assets import ingestion, maintenance, monitoring, scoring, training

AREAS = [
    ingestion,
    scoring,
    training,
    monitoring,
    maintenance,
]

#: Evaluates the eager conditions (a validated batch is scored, drift and performance follow its
#: scores) without a person first switching on Dagster's default automation sensor in the UI.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "scoreloop_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs the assets whose automation conditions are met (scores, drift, performance, "
    "serving_snapshot).",
)

defs = dg.Definitions.merge(
    *(area.defs for area in AREAS), dg.Definitions(sensors=[automation_sensor])
)
