"""Fixtures for the Dagster tests: small landed batches cut from the bundled ACS data; the demo's
runs on a persistent instance (``demo_loop``, tests/support/control_room.py) that the UI tests
look at."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from support.control_room import demo_loop  # noqa: F401 (a fixture, found by name)

from pipelines.settings import Settings
from pipelines.spec import DatasetSpec

Land = Callable[..., Path]


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A throwaway Dagster instance (in memory)."""
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def landing(settings: Settings) -> Path:
    settings.landing.mkdir(parents=True)
    return settings.landing


@pytest.fixture
def land(landing: Path, acs: pl.DataFrame, spec: DatasetSpec) -> Land:
    """Write ``batch_<id>.parquet`` (``rows`` ACS rows, ``bad`` of them with an out-of-range age)
    or, with ``kind="labels"``, ``labels_<id>.parquet``; returns the path."""

    def write(
        batch_id: str, *, rows: int = 120, bad: int = 0, kind: str = "records", start: int = 0
    ) -> Path:
        part = acs.slice(start, rows)
        if kind == "labels":
            path = landing / f"labels_{batch_id}.parquet"
            part.select(spec.id.name, spec.target.name).write_parquet(path)
            return path
        frame = part.select(spec.record_columns).with_columns(
            pl.when(pl.int_range(pl.len()) < bad)
            .then(pl.lit(-5.0))
            .otherwise(pl.col("AGEP"))
            .alias("AGEP")
        )
        path = landing / f"batch_{batch_id}.parquet"
        frame.write_parquet(path)
        return path

    return write
