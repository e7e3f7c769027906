"""Fixtures for the service's reliability tests: the same real models and snapshots as tests/serving
(support.serving_fixtures)."""

from __future__ import annotations

from support.serving_fixtures import (  # noqa: F401 (fixtures, found by name)
    bundle_v1,
    bundle_v2,
    client,
    scored_rows,
    scores_v1,
    scores_v2,
    serving_settings,
    snapshots,
    train_rows,
)
