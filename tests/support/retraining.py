"""Build small labelled Delta tables from the bundled ACS data for the retraining tests.

Rows are sampled per year, replayed by the real simulator into a landing folder and ingested
with the real ``ingest_file``, so the training set is built from tables exactly as in production.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import yaml
from catboost import CatBoostClassifier

from pipelines.ingest import ingest_file
from pipelines.model_bundle import ModelMetadata, save_bundle
from pipelines.settings import PROJECT_ROOT
from pipelines.simulate import simulate
from pipelines.spec import DatasetSpec


def save_toy_bundle(
    directory: Path, name: str, *, iterations: int, version: str | None = None
) -> Path:
    """Save a tiny one-feature CatBoost bundle (``iterations`` trees) to ``directory``."""
    model = CatBoostClassifier(iterations=iterations, verbose=0, thread_count=1)
    model.fit([[0.0], [1.0], [0.0], [1.0]], [0, 1, 0, 1])
    meta = ModelMetadata(
        name=name,
        spec_name="toy",
        features=["0"],
        categorical=[],
        threshold=0.5,
        trained_at=datetime.now(UTC),
        params={"iterations": iterations},
        version=version,
    )
    return save_bundle(model, meta, directory)


def small_params(path: Path, **training: object) -> Path:
    """The project's params.yaml sized for tests (8 batches, 60 shallow trees), written to
    ``path``; ``training`` overrides keys of its ``training`` section."""
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["split"] = {
        "window_batches": 8,
        "validation_batches": 1,
        "holdout_batches": 2,
        "min_rows": 100,
    }
    params["training"].update({"iterations": 60, "depth": 4, **training})
    params["gate"].update({"slice_min_rows": 100})
    path.write_text(yaml.safe_dump(params))
    return path


def sample_source(
    acs: pl.DataFrame, path: Path, *, rows_per_year: int, years: int, seed: int
) -> Path:
    """Write ``rows_per_year`` random rows of each of the first ``years`` years to ``path``."""
    chosen = sorted(acs["year"].unique().to_list())[:years]
    parts = [
        acs.filter(pl.col("year") == year).sample(n=rows_per_year, seed=seed + i)
        for i, year in enumerate(chosen)
    ]
    pl.concat(parts).write_parquet(path)
    return path


def build_tables(
    acs: pl.DataFrame,
    spec: DatasetSpec,
    workdir: Path,
    *,
    rows_per_year: int = 4000,
    years: int = 2,
    batches_per_period: int = 4,
    seed: int = 3,
    transform: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
) -> str:
    """Land and ingest ``years * batches_per_period`` batches and their labels; return the root."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = sample_source(
        acs, workdir / "source.parquet", rows_per_year=rows_per_year, years=years, seed=seed
    )
    if transform is not None:
        transform(pl.read_parquet(source)).write_parquet(source)
    landing = workdir / "landing"
    result = simulate(
        spec, source, landing, seed=seed, batches_per_period=batches_per_period, label_lag=0
    )
    root = str(workdir / "tables")
    for path in result.files:
        ingest_file(path, spec, root, max_reject_rate=0.05)
    return root
