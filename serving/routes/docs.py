"""``/docs`` (Swagger UI) and ``/redoc`` served from local files: they work offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (blank without the internet) and a
favicon from fastapi.tiangolo.com. Here the assets come from the ``fastapi-offline`` wheel (a
pinned dependency of the app and of the serving image: Swagger UI's bundle and CSS, ReDoc's
standalone bundle, a favicon), mounted under :data:`STATIC_PREFIX` with Starlette's
StaticFiles, and the pages are FastAPI's ``get_swagger_ui_html`` / ``get_redoc_html`` pointed at
them. ReDoc's Google Fonts link is left out, Swagger UI's online validator badge is off (it
would call validator.swagger.io), and ReDoc 2's side-menu logo, which its bundle loads from
cdn.redoc.ly unconditionally, is pointed at the local favicon: the bundle is served from
:data:`REDOC_ROUTE` with that one URL replaced (checked at start-up, so an upgraded bundle that
moved it fails loudly instead of calling out). tests/serving/test_serving_docs.py checks that
no page names another host and that every asset answers; tests/serving/test_docs_browser.py
renders both pages in headless Chromium with every other host blocked.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC_PREFIX = "/static/docs"
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
#: ReDoc's bundle with its logo URL made local (outside the StaticFiles mount).
REDOC_ROUTE = "/static/redoc/redoc.standalone.js"
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
FAVICON = "favicon.png"
ASSETS = (SWAGGER_JS, SWAGGER_CSS, REDOC_JS, FAVICON)
#: Swagger UI's defaults plus no online validator (``validatorUrl: null``).
SWAGGER_PARAMETERS = {"validatorUrl": None}


def assets_dir() -> Path:
    """The folder of the ``fastapi-offline`` wheel holding the docs assets."""
    return Path(str(files("fastapi_offline").joinpath("static")))


def _offline_redoc(path: Path) -> bytes:
    """ReDoc's bundle with its one external image (the side-menu logo) made local."""
    bundle = path.read_bytes()
    if bundle.count(REDOC_LOGO) != 1:
        raise RuntimeError(
            f"{path} holds {bundle.count(REDOC_LOGO)} copies of {REDOC_LOGO.decode()} (expected "
            "1): check what the upgraded ReDoc loads from its CDN before serving it"
        )
    return bundle.replace(REDOC_LOGO, f"{STATIC_PREFIX}/{FAVICON}".encode())


def install(app: FastAPI, title: str) -> None:
    """Mount the assets and add ``/docs``, its OAuth2 redirect and ``/redoc`` to ``app`` (which
    must be built with ``docs_url=None, redoc_url=None``). Not in the OpenAPI schema."""
    directory = assets_dir()
    missing = [name for name in ASSETS if not (directory / name).is_file()]
    if missing:
        raise RuntimeError(f"fastapi-offline's assets are missing from {directory}: {missing}")
    app.mount(STATIC_PREFIX, StaticFiles(directory=directory), name="docs-static")
    redoc_js = _offline_redoc(directory / REDOC_JS)
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{STATIC_PREFIX}/{SWAGGER_JS}",
            swagger_css_url=f"{STATIC_PREFIX}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{STATIC_PREFIX}/{FAVICON}",
            oauth2_redirect_url=redirect_url,
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_ROUTE, include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(
            redoc_js,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=REDOC_ROUTE,
            redoc_favicon_url=f"{STATIC_PREFIX}/{FAVICON}",
            with_google_fonts=False,
        )
