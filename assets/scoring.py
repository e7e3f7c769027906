"""Scoring: per-batch ``scores``, the ``serving_snapshot``, and the rescore-on-promotion sensor.

Each body calls one pipelines function (``pipelines.scores_table``, ``pipelines.rescore``):

- ``scores`` (one partition per batch) runs ``score_batch`` with the champion as soon as the
  batch's ``validated_batch`` is materialised (eager automation); a refused or failed batch is
  skipped (a warning, no materialisation, the run succeeds) and never scored.
  Before any model is promoted it materialises nothing: those batches are scored when the first
  champion arrives (the rescore below).
- ``serving_snapshot`` runs ``rescore_population``: every accepted batch that lacks the champion's
  scores for its current data is scored first, then one snapshot of the champion's latest score
  per entity is published. It runs after new scores (eager) and when the champion changes.
- ``champion_rescore_sensor`` watches :func:`pipelines.registry.resolve_champion` (cursor = the
  champion version) and, on a change, requests a ``scoring`` run of ``serving_snapshot``, which
  rescores the population with the new champion before publishing: a snapshot never mixes model
  versions.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from assets.metadata import histogram_table, number
from assets.partitions import batch_partitions
from assets.resources import RESOURCES, ScoreloopResource
from pipelines.features import FeatureMismatchError
from pipelines.landing import ingest_log_entry
from pipelines.registry import RegistryError, resolve_champion
from pipelines.rescore import rescore_population
from pipelines.score import ScoringError
from pipelines.scores_table import (
    BatchNotAcceptedError,
    BatchScoreResult,
    ScoreSummary,
    sample_markdown,
    score_batch,
    scores_uri,
)
from pipelines.snapshot import SnapshotError, read_current

GROUP = "scoring"
SCORES = dg.AssetKey("scores")
SERVING_SNAPSHOT = dg.AssetKey("serving_snapshot")
VALIDATED_BATCH = dg.AssetKey("validated_batch")
CHAMPION = dg.AssetKey("champion")
#: The champion is upstream of what it scores and serves (lineage: champion -> scores ->
#: serving_snapshot). It is ignored by the eager conditions: a promotion rescores the population
#: through ``champion_rescore_sensor`` (one ``serving_snapshot`` run), not one run per partition.
IGNORE_CHAMPION = dg.AssetSelection.assets(CHAMPION)
RESCORE_TAG = "scoreloop/rescore"


def distribution_metadata(summary: ScoreSummary) -> dict[str, Any]:
    """Score distribution and sample rows, as shown on ``scores`` and ``serving_snapshot``."""
    described = summary.describe()
    return {
        "decision_rate": number(described["decision_rate"]),
        "score_mean": number(described["score_mean"], "no rows"),
        "score_min": number(described["score_min"], "no rows"),
        "score_max": number(described["score_max"], "no rows"),
        "score_histogram": histogram_table(described["score_histogram"]),
        "sample": dg.MetadataValue.md(sample_markdown(summary.sample)),
    }


def batch_metadata(result: BatchScoreResult, uri: str) -> dict[str, Any]:
    """Dagster metadata of one scored batch."""
    return {
        "dagster/row_count": result.rows,
        "rows_scored": result.rows,
        "model": f"{result.model_name}:{result.model_version}",
        "model_version": result.model_version,
        "data_version": result.data_version or "",
        **distribution_metadata(result.summary),
        "table_uri": dg.MetadataValue.path(uri),
        "table_version": result.table_version,
        "seconds": number(result.seconds, digits=3),
    }


@dg.asset(
    key=SCORES,
    deps=[VALIDATED_BATCH, CHAMPION],
    partitions_def=batch_partitions,
    group_name=GROUP,
    kinds={"catboost", "delta"},
    output_required=False,
    # A refused batch is skipped in the body (the ingest log says so), not by a blocking check:
    # the refusal is an expected outcome and its runs succeed.
    automation_condition=dg.AutomationCondition.eager().ignore(IGNORE_CHAMPION),
)
def scores(
    context: dg.AssetExecutionContext, scoreloop: ScoreloopResource
) -> Iterator[dg.MaterializeResult[None]]:
    """The champion's score, decision and top-k reasons for every row of an accepted batch."""
    settings = scoreloop.settings()
    champion = resolve_champion(settings)
    if champion is None:
        context.log.warning(
            f"no champion model yet: batch {context.partition_key} is not scored now; it will be "
            "scored when a model is promoted (champion_rescore_sensor)"
        )
        return
    try:
        result = score_batch(context.partition_key, settings=settings, champion=champion)
    except BatchNotAcceptedError as exc:
        if ingest_log_entry(settings.tables, "records", context.partition_key) is None:
            raise dg.Failure(description=str(exc)) from exc
        # refused or failed at ingest: an expected outcome, shown by its ingest check
        context.log.warning(f"not scored: {exc}")
        return
    except (ScoringError, FeatureMismatchError) as exc:
        raise dg.Failure(description=str(exc)) from exc
    yield dg.MaterializeResult(
        metadata=batch_metadata(result, scores_uri(settings)),
        data_version=dg.DataVersion(f"{result.model_version}:{result.data_version}"),
    )


@dg.asset(
    key=SERVING_SNAPSHOT,
    deps=[SCORES, CHAMPION],
    group_name=GROUP,
    kinds={"arrow"},
    automation_condition=dg.AutomationCondition.eager()
    .without(~dg.AutomationCondition.any_deps_missing())
    .ignore(IGNORE_CHAMPION),
)
def serving_snapshot(
    context: dg.AssetExecutionContext, scoreloop: ScoreloopResource
) -> dg.MaterializeResult[None]:
    """One row per entity (its latest score) from the champion only, published for serving.

    Accepted batches without the champion's scores are scored first (after a promotion: the whole
    population); the snapshot is published only when every batch is done.
    """
    settings = scoreloop.settings()
    champion = resolve_champion(settings)
    if champion is None:
        raise dg.Failure(description="no champion model: promote one before publishing a snapshot")
    uri = scores_uri(settings)

    def report(result: BatchScoreResult) -> None:
        context.log.info(f"scored {result.batch_id} with {result.model_version}")
        context.log_event(
            dg.AssetMaterialization(
                asset_key=SCORES,
                partition=result.batch_id,
                metadata=batch_metadata(result, uri),
            )
        )

    try:
        outcome = rescore_population(settings=settings, champion=champion, on_batch=report)
    except (ScoringError, FeatureMismatchError, SnapshotError) as exc:
        raise dg.Failure(description=str(exc)) from exc
    manifest = outcome.snapshot
    if manifest is None:
        raise dg.Failure(
            description=f"no accepted batches under {settings.tables}: nothing to serve"
        )
    summary = outcome.snapshot_summary
    distribution = distribution_metadata(summary) if summary is not None else {}
    return dg.MaterializeResult(
        metadata={
            **distribution,
            "snapshot_id": manifest.snapshot_id,
            "model_version": manifest.model_version,
            "dagster/row_count": manifest.row_count,
            "entities": manifest.row_count,
            "batches_rescored": len(outcome.scored),
            "batches_current": len(outcome.skipped),
            "sha256": manifest.sha256,
            "path": dg.MetadataValue.path(str(settings.snapshots / manifest.snapshot_id)),
        },
        data_version=dg.DataVersion(manifest.sha256),
    )


SCORING_JOB = "scoring"
scoring_job = dg.define_asset_job(
    SCORING_JOB,
    selection=dg.AssetSelection.assets(SCORES, SERVING_SNAPSHOT),
    description="Score batches with the champion and publish the serving snapshot. A run of "
    "`serving_snapshot` alone (the rescore) scores every accepted batch lacking the champion's "
    "scores first, then publishes one snapshot.",
)


@dg.sensor(
    job=scoring_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def champion_rescore_sensor(
    context: dg.SensorEvaluationContext, scoreloop: ScoreloopResource
) -> dg.SensorResult | dg.SkipReason:
    """When the champion version changes, rescore the population and publish a new snapshot."""
    try:
        champion = resolve_champion(scoreloop.settings())
    except RegistryError as exc:
        return dg.SkipReason(f"cannot resolve the champion: {exc}")
    if champion is None:
        return dg.SkipReason("no champion model promoted yet")
    if champion.version == context.cursor:
        return dg.SkipReason(f"champion is still {champion.version}")
    try:
        served = read_current(scoreloop.settings().snapshots)
    except SnapshotError:
        served = None  # an unreadable pointer is repaired by rescoring and publishing anew
    if served is not None and served.model_version == champion.version:
        # Already rescored and published (by the CLI or the demo): remember it, run nothing.
        return dg.SensorResult(
            skip_reason=f"snapshot {served.snapshot_id} already serves {champion.version}",
            cursor=champion.version,
        )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"rescore-{champion.version}-from-{context.cursor or 'none'}",
                job_name=SCORING_JOB,
                asset_selection=[SERVING_SNAPSHOT],
                tags={RESCORE_TAG: champion.version},
            )
        ],
        cursor=champion.version,
    )


defs = dg.Definitions(
    assets=[scores, serving_snapshot],
    jobs=[scoring_job],
    sensors=[champion_rescore_sensor],
    resources=RESOURCES,
)
