"""``/docs`` and ``/redoc`` rendered by a real browser: headless Chromium against a real
``scoreloop serve`` process, every request to another host blocked (the page must work offline).

Fails on a blank page (Swagger UI must draw one operation block per documented operation and
expand one to its response schema; ReDoc must draw the title and every operation), on any
console error or uncaught exception, on a failed or 4xx/5xx request, on a broken image and on a
request that tried to leave 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.browser import broken_images, open_page
from support.serving import TOKEN

from scoreloop.serve_process import ServiceProcess

pytestmark = pytest.mark.slow

TITLE = "scoreloop lookup service"


@pytest.fixture
def served(snapshots: Path, state: Path) -> Any:
    """A real ``scoreloop serve`` process on a free port, serving a published snapshot."""
    env = {"SCORELOOP_STATE_ROOT": str(state), "SCORELOOP_ADMIN_TOKEN": TOKEN}
    with ServiceProcess(env, ready_timeout=90) as process:
        yield process


def _operations(served: Any) -> int:
    status, schema = served.request("GET", "/openapi.json")
    assert status == 200
    return sum(len(methods) for methods in schema["paths"].values())


def test_swagger_ui_renders_offline(served: Any, browser: Any, tmp_path: Path) -> None:
    operations = _operations(served)
    page, watch = open_page(browser)
    page.goto(f"{served.base_url}/docs", wait_until="load")
    page.wait_for_selector(".swagger-ui .information-container .title")
    assert TITLE in page.inner_text(".swagger-ui .information-container .title")
    page.wait_for_function(
        "(n) => document.querySelectorAll('.opblock').length === n", arg=operations
    )
    assert page.locator(".opblock").count() == operations
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/model", "/predict", "/scores/{entity_id}"} <= {p.replace("\u200b", "") for p in paths}
    # Expand GET /model: Swagger UI draws its 200 response from the schema (HoldoutOut inside).
    block = page.locator(
        ".opblock-get", has=page.locator(".opblock-summary-path[data-path='/model']")
    )
    block.locator(".opblock-summary").first.click()
    block.locator(".responses-table").first.wait_for()
    page.locator(".models").first.scroll_into_view_if_needed()
    assert "HoldoutOut" in page.inner_text(".models")
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
    # Judge the page once every request it made (the favicon's too) has settled.
    page.wait_for_load_state("networkidle")
    assert broken_images(page) == []
    assert watch.problems() == {}
    page.context.close()


def test_redoc_renders_offline(served: Any, browser: Any) -> None:
    operations = _operations(served)
    page, watch = open_page(browser)
    page.goto(f"{served.base_url}/redoc", wait_until="load")
    page.wait_for_selector(f"h1:has-text('{TITLE}')")
    # One operation heading (h2) per documented operation, in the content column.
    page.wait_for_function(
        "(n) => document.querySelectorAll('.api-content h2').length >= n", arg=operations
    )
    assert "/model" in page.inner_text(".api-content")
    # Judge the page once every request it made (the favicon's too) has settled.
    page.wait_for_load_state("networkidle")
    assert broken_images(page) == []
    assert watch.problems() == {}
    page.context.close()
