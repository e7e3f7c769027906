"""The maintenance job runs the same step as ``scoreloop maintain`` through Dagster."""

from __future__ import annotations

import os
from pathlib import Path

from assets.definitions import defs
from assets.maintenance import maintenance_job
from assets.resources import ScoreloopResource


def test_maintenance_job_runs_and_reports_what_it_removed(state: Path) -> None:
    staging = state / "snapshots" / ".staging-killed"
    staging.mkdir(parents=True)
    (staging / "scores.arrow").write_bytes(b"partial")
    os.utime(staging, (0.0, 0.0))  # left by a publish killed long ago
    result = maintenance_job.execute_in_process(resources={"scoreloop": ScoreloopResource()})
    assert result.success
    [materialization] = [
        event.step_output_data.metadata
        for event in result.all_node_events
        if event.is_successful_output
    ]
    assert materialization["removed"].value >= 1
    assert not staging.exists()
    assert defs.resolve_job_def("maintenance_job") is not None
