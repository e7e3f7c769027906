"""``dvc plots show`` of the evaluate stage's curves draws one coloured line per model.

A real evaluation of three small CatBoost models (challenger, champion, baseline) is written into
a deployment repo set up as the retraining runs set it up (``sync_inputs``: dvc.yaml and the
project's ``.dvc/plots`` templates copied in); then the real ``dvc plots show --json`` renders
roc.csv and calibration.csv. The Vega-Lite spec must colour (and group) by the ``model`` column,
with one series of points per model: with DVC's built-in templates the three models are one
line, coloured by ``rev`` only.
"""

from __future__ import annotations

import json
import subprocess

import polars as pl
import pytest

from pipelines.deployment_repo import EVALUATION_DIR, dvc_env, sync_inputs
from pipelines.evaluate import ScoredModel, evaluate_models, write_evaluation
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec
from pipelines.stages import STAGE_BODIES, STAGE_CODE
from pipelines.train import TrainingParams, fit_catboost
from pipelines.training_set import split_frame

pytestmark = pytest.mark.slow

ROLES = {"challenger": 4, "champion": 2, "baseline": 1}
CURVES = {"roc.csv": ("fpr", "tpr"), "calibration.csv": ("mean_predicted", "fraction_positive")}


def test_dvc_plots_show_draws_one_coloured_line_per_model(
    training_frame: pl.DataFrame, spec: DatasetSpec, settings: Settings
) -> None:
    train = split_frame(training_frame, "train")
    params = TrainingParams(iterations=20, depth=4)
    models = [
        ScoredModel(role, fit_catboost(train, None, spec, params, depth=depth), 0.5)
        for role, depth in ROLES.items()
    ]
    evaluation = evaluate_models(split_frame(training_frame, "holdout"), spec, models)
    repo = sync_inputs(settings, STAGE_CODE, leaves=(STAGE_BODIES,))
    write_evaluation(evaluation, repo / EVALUATION_DIR)

    proc = subprocess.run(
        ["dvc", "plots", "show", "--json"],
        cwd=repo,
        env=dvc_env(settings),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rendered = json.loads(proc.stdout)["data"]
    for name, (x, y) in CURVES.items():
        [plot] = rendered[f"{EVALUATION_DIR}/plots/{name}"]
        assert plot["type"] == "vega"
        content = plot["content"]
        encoding = content["encoding"]
        assert (encoding["x"]["field"], encoding["y"]["field"]) == (x, y)
        # colour by model (fixed colours: the PNGs' roles), one line per model and revision
        assert encoding["color"]["field"] == "model"
        assert encoding["color"]["scale"]["domain"] == list(ROLES)
        assert {d["field"] for d in encoding["detail"]} == {"model", "rev"}
        points = content["data"]["values"]
        series = {(p["model"], p["rev"]) for p in points}
        assert series == {(role, "workspace") for role in ROLES}
        written = pl.read_csv(repo / EVALUATION_DIR / "plots" / name)
        for role in ROLES:
            mine = [p for p in points if p["model"] == role]
            assert len(mine) == written.filter(pl.col("model") == role).height > 1
