"""Bring your own data, all the way: a string target and a boolean target.

Each table is made here (a few thousand rows, two informative features, a string id, a month
column) and goes through the front doors a user runs: ``dataset infer`` -> ``simulate`` ->
``ingest`` -> ``train`` (the DVC chain in the deployment repo, gate, promotion) -> ``rescore``
(every batch scored, serving snapshot published) -> ``POST /predict`` on the lookup service. The
batch score of an entity and ``/predict``'s score of its record must be the same, with the same
decision and reasons. CatBoost is kept small by a params copy (40 iterations, depth 4), which also
sets ``scoring.top_k: 2`` so the test sees the snapshot carry batch scoring's top_k to /predict.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml
from pydantic import SecretStr
from starlette.exceptions import StarletteDeprecationWarning
from typer.testing import CliRunner

from pipelines.model_bundle import load_metadata
from pipelines.registry import resolve_champion
from pipelines.scores_table import scores_uri
from pipelines.settings import PROJECT_ROOT, get_settings
from pipelines.snapshot import read_current
from pipelines.spec import load_spec
from scoreloop.cli import app
from serving.config import ServingSettings
from serving.main import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

pytestmark = pytest.mark.slow

ROWS = 4000
MONTHS = [f"2024-{m:02d}" for m in range(1, 9)]
TOP_K = 2
TOKEN = "byod-admin-token-0123456789abcdef"


def churn_table(target: str) -> pl.DataFrame:
    """Synthetic subscriptions: churn falls with tenure and depends on the plan."""
    rng = np.random.default_rng(11)
    tenure = rng.uniform(0, 60, ROWS).round(1)
    plan = rng.choice(["basic", "plus", "pro"], ROWS)
    effect = np.select([plan == "basic", plan == "plus"], [1.2, 0.0], -1.2)
    churned = rng.random(ROWS) < 1 / (1 + np.exp(-(1.5 - 0.08 * tenure + effect)))
    frame = pl.DataFrame(
        {
            "account": [f"A{i:05d}" for i in range(ROWS)],
            "month": [MONTHS[i * len(MONTHS) // ROWS] for i in range(ROWS)],
            "tenure": tenure,
            "plan": plan,
            "churned": churned,
        }
    )
    if target == "string":
        return frame.with_columns(
            pl.when(pl.col("churned")).then(pl.lit("yes")).otherwise(pl.lit("no")).alias("churned")
        )
    return frame


def small_params(path: Path) -> Path:
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["simulate"].update({"batches_per_period": 1, "label_lag": 0})
    params["split"] = {
        "window_batches": len(MONTHS),
        "validation_batches": 1,
        "holdout_batches": 2,
        "min_rows": 100,
    }
    params["training"].update({"iterations": 40, "depth": 4, "baseline_iterations": 10})
    params["gate"].update({"absolute_floor": 0.6, "slice_min_rows": 100})
    params["scoring"].update({"top_k": TOP_K, "thread_count": 2})
    path.write_text(yaml.safe_dump(params))
    return path


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"scoreloop {' '.join(args)}:\n{result.output}"
    return result.output


@pytest.mark.parametrize(
    ("target", "labels"), [("string", ("no", "yes")), ("boolean", (False, True))]
)
def test_own_table_trains_scores_and_serves_the_same_score(
    state: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    labels: tuple[Any, Any],
) -> None:
    source = tmp_path / "churn.parquet"
    table = churn_table(target)
    table.write_parquet(source)
    spec_path = tmp_path / "churn.spec.yaml"
    invoke(
        "dataset", "infer", str(source), "--target", "churned", "--id", "account",
        "--time", "month", "--out", str(spec_path),
    )  # fmt: skip
    spec = load_spec(spec_path)
    assert (spec.negative_label, spec.positive_label) == labels
    monkeypatch.setenv("SCORELOOP_SPEC_PATH", str(spec_path))
    monkeypatch.setenv("SCORELOOP_PARAMS_PATH", str(small_params(tmp_path / "params.yaml")))
    settings = get_settings()

    invoke("simulate", "--source", str(source))
    invoke("ingest", str(settings.landing))
    invoke("train")
    champion = resolve_champion(settings)
    assert champion is not None and champion.version == "v0.0.1"
    classes = load_metadata(champion.model_dir).classes
    assert (classes.negative_label, classes.positive_label, classes.positive_class) == (*labels, 1)
    assert type(classes.positive_label) is type(labels[1])
    invoke("rescore")

    manifest = read_current(settings.snapshots)
    assert manifest is not None and manifest.model_version == "v0.0.1"
    assert manifest.top_k == TOP_K
    batch = pl.read_delta(scores_uri(settings))
    assert batch.height == ROWS and batch["batch_id"].n_unique() == len(MONTHS)
    # The score is P(churned = positive label): higher for basic plans than for pro plans.
    joined = batch.join(table, left_on="entity_id", right_on="account")
    by_plan = dict(joined.group_by("plan").agg(pl.col("score").mean()).iter_rows())
    assert by_plan["basic"] > by_plan["plus"] > by_plan["pro"]

    entities = joined.sort("entity_id").gather_every(ROWS // 6)
    serving = ServingSettings(admin_token=SecretStr(TOKEN), reload_interval_s=0)
    with TestClient(create_app(serving)) as client:
        for row in entities.iter_rows(named=True):
            record = {"account": row["entity_id"], "tenure": row["tenure"], "plan": row["plan"]}
            response = client.post("/predict", json=record)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["entity_id"] == row["entity_id"]
            assert body["score"] == pytest.approx(row["score"], abs=1e-9)
            assert body["decision"] is row["decision"]
            assert body["threshold"] == row["threshold"]
            assert len(body["reasons"]) == TOP_K
            assert [(r["feature"], r["value"]) for r in body["reasons"]] == [
                (r["feature"], r["value"]) for r in row["reasons"]
            ]
            assert [r["contribution"] for r in body["reasons"]] == pytest.approx(
                [r["contribution"] for r in row["reasons"]], abs=1e-9
            )
            looked_up = client.get(f"/scores/{row['entity_id']}").json()
            assert looked_up["score"] == pytest.approx(body["score"], abs=1e-9)
