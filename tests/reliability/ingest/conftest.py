"""Fixtures of the ingest reliability suite: small real batches of the bundled ACS rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from pipelines.spec import DatasetSpec

Batch = Callable[..., Path]


@pytest.fixture
def batch(acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path) -> Batch:
    """Write ``<folder>/batch_<id>.parquet`` of ``rows`` ACS rows from ``start``; returns it."""

    def write(
        batch_id: str, *, rows: int = 200, start: int = 0, folder: Path | None = None
    ) -> Path:
        folder = folder or tmp_path / "landing"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"batch_{batch_id}.parquet"
        acs.slice(start, rows).select(spec.record_columns).write_parquet(path)
        return path

    return write
