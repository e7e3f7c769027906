"""Partitions shared by every Dagster area: one dynamic partition per landed batch id."""

from __future__ import annotations

import dagster as dg

BATCHES = "batches"

#: One partition per batch id (``2015-01`` ...), added by ``landing_sensor`` or the demo.
batch_partitions = dg.DynamicPartitionsDefinition(name=BATCHES)
