"""What goes into the serving image, decided on the host: the locked closure and the prune list."""

from __future__ import annotations

import sysconfig
from pathlib import Path

from scoreloop.release.build import (
    SERVING_PRUNE,
    SERVING_UNUSED_DEPENDENCIES,
    export_requirements,
    serving_closure,
)

#: Never in the serving image: the training/orchestration stack and catboost's plotting helpers.
NOT_SERVED = {
    "dagster",
    "dagster-webserver",
    "dvc",
    "gto",
    "typer",
    "deltalake",
    "scikit-learn",
    "plotly",
    "matplotlib",
    "graphviz",
    "pillow",
    "fonttools",
    "kiwisolver",
    "contourpy",
    "narwhals",
}


def _names(requirements: str) -> set[str]:
    return {line.split("==", 1)[0].strip().lower() for line in requirements.splitlines() if line}


def test_serving_requirements_are_pinned_and_hold_only_what_the_service_imports() -> None:
    requirements = export_requirements("serving")
    lines = requirements.splitlines()
    assert lines and all("==" in line for line in lines), requirements
    names = _names(requirements)
    for needed in ("catboost", "numpy", "scipy", "six", "pandas", "pyarrow", "polars", "fastapi"):
        assert needed in names, names
    assert names & NOT_SERVED == set()
    everything = _names(export_requirements("all"))
    assert names < everything
    assert {"dagster", "plotly", "matplotlib"} <= everything


def test_serving_closure_walks_extras_and_drops_only_the_listed_edges(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text(
        """
version = 1
[[package]]
name = "scoreloop"
version = "0.1.0"
[package.dev-dependencies]
serving = [{ name = "web", extra = ["standard"] }, { name = "catboost" }]

[[package]]
name = "web"
version = "1"
dependencies = [{ name = "core" }]
[package.optional-dependencies]
standard = [{ name = "fast-loop" }]

[[package]]
name = "core"
version = "1"

[[package]]
name = "fast_loop"
version = "1"

[[package]]
name = "catboost"
version = "1.2.10"
dependencies = [{ name = "numpy" }, { name = "plotly" }, { name = "matplotlib" }]

[[package]]
name = "numpy"
version = "2"

[[package]]
name = "plotly"
version = "7"
dependencies = [{ name = "narwhals" }]

[[package]]
name = "matplotlib"
version = "3"
dependencies = [{ name = "numpy" }]
"""
    )
    assert {"plotly", "matplotlib"} <= SERVING_UNUSED_DEPENDENCIES["catboost"]
    assert serving_closure(lock) == {"web", "core", "fast-loop", "catboost", "numpy"}


def test_every_prune_pattern_still_matches_the_locked_wheels() -> None:
    """The dev venv is synced from the same lock: a pattern matching nothing there has gone stale
    (a renamed file after an upgrade) and would silently prune nothing."""
    site = Path(sysconfig.get_paths()["purelib"])
    stale = [pattern for pattern, _ in SERVING_PRUNE if not list(site.glob(pattern))]
    assert stale == []
    assert all(why for _, why in SERVING_PRUNE)
