"""Helpers for the serving tests: tiny real models and real scores frames (a real server process:
:class:`scoreloop.serve_process.ServiceProcess`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from pipelines.model_bundle import load_bundle, save_bundle
from pipelines.score import score_frame
from pipelines.spec import DatasetSpec
from support.scoring import bundle_metadata, fit_model

TOKEN = "test-admin-token-0123456789abcdef"


def fit_bundle(
    rows: pl.DataFrame, spec: DatasetSpec, directory: Path, *, version: str, seed: int
) -> Path:
    """Fit a 30-iteration CatBoost model on ``rows`` and save it as a model bundle."""
    metadata = bundle_metadata(
        spec,
        version=version,
        data_version=f"data-{seed}",
        trained_at=datetime(2026, 1, seed, tzinfo=UTC),
        metrics={"roc_auc": 0.8 + seed / 100},
    )
    save_bundle(fit_model(rows, spec, seed=seed), metadata, directory)
    (directory / "card.md").write_text(f"# employment {version}\n\nA test model, seed {seed}.\n")
    return directory


def scores_frame(
    bundle_dir: Path, rows: pl.DataFrame, spec: DatasetSpec, *, batch_id: str = "2015-01"
) -> pl.DataFrame:
    """The scores-table rows batch scoring would write for ``rows`` (one per entity)."""
    scored = score_frame(load_bundle(bundle_dir), rows, spec, thread_count=2)
    return scored.with_columns(
        pl.lit(batch_id).alias("batch_id"),
        pl.lit(datetime(2026, 2, 1, tzinfo=UTC)).alias("scored_at"),
        pl.lit("md5-test").alias("data_version"),
    )


class Scrape:
    """A ``/metrics`` body parsed by ``prometheus_client.parser`` (never by string matching)."""

    def __init__(self, text: str) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        """The one sample named ``name`` whose labels include ``labels`` (KeyError if none)."""
        found = [
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        if len(found) != 1:
            raise KeyError(f"{len(found)} samples {name}{labels} in the scrape")
        return float(found[0])

    def get(self, name: str, default: float = 0.0, **labels: str) -> float:
        try:
            return self.value(name, **labels)
        except KeyError:
            return default

    def labels(self, name: str) -> list[dict[str, str]]:
        """The label sets of every sample named ``name``."""
        return [dict(s.labels) for s in self.samples if s.name == name]
