"""Helpers for the monitoring tests: a small real champion with a reference profile, real batches.

The model is a real CatBoost fit (``support.scoring.train_bundle``: 30 iterations, 2 threads);
its metadata gets what ``pipelines.train`` writes: a ``reference_profile`` of the training rows
and the ``training_set`` batches of each split.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.drift import profile_frame
from pipelines.ingest import IngestResult, ingest_file
from pipelines.model_bundle import METADATA_FILE, load_metadata
from pipelines.monitoring import Champion
from pipelines.registry import ChampionRef
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec
from support.scoring import ingest_batch, train_bundle

#: Rows of the bundled data used to train the test champion (its reference).
TRAIN_ROWS = 4000


def make_champion(
    acs: pl.DataFrame,
    spec: DatasetSpec,
    directory: Path,
    *,
    version: str = "v0.0.1",
    train_batches: list[str] | None = None,
    holdout_batches: list[str] | None = None,
    metrics: dict[str, float] | None = None,
    profile: bool = True,
) -> Champion:
    """Fit a small model on the first ACS rows and write a training-like metadata.json."""
    ref = train_bundle(acs.head(TRAIN_ROWS), spec, directory, version=version, rows=TRAIN_ROWS)
    metadata = load_metadata(directory)
    update: dict[str, object] = {"metrics": metrics or {}}
    if profile:
        update["reference_profile"] = profile_frame(acs.head(TRAIN_ROWS), spec)
    data = metadata.model_dump(mode="json") | update
    data["training_set"] = {
        "train": {"rows": TRAIN_ROWS, "batches": train_batches or ["2014-01"]},
        "validation": {"rows": 0, "batches": []},
        "holdout": {"rows": 0, "batches": holdout_batches or []},
    }
    metadata = type(metadata).model_validate(data)
    (directory / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))
    return Champion(ref=ChampionRef(ref.name, ref.version, ref.model_dir), metadata=metadata)


def ingest_records(
    settings: Settings,
    acs: pl.DataFrame,
    spec: DatasetSpec,
    batch_id: str,
    *,
    start: int,
    rows: int = 600,
) -> IngestResult:
    return ingest_batch(settings, acs, spec, batch_id, start=start, rows=rows)


def ingest_labels(
    settings: Settings,
    acs: pl.DataFrame,
    spec: DatasetSpec,
    batch_id: str,
    *,
    start: int,
    rows: int = 600,
) -> IngestResult:
    """Land and ingest ``labels_<batch>.parquet`` for the same ACS rows as the records."""
    settings.landing.mkdir(parents=True, exist_ok=True)
    path = settings.landing / f"labels_{batch_id}.parquet"
    acs.slice(start, rows).select(spec.id.name, spec.target.name).write_parquet(path)
    return ingest_file(path, spec, settings.tables, max_reject_rate=0.05)
