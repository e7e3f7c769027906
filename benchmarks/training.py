"""Training-step overhead against bare CatBoost, in one process on the same rows.

The training step (``pipelines.train.train_challenger``: shared feature prep, CatBoost fit with
early stopping on the validation split, validation scoring, threshold choice, reference profile,
metadata) vs a bare ``CatBoostClassifier.fit`` with the same parameters on the already prepared
train/validation frames. Rows: the bundled ACS data of 2015 cut into 12 monthly batches (about
69k rows): 11 batches train, 1 validates; the knobs of params.yaml's ``training`` section.
Warm-up, then the median of repeats.

    .venv/bin/python benchmarks/training.py   # SCORELOOP_BENCH_TRAINING_ROWS=10000 for a quick run

Prints ``bench training_overhead: <ratio> (goal <= 1.25)`` last; exits 0 whatever the figure.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import polars as pl
from catboost import CatBoostClassifier

from pipelines.features import prepare_features
from pipelines.params import load_params
from pipelines.settings import BUNDLED_SPEC, PROJECT_ROOT
from pipelines.spec import load_spec
from pipelines.train import TrainingParams, train_challenger

ROWS = int(os.environ.get("SCORELOOP_BENCH_TRAINING_ROWS", "0")) or None
REPEATS = int(os.environ.get("SCORELOOP_BENCH_REPEATS", "3"))


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _medians(a: Callable[[], object], b: Callable[[], object]) -> tuple[float, float]:
    """Warm both up, then alternate them so a change in machine load hits both alike."""
    a()
    b()
    times_a, times_b = [], []
    for _ in range(REPEATS):
        times_a.append(_timed(a))
        times_b.append(_timed(b))
    return statistics.median(times_a), statistics.median(times_b)


def main() -> None:
    spec = load_spec(BUNDLED_SPEC)
    params = TrainingParams.from_params(load_params(PROJECT_ROOT / "params.yaml"))
    data = pl.read_parquet(BUNDLED_SPEC.parent / "employment_MA.parquet").filter(
        pl.col("year") == 2015
    )
    if ROWS is not None:
        data = data.head(ROWS)
    cut = data.height * 11 // 12
    frame = data.with_columns(
        pl.col("employed").cast(pl.Int8).alias("label"),
        pl.when(pl.int_range(pl.len()) < cut)
        .then(pl.lit("train"))
        .otherwise(pl.lit("validation"))
        .alias("split"),
        pl.col("year").cast(pl.String).alias("batch_id"),
    )
    train, validation = frame.head(cut), frame.slice(cut)
    x_train, y_train = prepare_features(train, spec), train["label"].to_numpy()
    x_valid, y_valid = prepare_features(validation, spec), validation["label"].to_numpy()

    def bare() -> object:
        model = CatBoostClassifier(**params.catboost_params())
        return model.fit(
            x_train,
            y_train,
            cat_features=spec.categorical_names,
            eval_set=(x_valid, y_valid),
            early_stopping_rounds=params.early_stopping_rounds,
            use_best_model=True,
        )

    def step() -> object:
        return train_challenger(frame, spec, params, name="bench", data_version="bench")

    bare_s, step_s = _medians(bare, step)
    print(
        f"rows: {train.height} train + {validation.height} validation, "
        f"{params.iterations} iterations depth {params.depth}, threads {params.thread_count}"
    )
    print(f"bare CatBoost fit: {bare_s:.2f} s, training step: {step_s:.2f} s (median of {REPEATS})")
    print(f"bench training_overhead: {step_s / bare_s:.2f} (goal <= 1.25)")


if __name__ == "__main__":
    main()
