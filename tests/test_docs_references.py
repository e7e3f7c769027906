"""The docs name the tests that show each claim (docs/reliability.md: the fault table and the ML
Test Score self-assessment). Every `tests/...py` and `tests/...py::test_name` they cite must
exist, so a renamed or deleted test cannot leave a claim pointing at nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
# `tests/a/b.py`, `tests/a/b.py::test_x`, `b.py::test_x` (a test file's bare name), and the tables'
# shorthand `::test_y` (same file as the last one cited on that line; any test file if none)
CITATION = re.compile(r"`((?:tests/[\w/]+/)?test_\w+\.py)((?:::\w+)?)`|`::(test_\w+)`")
ANY = "<any test file>"


def citations(text: str) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        last = ANY
        for match in CITATION.finditer(line):
            path, name, short = match.group(1), match.group(2), match.group(3)
            if path:
                last = path
                found.append((path, name[2:] if name else None))
            else:
                found.append((last, short))
    return found


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def _files(path: str) -> list[Path]:
    if path == ANY:
        return sorted((ROOT / "tests").rglob("test_*.py"))
    if "/" in path:
        return [ROOT / path] if (ROOT / path).is_file() else []
    return sorted((ROOT / "tests").rglob(path))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_cited_test_exists(doc: Path) -> None:
    missing = []
    for path, name in citations(doc.read_text()):
        files = _files(path)
        if not files:
            missing.append(path)
        elif name and not any(name in _test_names(f) for f in files):
            missing.append(f"{path}::{name}")
    assert missing == []


def test_the_reliability_page_cites_tests_and_the_parser_sees_shorthand() -> None:
    cited = citations((ROOT / "docs" / "reliability.md").read_text())
    assert len(cited) >= 40
    assert citations("`tests/a/test_a.py::test_x`, `::test_y`\n`::test_z`") == [
        ("tests/a/test_a.py", "test_x"),
        ("tests/a/test_a.py", "test_y"),
        (ANY, "test_z"),
    ]
    assert _files("test_validate.py") == [ROOT / "tests" / "pipelines" / "test_validate.py"]
