"""Package boundaries: ``pipelines`` runs without Dagster or the web stack, ``serving`` without
orchestration, DVC/GTO or the training code. Every module of the package is imported in a fresh
interpreter and the loaded modules are checked."""

from __future__ import annotations

import subprocess
import sys

import pytest

PIPELINES_BANNED = ("dagster", "fastapi", "starlette", "uvicorn", "assets", "serving")
SERVING_BANNED = (
    "dagster",
    "dvc",
    "gto",
    "assets",
    "sklearn",
    "pipelines.training",
    "pipelines.training_set",
    "pipelines.evaluation",
    "pipelines.gate",
    "pipelines.registry",
    "pipelines.workspace",
    "pipelines.cli",
)

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
