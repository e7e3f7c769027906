"""Helpers for the scoring tests (pipelines and Dagster): a small real model, real ingested batches.

Models are real CatBoost fits saved with ``save_bundle`` (30 iterations, 2 threads), batches are
real ACS rows ingested with ``pipelines.ingest.ingest_file`` into real Delta tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from catboost import CatBoostClassifier

from pipelines.features import prepare_features
from pipelines.ingest import IngestResult, ingest_file
from pipelines.model_bundle import ModelMetadata, save_bundle
from pipelines.registry import ChampionRef
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec


def fit_model(
    rows: pl.DataFrame, spec: DatasetSpec, *, seed: int, iterations: int = 30
) -> CatBoostClassifier:
    """A small real CatBoost fit on ``rows`` (depth 4, 2 threads)."""
    model = CatBoostClassifier(
        iterations=iterations,
        depth=4,
        thread_count=2,
        random_seed=seed,
        verbose=0,
        allow_writing_files=False,
        cat_features=spec.categorical_names,
    )
    model.fit(prepare_features(rows, spec), rows[spec.target.name].to_numpy())
    return model


def bundle_metadata(
    spec: DatasetSpec, *, version: str, threshold: float = 0.5, **extra: Any
) -> ModelMetadata:
    """The metadata of a test model of the bundled spec (``extra``: any other field)."""
    fields: dict[str, Any] = {"trained_at": datetime.now(UTC)} | extra
    return ModelMetadata(
        name="employment",
        version=version,
        spec_name=spec.name,
        features=spec.feature_names,
        categorical=spec.categorical_names,
        threshold=threshold,
        threshold_policy="fixed 0.5 (test)",
        **fields,
    )


def train_bundle(
    acs: pl.DataFrame,
    spec: DatasetSpec,
    directory: Path,
    *,
    version: str,
    seed: int = 0,
    rows: int = 4000,
    iterations: int = 30,
    threshold: float = 0.5,
) -> ChampionRef:
    """Fit a small CatBoost model on ACS rows and save it as a model bundle."""
    model = fit_model(acs.sample(rows, seed=seed), spec, seed=seed, iterations=iterations)
    save_bundle(model, bundle_metadata(spec, version=version, threshold=threshold), directory)
    return ChampionRef(name="employment", version=version, model_dir=directory)


def land_batch(
    settings: Settings,
    acs: pl.DataFrame,
    spec: DatasetSpec,
    batch_id: str,
    *,
    start: int,
    rows: int,
    bad: int = 0,
) -> Path:
    """Write ``batch_<id>.parquet`` from ACS rows; ``bad`` rows get an out-of-range age."""
    settings.landing.mkdir(parents=True, exist_ok=True)
    frame = (
        acs.slice(start, rows)
        .select(spec.record_columns)
        .with_columns(
            pl.when(pl.int_range(pl.len()) < bad)
            .then(pl.lit(-5.0))
            .otherwise(pl.col("AGEP"))
            .alias("AGEP")
        )
    )
    path = settings.landing / f"batch_{batch_id}.parquet"
    frame.write_parquet(path)
    return path


def ingest_batch(
    settings: Settings,
    acs: pl.DataFrame,
    spec: DatasetSpec,
    batch_id: str,
    *,
    start: int,
    rows: int,
    bad: int = 0,
) -> IngestResult:
    path = land_batch(settings, acs, spec, batch_id, start=start, rows=rows, bad=bad)
    return ingest_file(path, spec, settings.tables, max_reject_rate=0.05)


def promote_bundle(settings: Settings, bundle_dir: Path, *, message: str = "") -> ChampionRef:
    """Register ``bundle_dir`` in the real deployment repo (git + DVC + GTO) and make it champion.

    The model directory is ``dvc add``-ed at the registry's model path, committed and pushed to
    the DVC remote, registered with GTO and assigned the prod stage, as a promotion does.
    """
    import shutil

    from pipelines.deployment_repo import MODEL_PATH, commit, dvc, init
    from pipelines.registry import assign_champion, register_version

    repo = init(settings)
    target = repo / MODEL_PATH
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(bundle_dir, target)
    dvc(repo, "add", "-q", MODEL_PATH)
    commit(repo, message or f"model from {bundle_dir.name}")
    dvc(repo, "push", "-q")
    version = register_version(settings)
    return assign_champion(settings, version, message=message)
