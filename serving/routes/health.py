"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from serving.deps import MetricsDep, StoreDep
from serving.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """The process is up (says nothing about the snapshot)."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
async def readyz(store: StoreDep) -> Response:
    """Ready when a verified snapshot and its model are loaded."""
    snapshot = store.current
    if snapshot is None or snapshot.loaded.bundle.model is None:
        body = ReadyOut(status="not ready", last_error=store.last_error)
        return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    body = ReadyOut(
        status="ready",
        snapshot_id=snapshot.snapshot_id,
        model_version=snapshot.manifest.model_version,
        last_error=store.last_error,
    )
    return JSONResponse(body.model_dump())


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request, registry: MetricsDep) -> Response:
    """Prometheus metrics: requests by route/status, latencies, snapshot and reload state,
    answered scores and decisions (OpenMetrics when the scraper's Accept header asks for it)."""
    body, content_type = registry.exposition(request.headers.get("accept"))
    return Response(content=body, headers={"Content-Type": content_type})
