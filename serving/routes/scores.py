"""Score lookups: one entity by path, many by POST. The id type comes from the dataset spec."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Path, Request, Response, status
from fastapi.routing import APIRoute

from pipelines.spec import DType
from serving.deps import current_snapshot
from serving.index import EntityId, ScoreIndex
from serving.metrics import Metrics
from serving.routes.guards import StrictJSONRoute
from serving.schemas import (
    MAX_ID_LENGTH,
    MAX_LOOKUP_IDS,
    ErrorOut,
    LookupIntIn,
    LookupOut,
    LookupStrIn,
    ScoreOut,
)

ID_DESCRIPTION = "The entity id (type from the dataset spec's id column)."
RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"model": ErrorOut, "description": "Unknown entity id"},
    status.HTTP_503_SERVICE_UNAVAILABLE: {"model": ErrorOut, "description": "No snapshot yet"},
}


def _json(payload: object, status_code: int = 200) -> Response:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return Response(content=body, status_code=status_code, media_type="application/json")


def _observe(metrics: Metrics, index: ScoreIndex, i: int) -> None:
    outcome = index.outcome(i)
    if outcome is not None:
        metrics.observe_answer("lookup", *outcome)


def _one(request: Request, entity_id: EntityId) -> Response:
    # The row's JSON bytes come straight from the Arrow buffers (ScoreIndex.json, orjson):
    # returning a Response skips FastAPI's response-model validation and serialisation.
    snapshot = current_snapshot(request)
    index = snapshot.index
    i = index.position(entity_id)
    if i is None:
        return _json(
            {
                "detail": f"entity {entity_id!r} has no score in snapshot {snapshot.snapshot_id}",
                "entity_id": entity_id,
                "snapshot_id": snapshot.snapshot_id,
            },
            status.HTTP_404_NOT_FOUND,
        )
    body = index.json(i)
    _observe(request.app.state.metrics, index, i)
    return Response(content=body, media_type="application/json")


def _many(request: Request, ids: list[int] | list[str]) -> Response:
    snapshot = current_snapshot(request)
    metrics: Metrics = request.app.state.metrics
    found: list[bytes] = []
    missing: list[EntityId] = []
    index = snapshot.index
    unique: list[EntityId] = list(dict.fromkeys(ids))  # duplicates answered once, in order
    answered: list[int] = []
    for entity_id in unique:
        i = index.position(entity_id)
        if i is None:
            missing.append(entity_id)
        else:
            found.append(index.json(i))
            answered.append(i)
    for i in answered:  # counted once every row has encoded (a bad row answers 500)
        _observe(metrics, index, i)
    # {"snapshot_id", "model_version", "found", "missing"}, the rows already encoded.
    head = json.dumps(
        {"snapshot_id": snapshot.snapshot_id, "model_version": snapshot.manifest.model_version},
        separators=(",", ":"),
    )
    body = b"".join(
        (
            head[:-1].encode(),
            b',"found":[',
            b",".join(found),
            b'],"missing":',
            json.dumps(missing, separators=(",", ":")).encode(),
            b"}",
        )
    )
    return Response(content=body, media_type="application/json")


def _int_id(raw: str) -> int | None:
    """A plain decimal id (what pydantic would also accept, with the same value) or None."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 18 and (raw[0] != "0" or raw == "0"):
        return int(raw)
    return None


def _str_id(raw: str) -> str | None:
    """The id when pydantic would accept it unchanged (``max_length``), else None."""
    return raw if len(raw) <= MAX_ID_LENGTH else None


class _LookupRoute(APIRoute):
    """``GET /scores/{entity_id}`` with a fast path for well-formed ids.

    FastAPI's request handler solves the dependency graph (empty here) and validates the path
    parameter with pydantic on every request, which cost about as much as the lookup itself. A
    plainly valid id (``parse``: digits only without a leading zero, or a string of at most
    256 characters) is answered directly; any other id goes through FastAPI's own handler, so
    a malformed id gets FastAPI's 422 body. The endpoint's signature still declares the
    parameter, so OpenAPI documents it as before. Routes with dependencies never take the fast
    path.
    """

    parse: Callable[[str], EntityId | None] = staticmethod(_str_id)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()
        if self.dependant.dependencies:
            return standard
        parse = self.parse

        async def handler(request: Request) -> Response:
            entity_id = parse(request.path_params["entity_id"])
            if entity_id is None:
                return await standard(request)
            return _one(request, entity_id)

        return handler


class _IntLookupRoute(_LookupRoute):
    parse = staticmethod(_int_id)


def build_router(id_dtype: DType) -> APIRouter:
    """The /scores router for integer or string entity ids."""
    router = APIRouter(prefix="/scores", tags=["scores"], route_class=StrictJSONRoute)
    lookup_doc = (
        f"Scores of up to {MAX_LOOKUP_IDS} entities at once (duplicates answered once). "
        "Ids without a score are listed in `missing`; all rows come from one snapshot."
    )

    if id_dtype == "int":

        async def get_score(
            request: Request, entity_id: int = Path(description=ID_DESCRIPTION)
        ) -> Response:
            """The latest score of one entity: score, decision, threshold, model, reasons."""
            return _one(request, entity_id)

        router.add_api_route(
            "/{entity_id}",
            get_score,
            methods=["GET"],
            response_model=ScoreOut,
            responses=RESPONSES,
            route_class_override=_IntLookupRoute,
        )

        @router.post(
            "/lookup", response_model=LookupOut, responses=RESPONSES, description=lookup_doc
        )
        async def lookup_int(request: Request, body: LookupIntIn) -> Response:
            return _many(request, body.ids)

    elif id_dtype == "string":

        async def get_score_str(
            request: Request,
            entity_id: str = Path(description=ID_DESCRIPTION, max_length=MAX_ID_LENGTH),
        ) -> Response:
            """The latest score of one entity: score, decision, threshold, model, reasons."""
            return _one(request, entity_id)

        router.add_api_route(
            "/{entity_id}",
            get_score_str,
            methods=["GET"],
            response_model=ScoreOut,
            responses=RESPONSES,
            route_class_override=_LookupRoute,
        )

        @router.post(
            "/lookup", response_model=LookupOut, responses=RESPONSES, description=lookup_doc
        )
        async def lookup_str(request: Request, body: LookupStrIn) -> Response:
            return _many(request, body.ids)

    else:
        raise ValueError(f"entity ids of dtype {id_dtype!r} cannot be served (use int or string)")
    return router
