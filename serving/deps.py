"""Typed dependencies: the current snapshot, the settings, the metrics, the admin check.

The per-request ones are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in the
thread pool, which costs more than the lookup itself. The app sets no ``dependency_overrides``
of its own: with any override present FastAPI re-analyses every dependency on every request.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.config import ServingSettings
from serving.metrics import Metrics
from serving.store import Snapshot, SnapshotStore

_bearer = HTTPBearer(auto_error=False, description="SCORELOOP_ADMIN_TOKEN")


async def get_store(request: Request) -> SnapshotStore:
    store: SnapshotStore = request.app.state.store
    return store


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_settings(request: Request) -> ServingSettings:
    """The settings the app was built with (``create_app(settings)``; by default the cached
    :func:`serving.config.get_serving_settings`)."""
    settings: ServingSettings = request.app.state.settings
    return settings


StoreDep = Annotated[SnapshotStore, Depends(get_store)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
SettingsDep = Annotated[ServingSettings, Depends(get_settings)]


def current_snapshot(request: Request) -> Snapshot:
    """The store's current snapshot, read straight from the app state (503 when none yet).

    The lookup routes call this directly (no dependency to solve on their hot path); every other
    route takes it through :data:`SnapshotDep`.
    """
    store: SnapshotStore = request.app.state.store
    snapshot = store.current
    if snapshot is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"no snapshot loaded yet from {store.snapshots_dir} "
            f"({store.last_error or 'nothing published'})",
        )
    return snapshot


async def get_snapshot(request: Request) -> Snapshot:
    """The snapshot this request works with (taken once; a swap does not change it mid-request)."""
    return current_snapshot(request)


SnapshotDep = Annotated[Snapshot, Depends(get_snapshot)]


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Bearer token check for /admin routes (open only in dev mode without a token)."""
    expected = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not expected and settings.dev_mode:
        return
    given = credentials.credentials if credentials else ""
    if not expected or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token (Authorization: Bearer $SCORELOOP_ADMIN_TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Depends(require_admin)
