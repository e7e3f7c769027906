"""A hello-world route for benchmarks only (mounted when SCORELOOP_BENCH_ROUTES=1)."""

from __future__ import annotations

from fastapi import APIRouter, Response

router = APIRouter(prefix="/bench", include_in_schema=False)


@router.get("/hello")
async def hello() -> Response:
    return Response(content=b'{"hello":"world"}', media_type="application/json")
