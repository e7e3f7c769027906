"""Kubernetes and compose files for the service, checked without a cluster (kubeconform and
kubectl are not installable offline): parsed, and asserted on what a safe rollout needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes" / "serving.yaml"
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"


def _documents() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(KUBERNETES.read_text()) if d]
    return {d["kind"]: d for d in docs}


def test_deployment_rolls_without_unavailability_and_probes_readiness() -> None:
    deployment = _documents()["Deployment"]
    assert deployment["apiVersion"] == "apps/v1"
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["strategy"]["rollingUpdate"]["maxSurge"] >= 1
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    (container,) = spec["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port_names == {"http": 8000}
    assert re.fullmatch(r"[\w./-]+:v\d+\.\d+\.\d+-[0-9a-f]+", container["image"])


def test_deployment_runs_non_root_read_only() -> None:
    pod = _documents()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/snapshots"]["readOnly"] is True
    assert "/tmp" in mounts  # the only writable path
    env = {e["name"]: e for e in container["env"]}
    assert env["SCORELOOP_SNAPSHOT_DIR"]["value"] == "/snapshots"
    assert "secretKeyRef" in env["SCORELOOP_ADMIN_TOKEN"]["valueFrom"]


def test_service_targets_the_deployment_pods() -> None:
    docs = _documents()
    service = docs["Service"]
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_compose_service_is_non_root_read_only_and_loopback() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    serving = compose["services"]["serving"]
    assert serving["user"] == "10001:10001"
    assert serving["read_only"] is True and serving["init"] is True
    assert serving["ports"] == ["127.0.0.1:8000:8000"]
    assert any(v.endswith(":/snapshots:ro") for v in serving["volumes"])
    assert "/readyz" in " ".join(serving["healthcheck"]["test"])
    assert serving["ulimits"]["nofile"] == {"soft": 20000, "hard": 20000}
