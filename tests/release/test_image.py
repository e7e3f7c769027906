"""The serving image, built and run for real: serving-only content, labels, non-root, healthy."""

from __future__ import annotations

import json

import pytest

from scoreloop.release.build import MODEL_VERSION_LABEL, REVISION_LABEL, BuiltImage, code_commit
from scoreloop.release.engine import container_engine

pytestmark = pytest.mark.slow

CHECK_IMPORTS = """
import importlib, json
result = {}
for name in ("serving.main", "serving.__main__", "dagster", "dvc", "gto", "typer",
             "pipelines.train", "pipelines.registry", "pipelines.evaluate", "scoreloop", "assets"):
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
