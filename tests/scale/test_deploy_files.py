"""The production deployment, checked without a cluster: the compose stack and the Helm values.

Parsed and asserted on structure (what must run, what each part is configured with); the
compose stack's dagster.yaml is also loaded by Dagster itself against a real PostgreSQL.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_postgres import PostgresRunStorage

from pipelines.settings import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "deploy" / "compose"
HELM_VALUES = PROJECT_ROOT / "deploy" / "helm" / "values.yaml"
STACK_PARTS = {
    "webserver",
    "daemon",
    "code-location",
    "worker-1",
    "worker-2",
    "postgres",
    "dask-scheduler",
    "object-store",
    "serving",
}


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path} is not a mapping"
    return loaded


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict)
    return {str(k): str(v) for k, v in env.items()}


def test_the_compose_stack_has_every_part_configured_for_scale() -> None:
    services = _load(COMPOSE / "stack.yaml")["services"]
    assert set(services) >= STACK_PARTS
    dagster_parts = ["webserver", "daemon", "code-location", "worker-1", "worker-2"]
    for name in dagster_parts:
        env = _env(services[name])
        assert env["SCORELOOP_OBJECT_STORE"].startswith("s3://"), name
        assert env["SCORELOOP_S3_ENDPOINT_URL"] == "http://object-store:9000", name
        assert env["SCORELOOP_DAGSTER_PG_URL"].startswith("postgresql+psycopg2://"), name
        assert "@postgres:5432/" in env["SCORELOOP_DAGSTER_PG_URL"], name
    for name in ["worker-1", "worker-2"]:
        worker = services[name]
        command = worker["command"]
        assert command[:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
        assert command[command.index("--nthreads") + 1] == "1"
        assert float(worker["cpus"]) == 1.0
        assert _env(worker)["OMP_NUM_THREADS"] == "1"
    serving = services["serving"]
    assert (
        _env(serving)["SCORELOOP_OBJECT_STORE"]
        == _env(services["daemon"])["SCORELOOP_OBJECT_STORE"]
    )
    assert serving["read_only"] is True and "/cache" in serving["tmpfs"]
    # no secret is written into the file: every credential comes from the environment
    text = (COMPOSE / "stack.yaml").read_text()
    for secret in ["AWS_SECRET_ACCESS_KEY", "POSTGRES_PASSWORD", "SCORELOOP_ADMIN_TOKEN"]:
        assert f"${{{secret}:?" in text
    workspace = _load(COMPOSE / "workspace.yaml")
    assert workspace["load_from"][0]["grpc_server"]["host"] == "code-location"
    assert "4000" in services["code-location"]["command"]


def test_the_compose_instance_config_loads_on_postgres(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORELOOP_DAGSTER_PG_URL", pg_url)
    shutil.copy(COMPOSE / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"


def test_the_helm_values_use_the_k8s_run_launcher_and_external_state() -> None:
    values = _load(HELM_VALUES)
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    k8s = launcher["config"]["k8sRunLauncher"]
    assert {"name": "scoreloop-object-store"} in k8s["envSecrets"]
    limits = k8s["runK8sConfig"]["containerConfig"]["resources"]["limits"]
    assert limits["cpu"] == "1"
    assert values["postgresql"]["enabled"] is False  # an external, managed PostgreSQL
    assert values["postgresql"]["postgresqlHost"]
    assert values["global"]["postgresqlSecretName"]
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "assets.definitions"]
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env["SCORELOOP_OBJECT_STORE"].startswith("s3://")
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["redis"]["enabled"] is False and values["rabbitmq"]["enabled"] is False
