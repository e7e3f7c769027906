"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by playwright.

``make chromium`` (called by ``make test``) apt-installs the browser; playwright (a dev
dependency) only drives it through ``executable_path``: its own browser download
(``playwright install``) is never used and would fail offline. Without chromium the tests skip
saying why, except under ``CI=true``, where they fail.

:class:`PageWatch` records what a page did wrong while a test looked at it: console errors,
uncaught exceptions, failed requests, HTTP errors, and every request that left 127.0.0.1 (a
CDN script, a web font: blocked, so the page must work offline, and recorded).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
#: Chromium's flags for a container or root: no sandbox (root), no GPU, no first-run work.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
]


def chromium_path() -> str:
    """Debian's chromium, or skip (fail under CI=true) when it is not installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "chromium is not installed (Debian package chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must install it with `make chromium`")
        pytest.skip(f"{reason}; install it with `make chromium` (as root)")
    return found


@contextmanager
def launched_browser() -> Iterator[Any]:
    """Headless Chromium, closed on leaving. Playwright's sync API keeps an asyncio loop running
    while it is open: in-process Dagster runs (``execute_in_process``) started meanwhile cannot
    finish their own loop's cleanup, so launch it after such runs (test_control_room_browser)."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (a fresh context per page keeps tests apart)."""
    with launched_browser() as launched:
        yield launched


@dataclass
class PageWatch:
    """What went wrong on one page (filled by the handlers :func:`open_page` installs)."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    http_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)

    def problems(self) -> dict[str, list[str]]:
        return {name: value for name, value in vars(self).items() if value}


def open_page(browser: Any, *, width: int = 1400, height: int = 1000) -> tuple[Any, PageWatch]:
    """A new page whose errors and external requests are recorded in the returned watch;
    requests to any host but 127.0.0.1 are aborted."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(30_000)
    page = context.new_page()
    watch = PageWatch()

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).hostname in LOCAL_HOSTS:
            request_route.continue_()
        else:
            watch.external_requests.append(url)
            request_route.abort()

    def on_failed(request: Any) -> None:
        if urlsplit(request.url).hostname in LOCAL_HOSTS:
            watch.failed_requests.append(f"{request.url}: {request.failure}")

    def on_response(response: Any) -> None:
        if response.status >= 400:
            watch.http_errors.append(f"{response.status} {response.url}")

    def on_console(message: Any) -> None:
        if message.type == "error":
            watch.console_errors.append(message.text)

    context.route("**/*", route)
    page.on("console", on_console)
    page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    return page, watch


def broken_images(page: Any) -> list[str]:
    """Sources of the page's <img> elements that did not load (no pixels decoded)."""
    result = page.evaluate(
        "() => Array.from(document.images)"
        ".filter(img => !(img.complete && img.naturalWidth > 0))"
        ".map(img => (img.currentSrc || img.src).slice(0, 120))"
    )
    return list(result)


def loaded_images(page: Any, prefix: str = "") -> list[dict[str, Any]]:
    """Decoded <img> elements (natural and rendered size) whose src starts with ``prefix``."""
    result = page.evaluate(
        "(prefix) => Array.from(document.images)"
        ".filter(img => img.src.startsWith(prefix) && img.complete && img.naturalWidth > 0)"
        ".map(img => ({src: img.src.slice(0, 60), natural: [img.naturalWidth,"
        " img.naturalHeight], shown: [img.clientWidth, img.clientHeight]}))",
        prefix,
    )
    return list(result)
