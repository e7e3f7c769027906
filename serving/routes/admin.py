"""Operator actions (bearer token)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from serving.deps import AdminDep, StoreDep
from serving.schemas import ErrorOut, ReloadOut

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminDep])


@router.post(
    "/reload",
    response_model=ReloadOut,
    responses={
        401: {"model": ErrorOut, "description": "Missing or wrong token"},
        409: {"model": ReloadOut, "description": "The new snapshot was refused"},
    },
)
async def reload(store: StoreDep) -> Response:
    """Load CURRENT now (retrying a snapshot refused before). A bad one is refused with 409."""
    result = await asyncio.to_thread(store.reload, force=True)
    current = store.current
    body = ReloadOut(
        result=result.result,
        snapshot_id=result.snapshot_id,
        serving=current.snapshot_id if current else None,
        error=result.error,
        seconds=result.seconds,
    )
    code = status.HTTP_409_CONFLICT if result.result == "refused" else status.HTTP_200_OK
    return JSONResponse(body.model_dump(), status_code=code)
