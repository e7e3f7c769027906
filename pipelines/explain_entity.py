"""Explain one entity on demand with the champion: SHAP (exact, CatBoost's) or LIME.

The entity's features are its latest validated row (the same features its score came from);
LIME samples around it from the champion's reference profile (:mod:`pipelines.lime`). The
attributions themselves come from :mod:`pipelines.attribution`, which the lookup service's
``GET /explain/{entity_id}`` calls too.
"""

from __future__ import annotations

import polars as pl

from pipelines.attribution import (
    EntityExplanation,
    ExplainMethod,
    explain_features,
    explain_row,
)
from pipelines.errors import ScoreloopError
from pipelines.ingest import VALIDATED, validated_schema
from pipelines.lime import SAMPLES, SEED
from pipelines.model_bundle import load_bundle
from pipelines.registry import resolve_champion
from pipelines.settings import Settings, get_settings
from pipelines.spec import DatasetSpec, load_spec
from pipelines.tables import read_table, table_uri


class ExplainError(ScoreloopError, LookupError):
    """The entity cannot be explained (unknown id, no champion); the message says why."""


def entity_row(settings: Settings, spec: DatasetSpec, entity_id: object) -> pl.DataFrame:
    """The entity's latest validated row: the one its served score came from.

    The same rule as the serving snapshot's (:func:`pipelines.scores_table.latest_scores`): the
    greatest event time (the spec's time column), then the latest ingestion; never batch-id
    text order.

    Raises:
        ExplainError: no validated row has this id.
    """
    frame = read_table(table_uri(settings.tables, VALIDATED), schema=validated_schema(spec))
    id_type = frame.schema[spec.id.name]
    try:
        wanted = pl.lit(entity_id).cast(id_type, strict=True)
        rows = frame.filter(pl.col(spec.id.name) == wanted)
    except pl.exceptions.PolarsError:
        rows = frame.clear()
    if rows.height == 0:
        raise ExplainError(
            f"entity {entity_id!r} is in no validated batch under {settings.tables}: check the "
            f"id (column {spec.id.name!r}, type {spec.id.dtype})"
        )
    return rows.sort([spec.time.name, "ingested_at"], nulls_last=False).tail(1)


def explain_entity(
    entity_id: object,
    method: ExplainMethod = "shap",
    *,
    settings: Settings | None = None,
    seed: int = SEED,
    samples: int = SAMPLES,
) -> EntityExplanation:
    """Explain the champion's score of ``entity_id`` (its newest validated row).

    Raises:
        ExplainError: no champion, or the entity is unknown.
    """
    settings = settings or get_settings()
    spec = load_spec(settings.spec_path)
    champion = resolve_champion(settings)
    if champion is None:
        raise ExplainError("no champion model: train and promote one first (`scoreloop train`)")
    bundle = load_bundle(champion.model_dir)
    row = entity_row(settings, spec, entity_id)
    return explain_row(
        bundle, row, spec, method, model_version=champion.version, seed=seed, samples=samples
    )


__all__ = [
    "EntityExplanation",
    "ExplainError",
    "ExplainMethod",
    "entity_row",
    "explain_entity",
    "explain_features",
]
