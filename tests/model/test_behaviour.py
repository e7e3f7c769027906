"""Behavioural tests of a trained model: invariance, direction, minimum quality.

Expected directions are the ones the ACS data itself supports: employment rates rise with
educational attainment among working-age adults, and fall sharply past retirement age.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from pipelines.score import positive_probability
from pipelines.spec import DatasetSpec
from pipelines.train import TrainedModel

#: Measured 2026-11-27 on this sample: ROC AUC 0.906 on the 2018 holdout; floor = that - 0.025.
MIN_ROC_AUC = 0.88


def test_entity_id_and_time_are_not_features(
    trained: TrainedModel, model_spec: DatasetSpec
) -> None:
    names = list(trained.model.feature_names_)
    assert model_spec.id.name not in names and model_spec.time.name not in names
    assert names == model_spec.feature_names


def test_changing_the_entity_id_does_not_change_scores(
    trained: TrainedModel, holdout: pl.DataFrame, model_spec: DatasetSpec
) -> None:
    shuffled_ids = holdout.with_columns(pl.col("id").reverse())
    assert np.array_equal(
        positive_probability(trained.model, holdout, model_spec),
        positive_probability(trained.model, shuffled_ids, model_spec),
    )


def test_age_jitter_within_a_year_barely_moves_scores(
    trained: TrainedModel, holdout: pl.DataFrame, model_spec: DatasetSpec
) -> None:
    base = positive_probability(trained.model, holdout, model_spec)
    jittered = positive_probability(
        trained.model, holdout.with_columns(pl.col("AGEP") + 0.3), model_spec
    )
    assert float(np.quantile(np.abs(base - jittered), 0.99)) < 0.02


def test_higher_education_raises_employment_for_working_age(
    trained: TrainedModel, holdout: pl.DataFrame, model_spec: DatasetSpec
) -> None:
    working_age = holdout.filter(pl.col("AGEP").is_between(25, 64))
    bachelor = working_age.with_columns(pl.lit("21").alias("SCHL"))
    high_school = working_age.with_columns(pl.lit("16").alias("SCHL"))
    lift = (
        positive_probability(trained.model, bachelor, model_spec).mean()
        - positive_probability(trained.model, high_school, model_spec).mean()
    )
    assert lift > 0.03


def test_working_age_scores_higher_than_past_retirement(
    trained: TrainedModel, holdout: pl.DataFrame, model_spec: DatasetSpec
) -> None:
    adults = holdout.filter(pl.col("AGEP") >= 16)
    at_40 = positive_probability(
        trained.model, adults.with_columns(pl.lit(40.0).alias("AGEP")), model_spec
    )
    at_85 = positive_probability(
        trained.model, adults.with_columns(pl.lit(85.0).alias("AGEP")), model_spec
    )
    assert at_40.mean() > at_85.mean() + 0.3
    assert float(np.mean(at_40 > at_85)) > 0.9


def test_minimum_quality_on_out_of_time_holdout(
    trained: TrainedModel, holdout: pl.DataFrame, model_spec: DatasetSpec
) -> None:
    scores = positive_probability(trained.model, holdout, model_spec)
    assert roc_auc_score(holdout["label"].to_numpy(), scores) >= MIN_ROC_AUC
