"""``scoreloop demo --fresh`` wipes the state root, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from pipelines.settings import PROJECT_ROOT, Settings
from scoreloop.demo import STATE_MARKER, reset_state_root


def test_fresh_wipes_a_state_root(state: Path, settings: Settings) -> None:
    (state / "tables" / "validated").mkdir(parents=True)
    (state / "tables" / "validated" / "part.parquet").write_bytes(b"x")
    (state / "dagster").mkdir()
    assert reset_state_root(settings) == []
    assert sorted(p.name for p in state.iterdir()) == [STATE_MARKER]


def test_fresh_refuses_a_folder_with_other_files(state: Path, settings: Settings) -> None:
    (state / "tables").mkdir()
    (state / "thesis.tex").write_text("precious")
    with pytest.raises(typer.BadParameter, match=r"thesis\.tex"):
        reset_state_root(settings)
    assert (state / "thesis.tex").read_text() == "precious"


def test_fresh_wipes_a_marked_root_whatever_it_holds(state: Path, settings: Settings) -> None:
    (state / STATE_MARKER).write_text("")
    (state / "something-new").mkdir()
    reset_state_root(settings)
    assert not (state / "something-new").exists()


@pytest.mark.parametrize("root", [PROJECT_ROOT, PROJECT_ROOT.parent, Path("/")])
def test_fresh_refuses_the_project_and_its_parents(root: Path) -> None:
    with pytest.raises(typer.BadParameter, match="not a state root"):
        reset_state_root(Settings(state_root=root))


def test_locations_outside_the_root_are_left_alone(state: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    warnings = reset_state_root(Settings(state_root=state, table_root=str(outside)))
    assert warnings == [f"SCORELOOP_TABLE_ROOT={outside} is outside the state root: not wiped"]
    assert (outside / "keep.txt").exists()
