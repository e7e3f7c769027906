"""Fixtures of the retraining tests."""

from __future__ import annotations

import polars as pl
import pytest
from support.retraining import build_tables

from pipelines.settings import BUNDLED_SPEC
from pipelines.spec import load_spec
from pipelines.training_set import SplitParams, build_training_set, select_batches


@pytest.fixture(scope="session")
def training_frame(acs: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """A small real training set: 2 years x 4 batches of ingested ACS rows, split by time."""
    spec = load_spec(BUNDLED_SPEC)
    root = build_tables(acs, spec, tmp_path_factory.mktemp("tables"), rows_per_year=2000)
    split = SplitParams(window_batches=8, validation_batches=1, holdout_batches=2, min_rows=100)
    return build_training_set(select_batches(root, split), spec, root, split)
