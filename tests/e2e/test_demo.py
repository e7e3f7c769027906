"""``scoreloop demo --limit 20`` end to end (2015 + eight 2016 batches), in a temporary state root.

The whole loop runs as a real subprocess: ingest through Dagster, the first champion (2015 only),
scoring and the serving snapshot, the challenger step (skipped: no labelled batch is newer than
the champion), monitoring, then the live step: the eight 2016 batches land one by one with the
``drift`` fault, drift is detected, the real ``staleness_sensor`` (ticked on the instance)
requests retraining, the challenger trained on the drifted data passes the unchanged gate, is
promoted, the population is rescored and the snapshot swaps; then the lookup service over real
HTTP. The params are the project's (the baseline cut to 10 iterations); the gate is the default
one.
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

LIMIT = 20
INITIAL = 12
LIVE = [f"2016-{m:02d}" for m in range(1, 9)]
ACCEPTED = [f"2015-{m:02d}" for m in (1, 2, 3, 4, 6, 8, 9, 10, 11, 12)] + LIVE


#: Paths other people may be editing in a shared checkout while this test runs. The demo writes
#: state only (never source), so a new entry outside these is the demo's doing.
SOURCE = re.compile(r"^(pipelines|assets|serving|tests|docs|benchmarks)/.*\.(py|md)$|^README\.md$")
CACHES = re.compile(r"(__pycache__|\.pytest_cache|\.mypy_cache|\.ruff_cache|\.hypothesis)/$")


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout


def git_in(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
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
    # the challenger's 300 iterations (params.yaml) are kept: it must learn the drifted data and
    # win through the default gate; only the baseline is cut
    raw["training"].update(baseline_iterations=10)
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

    # ingest: faults handled as before (the first 12 batches land before the live step)
    assert f"{INITIAL} Dagster runs; batches: 10 accepted, 1 refused, 1 failed" in text
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
    # the challenger step has nothing newer to learn from
    assert "no labelled batch is newer than v0.0.1's training data" in text

    # live: drift detected on the streamed batches (by the champion's monitoring)
    drift = pl.read_delta(str(Path(settings.tables) / "drift"))
    drifted = (
        drift.filter(
            pl.col("model_version") == "v0.0.1",
            pl.col("drifted"),
            ~pl.col("feature").is_in(["score", "__dataset__"]),
        )
        .group_by("batch_id")
        .agg(pl.col("feature").n_unique())
    )
    assert set(drifted.filter(pl.col("feature") >= 2)["batch_id"]) == set(LIVE)
    assert not set(drifted["batch_id"]) & {"2015-10", "2015-11", "2015-12"}

    # ... the staleness sensor requested retraining: a run of the retraining job with its tags
    with dg.DagsterInstance.from_config(str(settings.dagster)) as instance:
        runs = instance.get_runs(
            filters=dg.RunsFilter(tags={"dagster/sensor_name": "staleness_sensor"})
        )
        assert len(runs) == 1  # one drift episode, one retrain (cooldown afterwards)
        [retrain] = runs
        assert retrain.job_name == "retraining"
        assert retrain.status == dg.DagsterRunStatus.SUCCESS
        assert retrain.tags["scoreloop/trigger"] == "staleness"
        assert retrain.tags["scoreloop/stale_champion"] == "v0.0.1"
        assert retrain.tags["scoreloop/stale_reasons"].startswith(
            ("feature drift", "performance drop")
        )
        requested_at = retrain.tags["dagster/run_key"].removeprefix("stale-v0.0.1-")
    assert requested_at in LIVE
    assert f"staleness_sensor at {requested_at}: retraining run" in text
    assert "waiting for labelled batches" in text

    # ... promoted through the default gate, honestly better on the drifted holdout
    assert second["action"] == "promote" and second["champion_version"] == "v0.0.1"
    assert second["challenger_value"] >= second["champion_value"] + 0.001
    shadow = second["shadow"]
    assert shadow["batch_id"] == requested_at and shadow["challenger_version"] == "v0.0.2"
    assert 0 < shadow["decision_agreement"] < 1
    assert f"shadow on the newest batch {requested_at}" in text
    assert {v.version for v in list_versions(settings)} == {"v0.0.1", "v0.0.2"}
    champion = resolve_champion(settings)
    assert champion is not None and champion.version == "v0.0.2"
    prod_tags = git_in(settings.registry, "tag", "--list", "employment#prod#*").split()
    assert len(prod_tags) == 2
    assert "snapshot model version v0.0.1 -> v0.0.2" in text

    # ... rescored: every accepted row by the new champion, each with reasons
    validated_rows = read_table(table_uri(settings.tables, "validated")).height
    scores = pl.read_delta(scores_uri(settings))
    new = scores.filter(pl.col("model_version") == "v0.0.2")
    assert new.height == validated_rows
    assert sorted(new["batch_id"].unique()) == ACCEPTED
    assert scores["reasons"].list.len().min() == 3
    reason = scores["reasons"][0][0]
    assert set(reason) == {"feature", "value", "contribution"}

    # ... and the serving snapshot swapped to it
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
    assert "staleness of v0.0.1:" in text
    assert str(settings.state_root / "alerts" / "alerts.jsonl") in text
    steps = ("simulate", "ingest", "champion", "score", "challenger", "monitor", "live", "serve")
    for step in steps:
        assert re.search(rf"│ {step}\s+│ \d+\.\d", text), step
        assert re.search(rf"\({step}: \d+\.\d s\)", text), step
    # not a terminal: long steps print a heartbeat
    assert "  still training the first champion" in text
    assert "make ui" in text and "make serve" in text

    # every step is in the persistent instance the UI opens
    with dg.DagsterInstance.from_config(str(settings.dagster)) as instance:
        jobs = {run.job_name for run in instance.get_runs()}
        assert jobs == {"ingest", "retraining", "scoring", "monitoring"}
        for key in ("training_set", "challenger", "evaluation", "champion", "serving_snapshot"):
            assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None, key
        scored = instance.get_materialized_partitions(dg.AssetKey("scores"))
        assert sorted(scored) == ACCEPTED
        assert set(LIVE) <= instance.get_materialized_partitions(dg.AssetKey("drift"))

    # nothing outside the state root changed
    assert_checkout_untouched(before)
    assert {"landing", "tables", "dagster", "registry", "snapshots"} <= {
        p.name for p in state.iterdir()
    }
