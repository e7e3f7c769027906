"""Fixtures for the lookup-service tests: two tiny real model versions and published snapshots
(defined in support.serving_fixtures, shared with tests/reliability/serving)."""

from __future__ import annotations

from support.browser import browser  # noqa: F401 (a fixture, found by name)
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
