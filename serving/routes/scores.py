"""Score lookups: one entity by path, many by POST. The id type comes from the dataset spec."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Path, Response, status

from pipelines.spec import DType
from serving.deps import SnapshotDep
from serving.index import EntityId
from serving.schemas import MAX_LOOKUP_IDS, ErrorOut, LookupIntIn, LookupOut, LookupStrIn, ScoreOut
from serving.store import Snapshot

ID_DESCRIPTION = "The entity id (type from the dataset spec's id column)."
RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"model": ErrorOut, "description": "Unknown entity id"},
    status.HTTP_503_SERVICE_UNAVAILABLE: {"model": ErrorOut, "description": "No snapshot yet"},
}


def _json(payload: object, status_code: int = 200) -> Response:
    # Rows come from the Arrow buffers already JSON-ready: no re-validation on the hot path.
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return Response(content=body, status_code=status_code, media_type="application/json")


def _one(snapshot: Snapshot, entity_id: EntityId) -> Response:
    row = snapshot.index.get(entity_id)
    if row is None:
        return _json(
            {
                "detail": f"entity {entity_id!r} has no score in snapshot {snapshot.snapshot_id}",
                "entity_id": entity_id,
                "snapshot_id": snapshot.snapshot_id,
            },
            status.HTTP_404_NOT_FOUND,
        )
    return _json(row)


def _many(snapshot: Snapshot, ids: list[int] | list[str]) -> Response:
    unique: list[EntityId] = list(dict.fromkeys(ids))
    found: list[dict[str, Any]] = []
    missing: list[EntityId] = []
    for entity_id in unique:
        row = snapshot.index.get(entity_id)
        if row is None:
            missing.append(entity_id)
        else:
            found.append(row)
    return _json(
        {
            "snapshot_id": snapshot.snapshot_id,
            "model_version": snapshot.manifest.model_version,
            "found": found,
            "missing": missing,
        }
    )


def build_router(id_dtype: DType) -> APIRouter:
    """The /scores router for integer or string entity ids."""
    router = APIRouter(prefix="/scores", tags=["scores"])
    lookup_doc = (
        f"Scores of up to {MAX_LOOKUP_IDS} entities at once (duplicates answered once). "
        "Ids without a score are listed in `missing`; all rows come from one snapshot."
    )

    if id_dtype == "int":

        @router.get("/{entity_id}", response_model=ScoreOut, responses=RESPONSES)
        async def get_score(
            snapshot: SnapshotDep, entity_id: int = Path(description=ID_DESCRIPTION)
        ) -> Response:
            """The latest score of one entity: score, decision, threshold, model, reasons."""
            return _one(snapshot, entity_id)

        @router.post(
            "/lookup", response_model=LookupOut, responses=RESPONSES, description=lookup_doc
        )
        async def lookup_int(snapshot: SnapshotDep, body: LookupIntIn) -> Response:
            return _many(snapshot, body.ids)

    elif id_dtype == "string":

        @router.get("/{entity_id}", response_model=ScoreOut, responses=RESPONSES)
        async def get_score_str(
            snapshot: SnapshotDep,
            entity_id: str = Path(description=ID_DESCRIPTION, max_length=256),
        ) -> Response:
            """The latest score of one entity: score, decision, threshold, model, reasons."""
            return _one(snapshot, entity_id)

        @router.post(
            "/lookup", response_model=LookupOut, responses=RESPONSES, description=lookup_doc
        )
        async def lookup_str(snapshot: SnapshotDep, body: LookupStrIn) -> Response:
            return _many(snapshot, body.ids)

    else:
        raise ValueError(f"entity ids of dtype {id_dtype!r} cannot be served (use int or string)")
    return router
