"""What goes into the serving image, decided on the host: the locked closure and the prune list."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from scoreloop.release.build import (
    SERVING_PRUNE,
    SERVING_UNUSED_DEPENDENCIES,
    export_requirements,
    serving_closure,
    wheel_requirements,
)
from scoreloop.release.gpu_code import SECTION, Cut, cuda_kernel_bytes, drop_fatbin

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


#: Trains, predicts and explains with whichever catboost is first on sys.path (same seed, data).
CATBOOST_RUN = """
import json
import numpy as np
import catboost
from catboost import CatBoostClassifier, Pool
rng = np.random.default_rng(0)
X = rng.random((300, 6))
y = (X[:, 0] + X[:, 1] > 1).astype(int)
model = CatBoostClassifier(iterations=30, verbose=False, thread_count=1, random_seed=1).fit(X, y)
print(json.dumps({
    "file": catboost._catboost.__file__,
    "proba": model.predict_proba(X[:20])[:, 1].tolist(),
    "shap": model.get_feature_importance(Pool(X[:20]), type="ShapValues").tolist(),
}))
"""


def _catboost_run(pythonpath: Path | None = None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    out = subprocess.run(
        [sys.executable, "-c", CATBOOST_RUN], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_cutting_the_cuda_kernels_keeps_catboost_training_predicting_and_explaining(
    tmp_path: Path,
) -> None:
    """The real catboost library of the lock, cut as the image build cuts it: most of the file
    goes, and what it computes on the CPU is bit-for-bit what the original computes."""
    spec = importlib.util.find_spec("catboost")
    assert spec and spec.submodule_search_locations
    package = Path(next(iter(spec.submodule_search_locations)))
    shutil.copytree(package, tmp_path / "catboost", ignore=shutil.ignore_patterns("__pycache__"))
    (library,) = (tmp_path / "catboost").glob("_catboost*.so")
    before = library.stat().st_size
    kernels = cuda_kernel_bytes(library)
    assert kernels > before / 2  # the wheel's GPU code: what the cut is for

    cut = drop_fatbin(library)

    assert cut.saved > kernels * 0.99 and library.stat().st_size == before - cut.saved
    assert cuda_kernel_bytes(library) == 0
    assert drop_fatbin(library) == Cut(library, 0, f"no {SECTION} section")  # idempotent
    original, rewritten = _catboost_run(), _catboost_run(tmp_path)
    assert rewritten["file"] == str(library) and original["file"] != rewritten["file"]
    assert rewritten["proba"] == original["proba"]
    assert rewritten["shap"] == original["shap"]


def test_gpu_code_leaves_files_without_cuda_kernels_alone(tmp_path: Path) -> None:
    text = tmp_path / "notes.so"
    text.write_text("not a library")
    assert drop_fatbin(text) == Cut(text, 0, "not an ELF file")
    spec = importlib.util.find_spec("yaml._yaml")
    assert spec and spec.origin
    library = tmp_path / Path(spec.origin).name
    shutil.copy2(spec.origin, library)
    content = library.read_bytes()
    assert drop_fatbin(library) == Cut(library, 0, f"no {SECTION} section")
    assert library.read_bytes() == content
    assert cuda_kernel_bytes(library) == 0


def test_wheels_are_built_for_the_images_python_not_the_hosts() -> None:
    """The host may run 3.11.7 while bookworm's python3 is 3.11.2: a wheel needed only below
    3.11.3 must still be built (the image installs --no-index), one for 3.12 or Windows not."""
    requirements = (
        "async-timeout==5.0.1 ; python_full_version < '3.11.3'\n"
        "numpy==2.4.6 ; python_full_version < '3.12'\n"
        "numpy==2.5.5 ; python_full_version >= '3.12'\n"
        "tzdata==2026.6 ; sys_platform == 'emscripten' or sys_platform == 'win32'\n"
        "pyyaml==6.0.3\n"
    )
    assert wheel_requirements(requirements).splitlines() == [
        "async-timeout==5.0.1",
        "numpy==2.4.6",
        "pyyaml==6.0.3",
    ]
