"""``scoreloop demo`` end to end on 14 batches (2015 + two 2016 batches), in a temporary state root.

The whole loop runs as a real subprocess: ingest through Dagster, the first champion (2015 only),
scoring and the serving snapshot, a challenger judged against it, rescore on promotion,
monitoring, and the lookup service over real HTTP. CatBoost is kept small with a params copy
(30 iterations); that copy also lowers ``gate.min_delta`` to -0.01 so the promotion path (rescore
+ new snapshot) is exercised deterministically: at this size the 2016 challenger is about as good
as the 2015 champion (ROC AUC within 0.002).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from pipelines.ingest import LOG_SCHEMA, log_uri
from pipelines.registry import decisions, list_versions, resolve_champion
from pipelines.scores_table import scores_uri
from pipelines.settings import PROJECT_ROOT, Settings
from pipelines.snapshot import read_current
from pipelines.tables import read_table, table_uri

LIMIT = 14
ACCEPTED = [f"2015-{m:02d}" for m in (1, 2, 3, 4, 6, 8, 9, 10, 11, 12)] + ["2016-01", "2016-02"]


#: Paths other people may be editing in a shared checkout while this test runs. The demo writes
#: state only (never source), so a new entry outside these is the demo's doing.
SOURCE = re.compile(r"^(pipelines|assets|serving|tests|docs|benchmarks)/.*\.(py|md)$|^README\.md$")
CACHES = re.compile(r"(__pycache__|\.pytest_cache|\.mypy_cache|\.ruff_cache|\.hypothesis)/$")


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout


def git_state() -> dict[str, set[str]]:
    """The checkout's status (ignored files too), tags and branches, and commits by scoreloop."""
    return {
        "status": {
            line
            for line in git("status", "--porcelain", "--ignored").splitlines()
            if not CACHES.search(line)
        },
        "refs": set(git("for-each-ref", "--format=%(refname)", "refs/tags", "refs/heads").split()),
        "scoreloop_commits": set(git("log", "--all", "--format=%H", "--author=scoreloop@").split()),
    }


def assert_checkout_untouched(before: dict[str, set[str]]) -> None:
    """Exactly ``git status --porcelain`` unchanged when nobody else works in the checkout; in a
    shared checkout, only source edits by others may appear meanwhile."""
    after = git_state()
    new = after["status"] - before["status"]
    assert not [entry for entry in new if not SOURCE.match(entry[3:])], new
    assert after["refs"] == before["refs"]  # no GTO tag, no branch
    assert after["scoreloop_commits"] == before["scoreloop_commits"]  # the registry's identity


def small_params(path: Path) -> Path:
    raw = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    raw["training"].update(iterations=30, baseline_iterations=10)
    raw["gate"]["min_delta"] = -0.01
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.slow
def test_demo_runs_the_whole_loop(state: Path, settings: Settings, tmp_path: Path) -> None:
    before = git_state()
    params = small_params(tmp_path / "params.yaml")
    out = subprocess.run(
        [str(Path(sys.executable).with_name("scoreloop")), "demo", "--limit", str(LIMIT)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={
            "SCORELOOP_STATE_ROOT": str(state),
            "SCORELOOP_PARAMS_PATH": str(params),
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "COLUMNS": "200",
        },
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout

    # ingest: faults handled as before
    assert f"{LIMIT} Dagster runs; batches: 12 accepted, 1 refused, 1 failed" in text
    assert "2015-05 │ refused" in text
    assert "batch_2015-07.parquet: cannot be read" in text
    log = read_table(log_uri(settings.tables, "records"), schema=LOG_SCHEMA)
    assert sorted(log.filter(pl.col("status") == "accepted")["batch_id"]) == ACCEPTED

    # first champion: 2015 only, promoted because there was none
    history = decisions(settings)
    assert [d["version"] for d in history] == ["v0.0.1", "v0.0.2"]
    first, second = history
    assert first["action"] == "promote" and first["champion_version"] is None
    assert "no champion yet" in " ".join(first["reasons"])
    assert "window capped at split.until=2015-12" in text
    assert "out-of-time holdout 2015-11..2015-12" in text
    assert "PROMOTED v0.0.1" in text

    # challenger on the newest labelled batches, judged on the 2016 holdout, promoted
    assert "out-of-time holdout 2016-01..2016-02" in text
    assert second["action"] == "promote" and second["champion_version"] == "v0.0.1"
    assert {v.version for v in list_versions(settings)} == {"v0.0.1", "v0.0.2"}
    champion = resolve_champion(settings)
    assert champion is not None and champion.version == "v0.0.2"
    assert "snapshot model version v0.0.1 -> v0.0.2" in text

    # scores: every accepted row by both models, each with reasons
    validated_rows = read_table(table_uri(settings.tables, "validated")).height
    scores = pl.read_delta(scores_uri(settings))
    per_version = dict(scores.group_by("model_version").len().iter_rows())
    assert per_version == {"v0.0.1": validated_rows, "v0.0.2": validated_rows}
    assert sorted(scores["batch_id"].unique()) == ACCEPTED
    assert scores["reasons"].list.len().min() == 3
    reason = scores["reasons"][0][0]
    assert set(reason) == {"feature", "value", "contribution"}

    # the serving snapshot holds the champion's latest score of every entity
    manifest = read_current(settings.snapshots)
    assert manifest is not None and manifest.model_version == "v0.0.2"
    assert manifest.row_count == scores["entity_id"].n_unique()

    # the service answered the lookup for the entity asked, and scored its record the same way
    asked = re.search(r"GET /scores/(\d+) -> 200", text)
    answered = re.search(r"entity (\d+) batch \S+: score (\d\.\d+)", text)
    predicted = re.search(
        r"POST /predict \(the same entity's record\) -> 200.*?score (\S+),", text, re.S
    )
    assert asked and answered and predicted, text[-3000:]
    assert asked.group(1) == answered.group(1)
    assert predicted.group(1) == answered.group(2)
    snapshot_row = (
        pl.read_ipc(settings.snapshots / manifest.snapshot_id / "scores.arrow")
        .filter(pl.col("entity_id") == int(asked.group(1)))
        .row(0, named=True)
    )
    assert f"{snapshot_row['score']:.4f}" == answered.group(2)
    pid = re.search(r"service stopped \(pid (\d+)\)", text)
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid.group(1)), 0)

    # monitoring and the summary
    assert "staleness of v0.0.2:" in text
    assert str(settings.state_root / "alerts" / "alerts.jsonl") in text
    for step in ("simulate", "ingest", "champion", "score", "challenger", "monitor", "serve"):
        assert re.search(rf"│ {step}\s+│ \d+\.\d", text), step
    assert "make ui" in text and "make serve" in text

    # every step is in the persistent instance the UI opens
    with dg.DagsterInstance.from_config(str(settings.dagster)) as instance:
        # 14 ingest runs, 2 retraining runs, 2 snapshot runs, 3 monitoring runs
        assert len(instance.get_runs()) == LIMIT + 2 + 2 + 3
        for key in ("training_set", "challenger", "evaluation", "champion", "serving_snapshot"):
            assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None, key
        scored = instance.get_materialized_partitions(dg.AssetKey("scores"))
        assert sorted(scored) == ACCEPTED
        assert len(instance.get_materialized_partitions(dg.AssetKey("drift"))) == 3

    # nothing outside the state root changed
    assert_checkout_untouched(before)
    assert {"landing", "tables", "dagster", "registry", "snapshots"} <= {
        p.name for p in state.iterdir()
    }
