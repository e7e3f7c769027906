"""The retraining assets through Dagster, DVC and GTO in a throwaway deployment repo.

One real run materialises training_set -> challenger -> evaluation (gate) -> champion; a second,
much weaker challenger is judged once, refused by the gate (a successful run, a WARN check, the
champion untouched: an observation, no materialisation);
then the manual paths (promote through the gate, force with a reason, rollback) on the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from support.retraining import build_tables, small_params
from typer.testing import CliRunner

from assets.resources import ScoreloopResource
from assets.training import challenger, champion, evaluation, training_set
from pipelines.deployment_repo import TRAINING_SET, lock_hash, status_clean
from pipelines.registry import decisions, list_versions, resolve_champion
from pipelines.settings import Settings, get_settings
from pipelines.spec import DatasetSpec
from scoreloop.cli import app

pytestmark = pytest.mark.slow
ASSETS = [training_set, challenger, evaluation, champion]


def recorded_checks(settings: Settings) -> list[dict[str, Any]]:
    """The gate's rules as the last decision record holds them."""
    return list(decisions(settings)[-1]["checks"])


def test_retraining_assets_gate_and_manual_promotion(
    settings: Settings,
    acs: pl.DataFrame,
    spec: DatasetSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tables = build_tables(acs, spec, tmp_path / "data", rows_per_year=2000)
    monkeypatch.setenv("SCORELOOP_TABLE_ROOT", tables)
    monkeypatch.setenv("SCORELOOP_PARAMS_PATH", str(small_params(tmp_path / "params.yaml")))
    settings = get_settings()
    resources = {"scoreloop": ScoreloopResource()}

    with dg.DagsterInstance.ephemeral() as instance:
        first = dg.materialize(ASSETS, resources=resources, instance=instance)
        assert first.success
        repo = settings.registry
        # The DVC hash of each output is the asset's data version; the repo is clean and pushed.
        ts_event = first.asset_materializations_for_node("training_set")[0]
        assert ts_event.tags["dagster/data_version"] == lock_hash(
            repo, "training_set", TRAINING_SET
        )
        ch_event = first.asset_materializations_for_node("challenger")[0]
        assert ch_event.tags["dagster/data_version"] == lock_hash(repo, "train", "model")
        assert status_clean(repo)
        ev_meta = first.asset_materializations_for_node("evaluation")[0].metadata
        plots = {"plot_roc", "plot_pr", "plot_calibration", "plot_confusion", "plot_threshold"}
        assert plots | {"plot_slices"} <= set(ev_meta)
        comparison = ev_meta["comparison"].value
        assert [c.name for c in comparison.schema.columns] == [
            "metric",
            "challenger",
            "baseline",
            "delta vs baseline",
        ]  # no champion yet: the challenger is compared with the baseline
        assert [r.data["metric"] for r in comparison.records][:3] == [
            "version",
            "roc_auc",
            "pr_auc",
        ]
        check = first.get_asset_check_evaluations()[0]
        assert check.check_name == "gate" and check.passed
        first_champion = resolve_champion(settings)
        assert first_champion is not None and first_champion.version == "v0.0.1"
        assert (first_champion.model_dir / "card.md").read_text().startswith("# Model card")
        # One run, one decision: the champion asset concluded the judgement evaluation recorded.
        assert [d["action"] for d in decisions(settings)] == ["promote"]
        champion_meta = first.asset_materializations_for_node("champion")[0].metadata
        assert champion_meta["decision_file"].value.endswith("-promote.json")
        assert champion_meta["decision"].value == "promote"

        # A much weaker challenger: registered, refused by the blocking gate, champion unchanged.
        monkeypatch.setenv(
            "SCORELOOP_PARAMS_PATH",
            str(small_params(tmp_path / "weak.yaml", iterations=2, depth=1, learning_rate=0.05)),
        )
        second = dg.materialize(
            ASSETS, resources=resources, instance=instance, raise_on_error=False
        )
        # a refusal is an expected outcome: the run succeeds, nothing reads as failed
        assert second.success
        run = instance.get_run_by_id(second.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        gate = second.get_asset_check_evaluations()[0]
        assert not gate.passed
        assert gate.severity == dg.AssetCheckSeverity.WARN
        assert gate.metadata["decision"].value == "refused"
        assert gate.description == "v0.0.2 refused, v0.0.1 stays champion"
        ev_second = second.asset_materializations_for_node("evaluation")[0].metadata
        assert ev_second["decision"].value == "refused"
        rows = {r.data["metric"]: r.data for r in ev_second["comparison"].value.records}
        assert rows["version"]["champion"] == "v0.0.1" and rows["version"]["challenger"] == "v0.0.2"
        assert rows["roc_auc"]["delta vs champion"].startswith("-")  # the weak one is worse
        assert not second.asset_materializations_for_node("champion")
        # shadow-scored beside the champion on the newest batch: reported, not a gate rule
        shadow = {
            r.data["shadow on the newest batch"]: r.data["value"]
            for r in ev_second["shadow"].value.records
        }
        assert int(shadow["rows"]) > 0 and 0 <= float(shadow["decision agreement"]) <= 1
        assert "shadow" in gate.metadata
        assert "shadow" not in {c["name"] for c in recorded_checks(settings)}
        latest = instance.get_latest_materialization_event(dg.AssetKey("champion"))
        assert latest is not None and latest.run_id == first.run_id
        [observed] = [
            e
            for e in second.all_events
            if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
            and e.asset_key == dg.AssetKey("champion")
        ]
        assert (
            observed.asset_observation_data.asset_observation.metadata["outcome"].value
            == "v0.0.2 refused, v0.0.1 stays champion"
        )
    after = resolve_champion(settings)
    assert after is not None and after.version == "v0.0.1"
    assert [v.version for v in list_versions(settings)] == ["v0.0.1", "v0.0.2"]
    assert [d["action"] for d in decisions(settings)] == ["promote", "gate"]
    refused = decisions(settings)[-1]
    assert refused["version"] == "v0.0.2" and refused["decision"] == "reject"
    assert any("min_delta" in r for r in refused["reasons"])

    runner = CliRunner()
    # `model list` names the refused version and why (never a blank stage)
    listed = runner.invoke(app, ["model", "list"])
    assert listed.exit_code == 0, listed.output
    rows = {
        line.split("│")[1].strip(): line for line in listed.output.splitlines() if "│ v0" in line
    }
    assert "prod (champion)" in rows["v0.0.1"] and "refused" in rows["v0.0.2"]
    assert "min_delta" in listed.output
    # `gate` shows the recorded decision; `gate --apply` returns the refusal already concluded.
    shown_gate = runner.invoke(app, ["gate"])
    assert shown_gate.exit_code == 1 and "reject" in shown_gate.output
    applied = runner.invoke(app, ["gate", "--apply"])
    assert applied.exit_code == 1 and "registered v0.0.2" in applied.output
    assert len(decisions(settings)) == 2

    # By hand: the gate still refuses v0.0.2; forcing needs a reason and is recorded; rollback.
    refused_cli = runner.invoke(app, ["model", "promote", "v0.0.2"])
    assert refused_cli.exit_code == 1, refused_cli.output
    assert "reject" in refused_cli.output
    forced = runner.invoke(app, ["model", "promote", "v0.0.2", "--force", "--reason", "drill"])
    assert forced.exit_code == 0, forced.output
    now = resolve_champion(settings)
    assert now is not None and now.version == "v0.0.2"
    assert decisions(settings)[-1]["forced"] and decisions(settings)[-1]["force_reason"] == "drill"
    shown = runner.invoke(app, ["model", "show", "v0.0.2"])
    assert shown.exit_code == 0 and "forced: drill" in shown.output
    # the card is rendered markdown, not its source
    assert "Model card" in shown.output and "# Model card" not in shown.output
    assert runner.invoke(app, ["model", "rollback"]).exit_code == 0
    back = resolve_champion(settings)
    assert back is not None and back.version == "v0.0.1"
