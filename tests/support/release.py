"""Helpers for the release tests."""

from __future__ import annotations

import polars as pl

from pipelines.settings import BUNDLED_SPEC
from pipelines.spec import load_spec
from scoreloop.release.smoke import SmokeCase


def smoke_case(scores: pl.DataFrame, rows: pl.DataFrame, index: int = 3) -> SmokeCase:
    spec = load_spec(BUNDLED_SPEC)
    record = rows.row(index, named=True)
    score = scores.filter(pl.col("entity_id") == record[spec.id.name])["score"][0]
    return SmokeCase(
        entity_id=record[spec.id.name],
        score=float(score),
        record={name: record[name] for name in spec.feature_names},
    )
