"""The lookup service: app factory, lifespan (load + follow the snapshot) and the server runner.

``create_app`` decides the entity-id type once, from the current snapshot (or the dataset spec
when nothing is published yet); the lifespan loads the snapshot, then a background task polls
``CURRENT`` and swaps in new snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from pipelines.snapshot import SnapshotError, read_current
from pipelines.spec import DatasetSpec, DType, SpecError, load_spec
from serving import remote
from serving.config import (
    ConfigError,
    ServingSettings,
    check_admin_token,
    check_dev_host,
    get_serving_settings,
)
from serving.metrics import Metrics, MetricsMiddleware
from serving.routes import admin, bench, docs, explain, health, model, predict, scores
from serving.routes.guards import BodyLimitMiddleware, validation_error_handler
from serving.store import SnapshotStore

logger = logging.getLogger("scoreloop.serving")

TITLE = "scoreloop lookup service"
DESCRIPTION = """\
Latest score of every entity, from the serving snapshot published by batch scoring, plus
on-demand scoring of a posted record with the same model. The snapshot is swapped atomically
when a new one is published; a corrupt or incompatible one is refused and the last good one
keeps serving.
"""


def _service_spec(settings: ServingSettings) -> tuple[DType, DatasetSpec]:
    """Id type and spec for the routes: from the current snapshot, else the configured spec."""
    spec_path = settings.spec_path
    try:
        manifest = read_current(settings.snapshots)
    except SnapshotError as exc:
        logger.warning("cannot read the current snapshot manifest (%s); using %s", exc, spec_path)
        manifest = None
    if manifest is not None:
        candidate = settings.snapshots / manifest.snapshot_id / "spec.yaml"
        with contextlib.suppress(SpecError, OSError):
            return manifest.id_dtype, load_spec(candidate)
    spec = load_spec(spec_path)
    return spec.id.dtype, spec


def create_app(settings: ServingSettings | None = None) -> FastAPI:
    """Build the service (nothing is loaded until the lifespan starts)."""
    settings = settings or get_serving_settings()
    id_dtype, spec = _service_spec(settings)
    metrics = Metrics()
    store = SnapshotStore(
        settings.snapshots,
        id_dtype=id_dtype,
        metrics=metrics,
        verify_checksum=settings.verify_checksum,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_admin_token(settings)
        result = await asyncio.to_thread(remote.pull_and_reload, store, settings)
        if store.current is None:
            logger.warning(
                "starting without a snapshot (%s): /readyz answers 503 until one is published "
                "to %s",
                result.error or "nothing published yet",
                settings.snapshots,
            )
        follower = (
            asyncio.create_task(remote.follow(store, settings, settings.reload_interval_s))
            if settings.reload_interval_s > 0
            else None
        )
        try:
            yield
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower

    app = FastAPI(
        title=TITLE,
        description=DESCRIPTION,
        version="1",
        lifespan=lifespan,
        # FastAPI's pages load their assets from a CDN: serving.routes.docs serves local ones.
        docs_url=None,
        redoc_url=None,
    )
    docs.install(app, TITLE)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.state.settings = settings
    app.state.store = store
    app.state.metrics = metrics
    app.include_router(scores.build_router(id_dtype))
    app.include_router(predict.build_router(spec))
    app.include_router(explain.build_router(id_dtype))
    app.include_router(model.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    if settings.bench_routes:
        app.include_router(bench.router)
    # Outermost last: the metrics see every answer, the 413s of the body limit included.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


Server = Literal["uvicorn", "granian"]


def run(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    dev_mode: bool | None = None,
    reload_interval_s: float | None = None,
    log_level: str = "info",
    server: Server = "uvicorn",
) -> None:
    """Serve with one worker: uvicorn (uvloop + httptools, in the lock) or granian if installed.

    See docs/serving.md for the measured comparison behind the choice.
    """
    updates: dict[str, Any] = {}
    if dev_mode is not None:
        updates["dev_mode"] = dev_mode
    if reload_interval_s is not None:
        updates["reload_interval_s"] = reload_interval_s
    settings = get_serving_settings().model_copy(update=updates)
    check_dev_host(settings, host)  # fail before binding the port, with the reason
    check_admin_token(settings)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if server == "granian":
        _run_granian(host, port, updates, log_level)
        return
    import uvicorn

    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def _run_granian(host: str, port: int, updates: dict[str, Any], log_level: str) -> None:
    try:
        from granian import Granian
        from granian.constants import Interfaces, Loops
        from granian.log import LogLevels
    except ImportError as exc:
        raise ConfigError(
            "granian is not installed (it is not in the lock): `uv pip install granian`, or "
            "use --server uvicorn"
        ) from exc
    # Granian imports the app in its worker process: pass the CLI overrides through the env.
    names = {"dev_mode": "SCORELOOP_DEV_MODE", "reload_interval_s": "SCORELOOP_RELOAD_INTERVAL_S"}
    for key, value in updates.items():
        os.environ[names[key]] = str(int(value) if isinstance(value, bool) else value)
    get_serving_settings.cache_clear()  # forked workers must read the env set just above
    Granian(
        "serving.main:create_app",
        factory=True,
        interface=Interfaces.ASGI,
        address=host,
        port=port,
        workers=1,
        loop=Loops.uvloop,
        log_level=LogLevels(log_level),
    ).serve()


__all__ = ["ConfigError", "create_app", "run"]
