"""CBPE on the bundled data: estimated vs realised ROC AUC over the monthly batches.

The model of this package's conftest (trained on a 2015 sample) is calibrated on its own 2018
holdout sample; the batches are the simulator's monthly batches of 2016-2018 (without the
calibration rows). The bound: the realised AUC of one batch is itself a sample estimate, with the
Hanley-McNeil standard error ``se``; an unbiased estimator cannot be expected to track it closer
than that noise, so the mean absolute error is held under three times the mean ``se`` (about
0.013 for batches of ~5,800 rows; the MAE seen is about 0.006), which also leaves room for the
small covariate shift 2015 -> 2018 the calibration does not see.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from pipelines.estimate import estimate_metrics, fit_calibration
from pipelines.score import positive_probability
from pipelines.simulate import plan_batches
from pipelines.spec import DatasetSpec
from pipelines.train import TrainedModel


def _hanley_mcneil(auc: float, positives: int, negatives: int) -> float:
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return float(np.sqrt(var))


def test_cbpe_tracks_realised_auc_on_the_bundled_batches(
    trained: TrainedModel, holdout: pl.DataFrame, acs: pl.DataFrame, model_spec: DatasetSpec
) -> None:
    calibration = fit_calibration(
        holdout["label"].to_numpy(), positive_probability(trained.model, holdout, model_spec)
    )
    later = acs.filter(pl.col("year") >= 2016).join(holdout.select("id"), on="id", how="anti")
    errors, noise = [], []
    for _, batch in plan_batches(later, model_spec):
        scores = positive_probability(trained.model, batch, model_spec)
        labels = batch["employed"].cast(pl.Int8).to_numpy()
        realised = float(roc_auc_score(labels, scores))
        estimated = estimate_metrics(scores, trained.metadata.threshold, calibration)
        errors.append(abs(estimated["estimated_roc_auc"] - realised))
        noise.append(_hanley_mcneil(realised, int(labels.sum()), int((1 - labels).sum())))
    mae, bound = float(np.mean(errors)), 3 * float(np.mean(noise))
    print(
        f"CBPE: MAE of estimated vs realised ROC AUC over {len(errors)} batches: {mae:.4f} "
        f"(bound {bound:.4f} = 3 x mean Hanley-McNeil SE)"
    )
    assert len(errors) == 36
    assert mae < bound
