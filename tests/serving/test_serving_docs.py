"""``/docs`` and ``/redoc`` work offline: every asset they load is served by the service itself.

The pages are parsed for every URL they load (scripts, stylesheets, icons, fonts); each must be
a path on the service, answer 200 with the right content type and hold the real library (not an
empty file). tests/serving/test_docs_browser.py renders the page in headless Chromium.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from starlette.testclient import TestClient

from serving.routes.docs import REDOC_LOGO, REDOC_ROUTE, STATIC_PREFIX, assets_dir

TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class _Loads(HTMLParser):
    """The URLs a page loads: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def _loads(html: str) -> list[str]:
    parser = _Loads()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),
    ],
)
def test_docs_pages_load_only_local_assets(
    client: TestClient, page: str, expected: set[str]
) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    # No other host anywhere in the page (a CDN script, Google Fonts, a remote favicon).
    assert re.findall(r"https?://", html) == [], html
    urls = _loads(html)
    assert {url.rsplit("/", 1)[-1] for url in urls} == expected
    for url in urls:
        assert url.startswith((f"{STATIC_PREFIX}/", REDOC_ROUTE)), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert TYPES[suffix] in asset.headers["content-type"], (url, asset.headers)
        assert len(asset.content) > 4000, url
    assert "/openapi.json" in html


def test_the_assets_are_the_real_libraries(client: TestClient) -> None:
    swagger = client.get(f"{STATIC_PREFIX}/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in swagger
    redoc = client.get(REDOC_ROUTE).content
    assert b"Redoc" in redoc
    # ReDoc's side-menu logo (loaded from its CDN in every 2.x bundle) points at the favicon.
    assert REDOC_LOGO in (assets_dir() / "redoc.standalone.js").read_bytes()
    assert REDOC_LOGO not in redoc and b"cdn.redoc.ly" not in redoc
    assert f"{STATIC_PREFIX}/favicon.png".encode() in redoc
    # Swagger UI's online validator badge is off (it would call validator.swagger.io).
    assert '"validatorUrl": null' in client.get("/docs").text


def test_docs_routes_stay_out_of_the_api_schema(client: TestClient) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    assert not {p for p in paths if p.startswith(("/docs", "/redoc", "/static"))}
    assert client.get(f"{STATIC_PREFIX}/../main.py").status_code == 404
    assert client.get("/docs/oauth2-redirect").status_code == 200
