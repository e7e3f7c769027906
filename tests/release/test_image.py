"""The serving image, built and run for real: serving-only content, labels, non-root, healthy."""

from __future__ import annotations

import json

import pytest
from packaging.requirements import Requirement

from scoreloop.release.build import (
    GPU_CODE_TOOL,
    MODEL_VERSION_LABEL,
    REVISION_LABEL,
    BuiltImage,
    code_commit,
    export_requirements,
)
from scoreloop.release.engine import container_engine

pytestmark = pytest.mark.slow

CHECK_IMPORTS = """
import importlib, json
result = {}
for name in ("serving.main", "serving.__main__", "dagster", "dvc", "gto", "typer",
             "pipelines.train", "pipelines.registry", "pipelines.evaluate", "scoreloop", "assets",
             "plotly", "matplotlib", "graphviz", "PIL", "sklearn", "scipy.linalg",
             "pyarrow.flight", "pyarrow._s3fs"):
    try:
        importlib.import_module(name)
        result[name] = True
    except ImportError:
        result[name] = False
print(json.dumps(result))
"""


def test_image_holds_serving_code_and_no_training_stack(image_v1: BuiltImage) -> None:
    out = container_engine().run(
        ["run", "--rm", "--entrypoint", "python", image_v1.image, "-c", CHECK_IMPORTS],
        what="import check in the image",
    )
    imports = json.loads(out.stdout.strip().splitlines()[-1])
    assert imports["serving.main"] and imports["serving.__main__"], imports
    absent = [n for n in imports if not n.startswith("serving")]
    assert [n for n in absent if imports[n]] == [], imports


def test_image_is_tagged_and_labelled_with_model_version_and_commit(image_v1: BuiltImage) -> None:
    commit = code_commit()
    assert image_v1.image.endswith(f":v0.0.1-{commit[:12]}")
    assert image_v1.labels[REVISION_LABEL] == commit
    assert image_v1.labels[MODEL_VERSION_LABEL] == "v0.0.1"
    info = container_engine().inspect_image(image_v1.image)
    assert info["Config"]["User"] == "10001:10001"
    healthcheck = info.get("Healthcheck") or info["Config"].get("Healthcheck")  # podman / docker
    assert "/healthz" in " ".join(healthcheck["Test"])
    print(f"serving image {image_v1.image}: {image_v1.size_mb} MB")


LIST_DISTRIBUTIONS = """
import importlib.metadata, json
print(json.dumps(sorted({d.metadata["Name"].lower().replace("_", "-")
                         for d in importlib.metadata.distributions()})))
"""

LOAD_SHARED_OBJECTS = """
import ctypes, json, pathlib, sysconfig
site = pathlib.Path(sysconfig.get_paths()["purelib"])
failed, loaded = {}, 0
for path in sorted(site.rglob("*.so*")):
    try:
        ctypes.CDLL(str(path))
        loaded += 1
    except OSError as exc:
        failed[str(path.relative_to(site))] = str(exc)
print(json.dumps({"loaded": loaded, "failed": failed}))
"""


def _run_python(image: str, code: str) -> object:
    out = container_engine().run(
        ["run", "--rm", "--entrypoint", "python", image, "-c", code], what="python in the image"
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_image_installs_exactly_the_locked_serving_closure(image_v1: BuiltImage) -> None:
    """No pip, no venv setuptools, no catboost plotting helpers: the locked serving set, whole.
    (Markers are evaluated here: the host and the image are both CPython 3.11 on Linux.)"""
    installed = _run_python(image_v1.image, LIST_DISTRIBUTIONS)
    requirements = [Requirement(line) for line in export_requirements("serving").splitlines()]
    wanted = sorted({r.name for r in requirements if r.marker is None or r.marker.evaluate()})
    assert installed == wanted
    for name in ("pip", "setuptools", "dagster", "dvc", "gto", "plotly", "matplotlib"):
        assert name not in installed


def test_every_shared_object_left_in_the_image_loads(image_v1: BuiltImage) -> None:
    """The build strips symbol tables and prunes files: every library left must still load
    (stripping an auditwheel-grafted lib breaks it: 'ELF load command ... not page-aligned')."""
    result = _run_python(image_v1.image, LOAD_SHARED_OBJECTS)
    assert isinstance(result, dict)
    assert result["failed"] == {}
    assert result["loaded"] > 50


FIND_CUDA_KERNELS = """
import json, pathlib, sys, sysconfig
sys.path.insert(0, "/check")
from gpu_code import cuda_kernel_bytes
site = pathlib.Path(sysconfig.get_paths()["purelib"])
found = {str(p.relative_to(site)): cuda_kernel_bytes(p) for p in site.rglob("*.so*") if p.is_file()}
print(json.dumps({"files": len(found), "with_kernels": {k: v for k, v in found.items() if v}}))
"""


def test_no_shared_object_in_the_image_carries_cuda_kernels(image_v1: BuiltImage) -> None:
    """The build cuts .nv_fatbin (224 MB in catboost's library) out: nothing here runs on a GPU.
    The checker is scoreloop/release/gpu_code.py itself, mounted read-only."""
    out = container_engine().run(
        [
            "run",
            "--rm",
            "-v",
            f"{GPU_CODE_TOOL}:/check/gpu_code.py:ro",
            "--entrypoint",
            "python",
            image_v1.image,
            "-c",
            FIND_CUDA_KERNELS,
        ],
        what="CUDA kernel check in the image",
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["files"] > 50
    assert result["with_kernels"] == {}
