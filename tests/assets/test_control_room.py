"""What the Dagster UI shows, asked through its own GraphQL API on a real (SQLite) instance.

The runs are the ``demo_loop`` fixture's (tests/assets/conftest.py), launched as the demo launches
them (``assets.runner``: the named jobs, in-process, on the persistent instance under
``settings.dagster``): a first champion, a much weaker challenger the gate refuses, a snapshot, and
three landed batches (accepted, refused, unreadable). Then the
webserver's GraphQL schema (``dagster_graphql``, the one ``dagster dev`` serves, over a code
server loading ``assets.definitions`` like the UI does) answers: the lineage from ``champion``,
each run's job and status, and the refused batch's check on its partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql
from support.control_room import DemoLoop

from pipelines.settings import PROJECT_ROOT, Settings
from scoreloop.demo.state import ensure_dagster_home

pytestmark = pytest.mark.slow

LINEAGE = """
{ assetNodes { assetKey { path } dependedByKeys { path } } }
"""
RUNS = """
{ runsOrError { ... on Runs { results { runId jobName status } } } }
"""
CHECK = """
query ($path: [String!]!, $check: String!, $partition: String) {
  assetCheckExecutions(assetKey: {path: $path}, checkName: $check, partition: $partition,
                       limit: 10) {
    runId partition evaluation { success severity partition }
  }
}
"""


@pytest.fixture
def graphql(settings: Settings, tmp_path: Path) -> Iterator[Any]:
    """A function running one GraphQL query against the instance, as the UI's webserver does."""
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_module": {
                            "module_name": "assets.definitions",
                            "working_directory": str(PROJECT_ROOT),
                        }
                    }
                ]
            }
        )
    )
    home = ensure_dagster_home(settings.dagster, settings.dagster_pg_url)
    with (
        dg.DagsterInstance.from_config(str(home)) as instance,
        define_out_of_process_context(str(workspace), None, instance) as context,
    ):

        def query(text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
            result = execute_dagster_graphql(context, text, variables)
            assert not result.errors, result.errors
            return result.data  # type: ignore[no-any-return]

        yield query


def test_the_ui_shows_the_loop_and_expected_outcomes_as_successes(
    demo_loop: DemoLoop, graphql: Any
) -> None:
    home = demo_loop.home
    first, refused, snapshot, ingested = (
        demo_loop.first,
        demo_loop.refused,
        demo_loop.snapshot,
        demo_loop.ingested,
    )
    ok, refused_batch, unreadable = ingested
    assert ok.success and not ok.failed_checks
    assert refused_batch.failed_checks == ["reject_rate_within_limit"]
    assert not unreadable.success

    # lineage: the model is upstream of what it scores, serves and is measured on
    nodes = graphql(LINEAGE)["assetNodes"]
    children = {
        "/".join(n["assetKey"]["path"]): {"/".join(k["path"]) for k in n["dependedByKeys"]}
        for n in nodes
    }
    assert {"scores", "serving_snapshot", "drift", "performance"} <= children["champion"]
    assert "serving_snapshot" in children["scores"]
    assert "champion" in children["evaluation"]

    # runs carry job names, and only the unreadable file's run failed
    runs = {r["runId"]: r for r in graphql(RUNS)["runsOrError"]["results"]}
    mine = [first, refused, snapshot, *ingested]
    assert [runs[r.run_id]["jobName"] for r in mine] == [
        "retraining",
        "retraining",
        "scoring",
        "ingest",
        "ingest",
        "ingest",
    ]
    assert not any(r["jobName"].startswith("__") for r in runs.values())
    assert [runs[r.run_id]["status"] for r in mine] == [
        "SUCCESS",
        "SUCCESS",  # the refused challenger
        "SUCCESS",
        "SUCCESS",
        "SUCCESS",  # the refused batch
        "FAILURE",  # the unreadable file
    ]
    failed = [r for r in runs.values() if r["status"] == "FAILURE"]
    assert [r["runId"] for r in failed] == [unreadable.run_id]

    # the refused batch: a failed ERROR check on its own partition, the accepted one passed
    def check(path: list[str], name: str, partition: str | None) -> list[dict[str, Any]]:
        variables = {"path": path, "check": name, "partition": partition}
        return graphql(CHECK, variables)["assetCheckExecutions"]  # type: ignore[no-any-return]

    [bad] = check(["validated_batch"], "reject_rate_within_limit", "2099-02")
    assert bad["runId"] == refused_batch.run_id and bad["partition"] == "2099-02"
    assert bad["evaluation"] == {"success": False, "severity": "ERROR", "partition": "2099-02"}
    [good] = check(["validated_batch"], "reject_rate_within_limit", "2099-01")
    assert good["evaluation"]["success"] is True
    # the refused challenger: a warning, not an error, and the champion still v0.0.1's
    gate = check(["evaluation"], "gate", None)
    assert [
        (g["runId"], g["evaluation"]["success"], g["evaluation"]["severity"]) for g in gate
    ] == [
        (refused.run_id, False, "WARN"),
        (first.run_id, True, "WARN"),
    ]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        latest = instance.get_latest_materialization_event(dg.AssetKey("champion"))
        assert latest is not None and latest.run_id == first.run_id
