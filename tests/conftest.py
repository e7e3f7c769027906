"""Shared fixtures for every test package: keep this small and generic.

- ``spec``: the bundled ACS employment dataset spec.
- ``acs``: the bundled ACS frame (read once per session; do not mutate it, polars frames are
  immutable anyway).
- ``state``: an empty state root under ``tmp_path`` with ``SCORELOOP_STATE_ROOT`` pointing at it
  (every other ``SCORELOOP_*`` variable of the outer environment removed), so nothing a test does
  touches the project's own ``.scoreloop``.
- ``settings``: ``get_settings()`` read after ``state`` is in place.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from pipelines.settings import BUNDLED_SPEC, Settings, get_settings
from pipelines.spec import DatasetSpec, load_spec

ACS_DATA = BUNDLED_SPEC.parent / "employment_MA.parquet"


@pytest.fixture(scope="session")
def acs_path() -> Path:
    """The bundled ACS parquet file."""
    return ACS_DATA


@pytest.fixture
def spec() -> DatasetSpec:
    """The bundled ACS spec (a fresh object per test, so tests may modify it)."""
    return load_spec(BUNDLED_SPEC)


@pytest.fixture(scope="session")
def acs() -> pl.DataFrame:
    """The bundled ACS data, 277,677 rows."""
    return pl.read_parquet(ACS_DATA)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh state root for this test; returns its path."""
    for name in list(os.environ):
        if name.startswith("SCORELOOP_"):
            monkeypatch.delenv(name)
    root = tmp_path / "state"
    root.mkdir()
    monkeypatch.setenv("SCORELOOP_STATE_ROOT", str(root))
    return root


@pytest.fixture
def settings(state: Path) -> Settings:
    """Settings read with ``state`` in place (landing, tables, ... all under it)."""
    return get_settings()
