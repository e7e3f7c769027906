"""The Dagster UI in headless Chromium, over the demo's runs: the real webserver
(``dagster-webserver -m assets.definitions`` on a free 127.0.0.1 port, over the ``demo_loop``
instance) and Debian's chromium driven by playwright (tests/support/browser.py).

Opens the asset catalog (the scoreloop assets listed) and the ``evaluation`` asset's latest
materialisation, whose ``plot_roc`` is a base64 PNG in markdown metadata: over 1,000 characters,
so Dagster shows it behind "[Show Markdown]", which the test clicks; the image must decode
(``naturalWidth > 0``). Fails on a blank page, a console error, an uncaught exception, a failed
or 4xx/5xx request, a broken image, or a request that tried to leave 127.0.0.1. Screenshots go
to the test's tmp dir (``catalog.png``, ``evaluation.png``, ``plot_roc.png``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.browser import broken_images, launched_browser, loaded_images, open_page
from support.control_room import DemoLoop, dagster_webserver

pytestmark = pytest.mark.slow

#: Assets of the loop the catalog must list.
LOOP_ASSETS = ("validated_batch", "scores", "serving_snapshot", "evaluation", "champion")


#: The one documented, understood noise: Dagster's UI loads its telemetry script from dagster.io
#: on every page; open_page blocks every request leaving 127.0.0.1, and Chromium logs each
#: blocked load as the console error "Failed to load resource: net::ERR_FAILED".
TELEMETRY = "https://dagster.io/oss-telemetry.js"
BLOCKED = "Failed to load resource: net::ERR_FAILED"


def _without_telemetry(problems: dict[str, list[str]]) -> dict[str, list[str]]:
    """The page's problems less the telemetry script's: its blocked requests, and as many
    ERR_FAILED console errors as there were such requests (any other stays)."""
    external = problems.pop("external_requests", [])
    telemetry = [url for url in external if url == TELEMETRY]
    if len(telemetry) < len(external):
        problems["external_requests"] = [url for url in external if url != TELEMETRY]
    errors = list(problems.pop("console_errors", []))
    for _ in telemetry:
        if BLOCKED in errors:
            errors.remove(BLOCKED)
    if errors:
        problems["console_errors"] = errors
    return problems


def _dismiss_first_visit(page: Any) -> None:
    """Dagster's first-visit dialog (STACK.md): dismissed when it shows."""
    for name in ("Skip", "Dismiss"):
        button = page.get_by_role("button", name=name)
        if button.count():
            button.first.click()


def test_catalog_and_a_plot_render(demo_loop: DemoLoop, tmp_path: Path) -> None:
    # Chromium is launched after the runs, not as the session's `browser` fixture (set up before
    # them): see support.browser.launched_browser.
    with (
        dagster_webserver(demo_loop.home, tmp_path / "webserver.log") as base,
        launched_browser() as browser,
    ):
        page, watch = open_page(browser, width=1600, height=1100)
        page.goto(f"{base}/assets", wait_until="load")
        page.wait_for_load_state("networkidle")
        _dismiss_first_visit(page)
        for name in LOOP_ASSETS:
            # a catalog row's link reads "name\nname" (key and display name): not exact
            page.get_by_role("link", name=name).first.wait_for()
        page.screenshot(path=str(tmp_path / "catalog.png"))

        page.goto(f"{base}/assets/evaluation?view=events", wait_until="load")
        page.wait_for_load_state("networkidle")
        _dismiss_first_visit(page)
        page.get_by_text("plot_roc", exact=True).first.wait_for()
        page.screenshot(path=str(tmp_path / "evaluation.png"), full_page=True)
        row = page.locator("tr", has=page.get_by_text("plot_roc", exact=True)).first
        row.get_by_text("[Show Markdown]").click()
        page.wait_for_function(
            "() => Array.from(document.images).some(i => i.src.startsWith('data:image/png')"
            " && i.complete && i.naturalWidth > 0)"
        )
        [plot] = loaded_images(page, "data:image/png")
        assert plot["natural"][0] > 0 and plot["shown"][0] > 0
        page.screenshot(path=str(tmp_path / "plot_roc.png"))
        page.wait_for_load_state("networkidle")
        assert broken_images(page) == []
        assert _without_telemetry(watch.problems()) == {}
        page.context.close()
