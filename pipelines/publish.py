"""Publish the serving snapshot: the champion's latest score of every entity, with its model.

The step behind the Dagster ``serving_snapshot`` asset (through :mod:`pipelines.rescore`) and
``scoreloop rescore``. It reads the scores table (:mod:`pipelines.scores_table`) and writes a
snapshot with :func:`pipelines.snapshot.publish_snapshot`. It lives apart from
:mod:`pipelines.snapshot` because the lookup service imports that module to read snapshots and
must not load the registry or the ingest log that publishing needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipelines.ingest import VALIDATED
from pipelines.params import load_params
from pipelines.registry import ChampionRef, resolve_champion
from pipelines.score import ScoringError
from pipelines.scores_table import (
    NoChampionError,
    ScoreSummary,
    ScoringParams,
    latest_scores,
    scoring_params,
    stale_batches,
)
from pipelines.settings import Settings, get_settings
from pipelines.snapshot import SnapshotManifest, publish_snapshot
from pipelines.snapshot_store import push_current
from pipelines.spec import load_spec
from pipelines.tables import scan_table, table_uri


class IncompleteScoresError(ScoringError):
    """Some accepted batches have no scores by the champion, so a snapshot would be partial."""


@dataclass(frozen=True)
class PublishedSnapshot:
    """A published snapshot and the score distribution it serves (one row per entity)."""

    manifest: SnapshotManifest
    summary: ScoreSummary


def snapshot_features(settings: Settings, scores: pl.DataFrame) -> pl.DataFrame:
    """The validated rows the served scores were made from: ``entity_id``, ``batch_id`` and the
    spec's features of each (entity, batch) in ``scores`` (the latest ingestion of a re-landed
    batch), for ``features.arrow`` (what ``GET /explain/{entity_id}`` explains)."""
    spec = load_spec(settings.spec_path)
    keys = scores.select("entity_id", "batch_id").lazy()
    return (
        scan_table(table_uri(settings.tables, VALIDATED))
        .filter(pl.col("batch_id").is_in(scores["batch_id"].unique().implode()))
        .select(
            pl.col(spec.id.name).alias("entity_id"), "batch_id", *spec.feature_names, "ingested_at"
        )
        .join(keys, on=["entity_id", "batch_id"], how="semi")
        .sort("ingested_at")
        .drop("ingested_at")
        .collect()
    )


def publish_scores(
    settings: Settings, champion: ChampionRef, params: ScoringParams
) -> PublishedSnapshot:
    """Publish ``champion``'s latest scores; ``params.top_k`` goes into the manifest.

    Raises:
        IncompleteScoresError: an accepted batch lacks the champion's scores for its current
            data version (nothing is published).
    """
    missing = stale_batches(settings, champion.version)
    if missing:
        raise IncompleteScoresError(
            f"{len(missing)} accepted batch(es) have no scores by champion {champion.version} "
            f"for their current data: {missing[:10]}; run `scoreloop rescore` first"
        )
    frame = latest_scores(settings, champion.version)
    summary = ScoreSummary()
    summary.add(frame, sample_rows=5)
    manifest = publish_snapshot(
        frame,
        champion.model_dir,
        settings.spec_path,
        settings.snapshots,
        keep=params.snapshot_keep,
        top_k=params.top_k,
        features=snapshot_features(settings, frame),
    )
    if settings.snapshot_store:
        # Replicas follow the store, not this machine's folder: upload, then swap its CURRENT.
        push_current(settings.snapshots, settings.snapshot_store, settings)
    return PublishedSnapshot(manifest, summary)


def publish_serving_snapshot(
    *,
    settings: Settings | None = None,
    champion: ChampionRef | None = None,
    params: ScoringParams | None = None,
) -> SnapshotManifest:
    """Publish the champion's latest score of every entity as the new serving snapshot.

    Refuses (IncompleteScoresError) while any accepted batch lacks the champion's scores for its
    current data version, so a snapshot never serves a partial population and never mixes
    model versions.
    """
    settings = settings or get_settings()
    params = params or scoring_params(load_params(settings.params_path))
    champion = champion or resolve_champion(settings)
    if champion is None:
        raise NoChampionError("no champion model: nothing to publish")
    return publish_scores(settings, champion, params).manifest
