"""Rescore the population: every accepted batch scored by the champion, then one snapshot.

Run after a promotion (the Dagster ``champion_rescore_sensor`` -> ``serving_snapshot`` asset,
``scoreloop rescore``): batches lacking the champion's scores are scored with
:func:`pipelines.scores_table.score_batch_with`, then :func:`pipelines.publish.publish_scores`
publishes the snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.publish import publish_scores
from pipelines.registry import ChampionRef
from pipelines.scores_table import (
    BatchScoreResult,
    ScoreSummary,
    accepted_data_versions,
    score_batch_with,
    scoring_context,
    stale_batches,
)
from pipelines.settings import Settings
from pipelines.snapshot import SnapshotManifest

log = logging.getLogger(__name__)


@dataclass
class RescoreResult:
    """What a rescore did: batches scored, batches already current, the snapshot published."""

    model_version: str
    scored: list[BatchScoreResult]
    skipped: list[str]
    snapshot: SnapshotManifest | None
    #: Score distribution of the published snapshot (one row per entity).
    snapshot_summary: ScoreSummary | None = None


def rescore_population(
    *,
    settings: Settings | None = None,
    champion: ChampionRef | None = None,
    force: bool = False,
    publish: bool = True,
    on_batch: Callable[[BatchScoreResult], None] | None = None,
) -> RescoreResult:
    """Score every accepted batch with the champion, then publish one snapshot of its scores.

    Batches already scored by the champion for their current data version are skipped unless
    ``force``. The snapshot is published only after every batch is scored, so it never mixes
    model versions; if a batch fails, nothing is published and the current snapshot stays.
    Earlier champions' rows stay in the scores table (told apart by ``model_version``).
    """
    ctx = scoring_context(settings, champion)
    accepted = sorted(accepted_data_versions(ctx.settings))
    todo = accepted if force else stale_batches(ctx.settings, ctx.champion.version)
    results: list[BatchScoreResult] = []
    for batch_id in todo:
        result = score_batch_with(ctx, batch_id)
        log.info("rescored batch %s with %s: %d rows", batch_id, result.model_version, result.rows)
        results.append(result)
        if on_batch is not None:
            on_batch(result)
    published = (
        publish_scores(ctx.settings, ctx.champion, ctx.params) if publish and accepted else None
    )
    return RescoreResult(
        model_version=ctx.champion.version,
        scored=results,
        skipped=[b for b in accepted if b not in todo],
        snapshot=published.manifest if published else None,
        snapshot_summary=published.summary if published else None,
    )
