"""The whole retraining chain through Dagster, DVC and GTO in a throwaway deployment repo.

One real run: materialise training_set -> challenger -> evaluation (gate) -> champion; a second,
worse challenger is refused by the blocking gate; then a clean clone of the deployment repo at the
champion's tag, after ``dvc pull``, rebuilds training set, model and metrics with ``dvc repro``
and gets the registered model's predictions back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from support.retraining import build_tables
from typer.testing import CliRunner

from assets.resources import ScoreloopResource
from assets.training import challenger, champion, evaluation, training_set
from pipelines.model_bundle import MODEL_FILE, load_bundle
from pipelines.registry import decisions, list_versions, resolve_champion, version_commit
from pipelines.score import positive_probability
from pipelines.settings import PROJECT_ROOT, Settings, get_settings
from pipelines.spec import DatasetSpec
from pipelines.training_set import split_frame
from pipelines.workspace import TRAINING_SET, file_md5, lock_hash, status_clean
from scoreloop.cli import app

pytestmark = pytest.mark.slow
ASSETS = [training_set, challenger, evaluation, champion]
BIN = Path(sys.executable).parent


def _params(path: Path, **training: object) -> Path:
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["split"] = {
        "window_batches": 8,
        "validation_batches": 1,
        "holdout_batches": 2,
        "min_rows": 100,
    }
    params["training"].update({"iterations": 60, "depth": 4, **training})
    params["gate"].update({"slice_min_rows": 100})
    path.write_text(yaml.safe_dump(params))
    return path


def _run(*args: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_dagster_chain_gate_and_clean_clone_repro(
    settings: Settings,
    acs: pl.DataFrame,
    spec: DatasetSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tables = build_tables(acs, spec, tmp_path / "data", rows_per_year=2000)
    monkeypatch.setenv("SCORELOOP_TABLE_ROOT", tables)
    monkeypatch.setenv("SCORELOOP_PARAMS_PATH", str(_params(tmp_path / "params.yaml")))
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
        assert "plot_roc" in ev_meta and "plot_slices" in ev_meta
        check = first.get_asset_check_evaluations()[0]
        assert check.check_name == "gate" and check.passed
        first_champion = resolve_champion(settings)
        assert first_champion is not None and first_champion.version == "v0.0.1"
        assert (first_champion.model_dir / "card.md").read_text().startswith("# Model card")

        # A much weaker challenger: registered, refused by the blocking gate, champion unchanged.
        monkeypatch.setenv(
            "SCORELOOP_PARAMS_PATH",
            str(_params(tmp_path / "weak.yaml", iterations=2, depth=1, learning_rate=0.05)),
        )
        second = dg.materialize(
            ASSETS, resources=resources, instance=instance, raise_on_error=False
        )
        gate = second.get_asset_check_evaluations()[0]
        assert not gate.passed
        assert not second.asset_materializations_for_node("champion")
    after = resolve_champion(settings)
    assert after is not None and after.version == "v0.0.1"
    assert [v.version for v in list_versions(settings)] == ["v0.0.1", "v0.0.2"]
    refused = decisions(settings)[-1]
    assert refused["version"] == "v0.0.2" and refused["decision"] == "reject"
    assert any("min_delta" in r for r in refused["reasons"])

    # By hand: the gate still refuses v0.0.2; forcing needs a reason and is recorded; rollback.
    runner = CliRunner()
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
    assert runner.invoke(app, ["model", "rollback"]).exit_code == 0
    back = resolve_champion(settings)
    assert back is not None and back.version == "v0.0.1"

    # Clean clone at the champion's commit: dvc pull, then rebuild everything with dvc repro.
    env = {
        **dict(__import__("os").environ),
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{BIN}:{__import__('os').environ['PATH']}",
    }
    clone = tmp_path / "clone"
    commit = version_commit(settings, "v0.0.1")
    _run("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path, env=env)
    _run("git", "checkout", "-q", commit, cwd=clone, env=env)
    _run(str(BIN / "dvc"), "pull", "-q", cwd=clone, env=env)
    registered_metrics = (clone / "evaluation" / "metrics.json").read_text()
    registered_model = file_md5(clone / "model" / MODEL_FILE)
    _run(str(BIN / "dvc"), "repro", "--force", cwd=clone, env=env)
    assert (clone / "evaluation" / "metrics.json").read_text() == registered_metrics
    assert file_md5(clone / "model" / MODEL_FILE) == registered_model
    assert lock_hash(clone, "training_set", TRAINING_SET) == file_md5(clone / TRAINING_SET)
    assert json.loads(registered_metrics)["challenger"]["roc_auc"] > 0.8
    frame = pl.read_parquet(clone / TRAINING_SET)
    holdout = split_frame(frame, "holdout")
    rebuilt = positive_probability(load_bundle(clone / "model").model, holdout, spec)
    served = positive_probability(load_bundle(first_champion.model_dir).model, holdout, spec)
    assert (rebuilt == served).all()
