"""The one Dagster entry point: ``dagster dev -m assets.definitions``.

Each area module in ``assets/`` exposes its own ``defs``; add yours to ``AREAS``. Importing this
does no work (no folders created, no environment read): settings are read when assets run.
"""

from __future__ import annotations

import dagster as dg

from assets import ingestion, monitoring, scoring, training

AREAS = [
    ingestion,
    scoring,
    training,
    monitoring,
]

defs = dg.Definitions.merge(*(area.defs for area in AREAS))
