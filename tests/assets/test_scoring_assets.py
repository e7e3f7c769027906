"""Scoring in Dagster, in-process: validate -> score -> snapshot, then a promotion rescores.

The champion comes from the real registry (git + DVC + GTO in tmp_path), so the rescore sensor
watches the same ``resolve_champion`` a deployment does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from support.scoring import promote_bundle, train_bundle
from typer.testing import CliRunner

from assets import scoring as scoring_assets
from assets.partitions import batch_partitions
from assets.resources import RESOURCES
from assets.runner import materialize_batch
from pipelines.scores_table import scores_uri
from pipelines.settings import Settings
from pipelines.snapshot import load_snapshot, read_current
from pipelines.spec import DatasetSpec
from scoreloop.cli import app

Land = Callable[..., Path]
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _score(instance: dg.DagsterInstance, batch_id: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [scoring_assets.scores],
        instance=instance,
        partition_key=batch_id,
        resources=RESOURCES,
        run_config=QUIET,
    )


def _run_request(
    instance: dg.DagsterInstance, cursor: str | None
) -> tuple[list[dg.RunRequest], str | None, str | None]:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=RESOURCES)
    result = scoring_assets.champion_rescore_sensor(context)
    if isinstance(result, dg.SkipReason):
        return [], cursor, result.skip_message
    assert isinstance(result, dg.SensorResult)
    skip = result.skip_reason.skip_message if result.skip_reason else None
    return list(result.run_requests or []), result.cursor, skip


def _launch(instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    assert request.job_name == "scoring"
    job = scoring_assets.defs.resolve_job_def(request.job_name)
    return job.execute_in_process(
        instance=instance,
        tags=request.tags,
        run_config=QUIET,
        asset_selection=request.asset_selection,
    )


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, object]:
    events = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(key)
    ]
    assert events, f"no materialisation of {key}"
    return {k: getattr(v, "value", v) for k, v in events[-1].metadata.items()}


def _assert_score_histogram(meta: dict[str, object], *, rows: object) -> None:
    """The materialisation's score histogram: ten 0.1-wide bins holding all ``rows``, bars
    scaled to 30 characters at the fullest bin."""
    histogram = [r.data for r in meta["score_histogram"].records]  # type: ignore[attr-defined]
    assert len(histogram) == 10 and sum(r["rows"] for r in histogram) == rows
    assert histogram[0]["score"] == "0.0-0.1" and max(len(r["bar"]) for r in histogram) == 30


def test_definitions_hold_scoring_assets_sensor_and_job() -> None:
    from assets.definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"scores", "serving_snapshot"} <= keys
    assert defs.resolve_sensor_def("champion_rescore_sensor").name == "champion_rescore_sensor"
    job = defs.resolve_job_def("scoring")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "scores",
        "serving_snapshot",
    }
    scores_def = defs.resolve_assets_def("scores")
    assert scores_def.partitions_def == batch_partitions
    assert scores_def.automation_conditions_by_key[dg.AssetKey("scores")] is not None
    # the model is in the lineage: champion -> scores -> serving_snapshot, champion -> monitoring
    graph = defs.resolve_asset_graph()
    children = {k.to_user_string() for k in graph.get(dg.AssetKey("champion")).child_keys}
    assert {"scores", "serving_snapshot", "drift", "performance"} <= children
    assert dg.AssetKey("scores") in graph.get(dg.AssetKey("serving_snapshot")).parent_keys


@pytest.mark.slow
def test_validate_score_snapshot_then_promotion_rescores(
    settings: Settings,
    instance: dg.DagsterInstance,
    land: Land,
    acs: pl.DataFrame,
    spec: DatasetSpec,
    tmp_path: Path,
) -> None:
    for i, batch_id in enumerate(["2015-01", "2015-02"]):
        land(batch_id, rows=200, start=i * 200)
        assert materialize_batch(instance, batch_id).success
    land("2015-03", rows=100, bad=30, start=1000)  # refused: never scored
    materialize_batch(instance, "2015-03")

    # Before any promotion: scoring materialises nothing and the sensor waits.
    assert _score(instance, "2015-01").success
    assert instance.get_latest_materialization_event(dg.AssetKey("scores")) is None
    requests, cursor, skip = _run_request(instance, None)
    assert requests == [] and skip == "no champion model promoted yet"

    # First champion: the sensor asks for one run that scores every accepted batch, then snapshots.
    bundle_one = train_bundle(acs, spec, tmp_path / "m1", version="v0.0.1", seed=1)
    promote_bundle(settings, Path(bundle_one.model_dir))
    requests, cursor, _ = _run_request(instance, cursor)
    assert cursor == "v0.0.1" and len(requests) == 1
    assert requests[0].tags[scoring_assets.RESCORE_TAG] == "v0.0.1"
    assert requests[0].asset_selection == [dg.AssetKey("serving_snapshot")]
    first = _launch(instance, requests[0])
    assert first.success
    assert instance.get_materialized_partitions(dg.AssetKey("scores")) == {"2015-01", "2015-02"}
    meta = _metadata(first, "serving_snapshot")
    assert meta["model_version"] == "v0.0.1" and meta["entities"] == 400
    assert 0.0 <= float(meta["decision_rate"]) <= 1.0  # type: ignore[arg-type]
    assert "| entity_id |" in str(meta["sample"])
    _assert_score_histogram(meta, rows=meta["entities"])
    assert meta["batches_rescored"] == 2
    assert _run_request(instance, cursor)[2] == "champion is still v0.0.1"

    # A refused batch is skipped, not scored: an expected outcome, so the run succeeds.
    refused = dg.materialize(
        [scoring_assets.scores],
        instance=instance,
        partition_key="2015-03",
        resources=RESOURCES,
        run_config=QUIET,
        raise_on_error=False,
    )
    assert refused.success
    assert not refused.get_asset_materialization_events()
    assert "2015-03" not in instance.get_materialized_partitions(dg.AssetKey("scores"))
    # A batch that was never ingested is an error.
    instance.add_dynamic_partitions("batches", ["2015-09"])
    never = dg.materialize(
        [scoring_assets.scores],
        instance=instance,
        partition_key="2015-09",
        resources=RESOURCES,
        run_config=QUIET,
        raise_on_error=False,
    )
    assert not never.success

    # A new validated batch is scored (eager) and the snapshot follows with nothing to rescore.
    land("2015-04", rows=200, start=2000)
    assert materialize_batch(instance, "2015-04").success
    scored = _score(instance, "2015-04")
    meta = _metadata(scored, "scores")
    assert meta["rows_scored"] == 200 and meta["model_version"] == "v0.0.1"
    assert "| entity_id |" in str(meta["sample"])
    _assert_score_histogram(meta, rows=meta["rows_scored"])
    snapshot = dg.materialize(
        [scoring_assets.serving_snapshot], instance=instance, resources=RESOURCES, run_config=QUIET
    )
    meta = _metadata(snapshot, "serving_snapshot")
    assert meta["entities"] == 600 and meta["batches_rescored"] == 0

    # Promotion of a second model: one rescore run, a snapshot of the new version only.
    bundle_two = train_bundle(acs, spec, tmp_path / "m2", version="v0.0.2", seed=2, rows=6000)
    promote_bundle(settings, Path(bundle_two.model_dir))
    requests, cursor, _ = _run_request(instance, cursor)
    assert cursor == "v0.0.2" and len(requests) == 1
    assert _launch(instance, requests[0]).success
    manifest = read_current(settings.snapshots)
    assert manifest is not None and manifest.model_version == "v0.0.2"
    loaded = load_snapshot(settings.snapshots, manifest)
    assert set(loaded.scores.column("model_version").to_pylist()) == {"v0.0.2"}
    assert loaded.scores.num_rows == 600
    table = pl.read_delta(scores_uri(settings))
    assert table.group_by("model_version").len().sort("model_version").rows() == [
        ("v0.0.1", 600),
        ("v0.0.2", 600),
    ]

    # The CLI door runs the same rescore: nothing stale now, it republishes the same population.
    result = CliRunner().invoke(app, ["rescore"])
    assert result.exit_code == 0, result.output
    assert "champion v0.0.2: 0 batch(es) scored, 3 already current" in result.output
    republished = read_current(settings.snapshots)
    assert republished is not None and republished.snapshot_id != manifest.snapshot_id
    assert republished.model_version == "v0.0.2" and republished.row_count == 600

    # A sensor without a cursor (a new instance, e.g. `make ui` after the demo) finds the
    # snapshot already serving the champion: it records the version and requests nothing.
    requests, fresh_cursor, skip = _run_request(instance, None)
    assert requests == [] and fresh_cursor == "v0.0.2"
    assert skip == f"snapshot {republished.snapshot_id} already serves v0.0.2"


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")
def test_eager_automation_requests_scores_of_validated_batches(
    settings: Settings, instance: dg.DagsterInstance, land: Land
) -> None:
    from assets import ingestion

    defs = dg.Definitions(
        assets=[
            ingestion.raw_batch,
            ingestion.validated_batch,
            scoring_assets.scores,
            scoring_assets.serving_snapshot,
        ],
        asset_checks=[ingestion.reject_rate_within_limit],
        resources=RESOURCES,
    )
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0
    land("2015-01", rows=150)
    land("2015-02", rows=100, bad=40, start=500)
    for batch_id in ("2015-01", "2015-02"):
        materialize_batch(instance, batch_id)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    # Both validated batches are requested; the refused one is then skipped by scores.
    assert result.get_requested_partitions(dg.AssetKey("scores")) == {"2015-01", "2015-02"}
    assert result.get_num_requested(dg.AssetKey("serving_snapshot")) == 0
    again = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert again.total_requested == 0
    # New scores of one batch (the other refused, never scored) bring a new snapshot.
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="scores", partition="2015-01")
    )
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=again.cursor)
    assert after.get_num_requested(dg.AssetKey("serving_snapshot")) == 1
