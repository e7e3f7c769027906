"""``GET /explain/{entity_id}?method=shap|lime``: a served score explained on demand.

The features are the ones the score was made from (the snapshot's ``features.arrow``, row for
row beside its scores) and the model is the snapshot's; the attributions come from
:func:`pipelines.attribution.explain_row`, the same function ``scoreloop explain`` calls, so both
give the same answer for the same entity, method and seed.
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl
from fastapi import APIRouter, Path, Query, status
from fastapi.responses import JSONResponse

from pipelines.attribution import explain_row
from pipelines.lime import SEED
from pipelines.spec import DType
from serving.deps import SnapshotDep
from serving.index import EntityId
from serving.schemas import MAX_ID_LENGTH, ErrorOut, ExplainOut
from serving.store import Snapshot

RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"model": ErrorOut, "description": "Unknown entity id"},
    status.HTTP_409_CONFLICT: {
        "model": ErrorOut,
        "description": "The snapshot was published without features (republish it)",
    },
    status.HTTP_503_SERVICE_UNAVAILABLE: {"model": ErrorOut, "description": "No snapshot yet"},
}
METHOD = Query("shap", description="shap (exact, log-odds) or lime (local surrogate, probability).")
SEED_QUERY = Query(
    SEED, ge=0, le=2**32 - 1, description="LIME's random seed (same seed, same answer)."
)
ID_DESCRIPTION = "The entity id (type from the dataset spec's id column)."


def explain_served(
    snapshot: Snapshot, entity_id: EntityId, method: Literal["shap", "lime"], seed: int
) -> JSONResponse | dict[str, Any]:
    """The explanation of one served score, or the 404 / 409 answer saying why not."""
    i = snapshot.index.position(entity_id)
    if i is None:
        return JSONResponse(
            {
                "detail": f"entity {entity_id!r} has no score in snapshot {snapshot.snapshot_id}",
                "entity_id": entity_id,
                "snapshot_id": snapshot.snapshot_id,
            },
            status_code=status.HTTP_404_NOT_FOUND,
        )
    loaded = snapshot.loaded
    if loaded.features is None:
        return JSONResponse(
            {
                "detail": f"snapshot {snapshot.snapshot_id} was published without the features "
                "of its scores: publish a new one (`scoreloop rescore`) to explain them",
                "snapshot_id": snapshot.snapshot_id,
            },
            status_code=status.HTTP_409_CONFLICT,
        )
    spec = loaded.spec
    row = pl.from_arrow(loaded.features.slice(i, 1))
    assert isinstance(row, pl.DataFrame)
    explanation = explain_row(
        loaded.bundle,
        row.rename({"entity_id": spec.id.name}),
        spec,
        method,
        model_version=snapshot.manifest.model_version,
        seed=seed,
    )
    return explanation.to_dict() | {"snapshot_id": snapshot.snapshot_id, "seed": seed}


def build_router(id_dtype: DType) -> APIRouter:
    """The /explain router for integer or string entity ids."""
    router = APIRouter(tags=["explain"])
    summary = "Explain one served score: every feature with its SHAP or LIME attribution."

    # Plain ``def``: SHAP takes milliseconds and LIME scores thousands of samples; FastAPI runs
    # it in the thread pool so lookups keep answering meanwhile.
    if id_dtype == "int":

        @router.get(
            "/explain/{entity_id}", response_model=ExplainOut, responses=RESPONSES, summary=summary
        )
        def explain_int(
            snapshot: SnapshotDep,
            entity_id: int = Path(description=ID_DESCRIPTION),
            method: Literal["shap", "lime"] = METHOD,
            seed: int = SEED_QUERY,
        ) -> Any:
            return explain_served(snapshot, entity_id, method, seed)

    elif id_dtype == "string":

        @router.get(
            "/explain/{entity_id}", response_model=ExplainOut, responses=RESPONSES, summary=summary
        )
        def explain_str(
            snapshot: SnapshotDep,
            entity_id: str = Path(description=ID_DESCRIPTION, max_length=MAX_ID_LENGTH),
            method: Literal["shap", "lime"] = METHOD,
            seed: int = SEED_QUERY,
        ) -> Any:
            return explain_served(snapshot, entity_id, method, seed)

    else:
        raise ValueError(f"entity ids of dtype {id_dtype!r} cannot be served (use int or string)")
    return router
