"""Package boundaries, read from the source: ``pipelines`` (the domain) imports no orchestration,
web stack or front door, ``serving`` no orchestration, DVC/GTO or training code, and ``pipelines``
has no import cycle. Imports inside functions and ``importlib``/``__import__`` calls count too.
A second test imports every module in a fresh interpreter and checks what got loaded."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PIPELINES_BANNED = (
    "dagster",
    "fastapi",
    "starlette",
    "uvicorn",
    "typer",
    "assets",
    "serving",
    "scoreloop",
)
SERVING_BANNED = (
    "dagster",
    "dvc",
    "gto",
    "assets",
    "sklearn",
    "scoreloop",
    "pipelines.train",
    "pipelines.training_set",
    "pipelines.evaluate",
    "pipelines.gate",
    "pipelines.promote",
    "pipelines.registry",
    "pipelines.deployment_repo",
    "pipelines.stages",
)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str) -> Iterator[tuple[str, int]]:
    """Every module ``tree`` imports (anywhere but under ``if TYPE_CHECKING:``), with its line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.rsplit(".", node.level)[0]
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            yield name, node.lineno
            for alias in node.names:
                yield f"{name}.{alias.name}", node.lineno
        elif isinstance(node, ast.Call):
            func = node.func
            called = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if called in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield arg.value, node.lineno
                else:
                    yield "<dynamic import>", node.lineno


def _modules(package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _violations(package: str, banned: tuple[str, ...]) -> list[str]:
    problems = []
    for module, path in _modules(package).items():
        for name, line in _imports(ast.parse(path.read_text()), module):
            if name == "<dynamic import>" or any(
                name == b or name.startswith(b + ".") for b in banned
            ):
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return problems


@pytest.mark.parametrize(
    ("package", "banned"), [("pipelines", PIPELINES_BANNED), ("serving", SERVING_BANNED)]
)
def test_source_imports_stay_inside_their_boundary(package: str, banned: tuple[str, ...]) -> None:
    assert len(_modules(package)) >= 5
    assert _violations(package, banned) == []


def test_the_source_check_sees_imports_inside_functions_and_importlib(tmp_path: Path) -> None:
    code = "def f():\n    import dagster\n\nimportlib.import_module('assets.runner')\n"
    names = {name for name, _ in _imports(ast.parse(code), "pipelines.x")}
    assert {"dagster", "assets.runner"} <= names


def _graph() -> dict[str, set[str]]:
    modules = _modules("pipelines")
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {name for name, _ in _imports(ast.parse(path.read_text()), module)}
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_pipelines_has_no_import_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _cycle(_graph()) is None


CODE = """
import importlib, pkgutil, sys
package = importlib.import_module(sys.argv[1])
names = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names:
    importlib.import_module(name)
banned = tuple(sys.argv[2].split(","))
prefixes = tuple(b + "." for b in banned)
loaded = sorted(m for m in sys.modules if m in banned or m.startswith(prefixes))
print(len(names))
print(",".join(loaded))
"""


@pytest.mark.parametrize(
    ("package", "banned"), [("pipelines", PIPELINES_BANNED), ("serving", SERVING_BANNED)]
)
def test_package_imports_stay_inside_their_boundary(package: str, banned: tuple[str, ...]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE, package, ",".join(banned)],
        capture_output=True,
        text=True,
        check=True,
    )
    count, loaded = out.stdout.splitlines()
    assert int(count) >= 5, f"only {count} modules of {package} found"
    assert loaded == "", f"importing every {package} module loads {loaded}"


DELTA_CALLS = ("scan_delta", "read_delta", "DeltaTable", "write_deltalake")


def _delta_calls(source: str) -> list[int]:
    """Lines of ``source`` that open a Delta table with delta-rs or polars directly."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in DELTA_CALLS:
                lines.append(node.lineno)
    return lines


def test_delta_tables_are_opened_only_through_pipelines_tables() -> None:
    """A raw ``pl.scan_delta(uri)`` skips the object store's credentials and endpoint: on an
    s3:// root it goes to AWS (this broke ingest on S3 once). ``pipelines.tables`` is the one
    door."""
    problems = []
    for package in ("pipelines", "assets", "scoreloop", "serving"):
        for module, path in _modules(package).items():
            if module == "pipelines.tables":
                continue
            for line in _delta_calls(path.read_text()):
                problems.append(f"{path.relative_to(ROOT)}:{line}")
    assert problems == []


def test_the_delta_check_sees_a_raw_scan() -> None:
    assert _delta_calls("import polars as pl\npl.scan_delta('s3://b/t').collect()\n") == [2]
