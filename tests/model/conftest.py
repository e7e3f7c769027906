"""A model trained once per session on a sample of the ACS data, for behavioural tests.

Trained with the project's own ``train_challenger`` (same features, params shape, threshold
policy) on 2015 rows, early-stopped on 2016 rows; the holdout is a 2018 sample (out of time).
"""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.settings import BUNDLED_SPEC
from pipelines.spec import DatasetSpec, load_spec
from pipelines.train import TrainedModel, TrainingParams, train_challenger

SAMPLES = {"train": (2015, 15_000), "validation": (2016, 5_000), "holdout": (2018, 10_000)}


@pytest.fixture(scope="session")
def model_spec() -> DatasetSpec:
    return load_spec(BUNDLED_SPEC)


@pytest.fixture(scope="session")
def labelled(acs: pl.DataFrame) -> pl.DataFrame:
    parts = [
        acs.filter(pl.col("year") == year)
        .sample(n=rows, seed=11)
        .with_columns(
            pl.lit(split).alias("split"),
            pl.col("year").cast(pl.String).alias("batch_id"),
            pl.col("employed").cast(pl.Int8).alias("label"),
        )
        for split, (year, rows) in SAMPLES.items()
    ]
    return pl.concat(parts)


@pytest.fixture(scope="session")
def trained(labelled: pl.DataFrame, model_spec: DatasetSpec) -> TrainedModel:
    params = TrainingParams(iterations=150, thread_count=2)
    return train_challenger(labelled, model_spec, params, name="employment", data_version="test")


@pytest.fixture(scope="session")
def holdout(labelled: pl.DataFrame) -> pl.DataFrame:
    return labelled.filter(pl.col("split") == "holdout")
