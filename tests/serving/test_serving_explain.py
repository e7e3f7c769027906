"""``GET /explain/{entity_id}?method=shap|lime`` on a real ``scoreloop serve`` process over a
snapshot published by the real rescore: the features are the ones the served score came from,
SHAP adds up to the served score, LIME is deterministic for a seed, the CLI (``scoreloop explain
--json``) gives the same answer, unknown ids answer 404 and bad methods 422."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient
from support.monitoring import TRAIN_ROWS, ingest_records, make_champion
from support.scoring import promote_bundle
from support.serving import TOKEN
from typer.testing import CliRunner

from pipelines.attribution import explanation_agreement
from pipelines.model_bundle import CARD_FILE, METADATA_FILE, load_bundle
from pipelines.model_card import render_card
from pipelines.rescore import rescore_population
from pipelines.settings import Settings
from pipelines.snapshot import FEATURES_FILE, load_snapshot, publish_snapshot, read_current
from pipelines.spec import DatasetSpec
from scoreloop.cli import app
from scoreloop.serve_process import ServiceProcess
from serving.config import ServingSettings
from serving.main import create_app

ROWS = 150


@pytest.fixture
def served(settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path) -> Path:
    """A champion, two ingested batches, rescored and published: returns its bundle dir."""
    champion = make_champion(acs, spec, tmp_path / "bundle")
    promote_bundle(settings, champion.ref.model_dir)
    ingest_records(settings, acs, spec, "2015-01", start=TRAIN_ROWS, rows=ROWS)
    ingest_records(settings, acs, spec, "2015-02", start=TRAIN_ROWS + ROWS, rows=ROWS)
    result = rescore_population()
    assert result.snapshot is not None and result.snapshot.row_count == 2 * ROWS
    assert FEATURES_FILE in result.snapshot.files
    return champion.ref.model_dir


def _cli(entity: object, method: str, seed: int = 0) -> dict[str, Any]:
    args = ["explain", str(entity), "--method", method, "--seed", str(seed), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.output)
    return payload


def _without_service_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("snapshot_id", "seed")}


@pytest.mark.slow
def test_explain_on_a_real_server_agrees_with_the_cli(
    served: Path, settings: Settings, state: Path, spec: DatasetSpec, tmp_path: Path
) -> None:
    manifest = read_current(settings.snapshots)
    assert manifest is not None
    loaded = load_snapshot(settings.snapshots, manifest)
    entities = loaded.scores.column("entity_id").to_pylist()
    first, last = entities[0], entities[-1]
    env = {"SCORELOOP_STATE_ROOT": str(state), "SCORELOOP_ADMIN_TOKEN": TOKEN}
    with (
        ServiceProcess(env, log=tmp_path / "server.log", ready_timeout=60) as service,
        httpx.Client(base_url=service.base_url, timeout=60) as http,
    ):
        for entity in (first, last):
            row = http.get(f"/scores/{entity}").json()
            shap = http.get(f"/explain/{entity}", params={"method": "shap"})
            assert shap.status_code == 200, shap.text
            body = shap.json()
            assert body["entity_id"] == entity and body["method"] == "shap"
            assert body["snapshot_id"] == manifest.snapshot_id
            assert (body["model_version"], body["batch_id"]) == ("v0.0.1", row["batch_id"])
            assert {a["feature"] for a in body["attributions"]} == set(spec.feature_names)
            sizes = [abs(a["attribution"]) for a in body["attributions"]]
            assert sizes == sorted(sizes, reverse=True)
            # The features behind the explanation are the served score's: the same score, and
            # SHAP plus the expected value adds up to its log-odds.
            assert body["score"] == pytest.approx(row["score"], abs=1e-6)
            total = row["expected_value"] + sum(a["attribution"] for a in body["attributions"])
            assert total == pytest.approx(math.log(row["score"] / (1 - row["score"])), abs=1e-4)
            assert _without_service_fields(body) == _cli(entity, "shap")
            # The reasons served with the score are SHAP's top features of the same row.
            top = [a["feature"] for a in body["attributions"][: len(row["reasons"])]]
            assert top == [r["feature"] for r in row["reasons"]]

        lime = http.get(f"/explain/{first}", params={"method": "lime", "seed": 3}).json()
        again = http.get(f"/explain/{first}", params={"method": "lime", "seed": 3}).json()
        other = http.get(f"/explain/{first}", params={"method": "lime", "seed": 4}).json()
        assert lime == again and lime["seed"] == 3
        assert lime["attributions"] != other["attributions"]
        assert lime["score"] == pytest.approx(row_score(http, first), abs=1e-6)
        assert _without_service_fields(lime) == _cli(first, "lime", seed=3)
        default = http.get(f"/explain/{first}", params={"method": "lime"}).json()
        assert default["seed"] == 0 and _without_service_fields(default) == _cli(first, "lime")

        unknown = http.get("/explain/999999999", params={"method": "shap"})
        assert unknown.status_code == 404 and "999999999" in unknown.json()["detail"]
        assert http.get("/explain/999999999", params={"method": "lime"}).status_code == 404
        for bad in ({"method": "anchor"}, {"method": ""}, {"method": "lime", "seed": -1}):
            assert http.get(f"/explain/{first}", params=bad).status_code == 422
        assert http.get("/explain/not-a-number").status_code == 422
        assert http.get(f"/explain/{first}").json()["method"] == "shap"  # the default

    runner = CliRunner()
    missing = runner.invoke(app, ["explain", "999999999", "--method", "lime"])
    assert missing.exit_code == 1 and "in no validated batch" in missing.output
    assert runner.invoke(app, ["explain", str(first), "--method", "anchor"]).exit_code == 2


def row_score(http: httpx.Client, entity: object) -> float:
    return float(http.get(f"/scores/{entity}").json()["score"])


def test_a_snapshot_without_features_answers_409_and_model_shows_the_agreement(
    served: Path, settings: Settings, spec: DatasetSpec, acs: pl.DataFrame
) -> None:
    manifest = read_current(settings.snapshots)
    assert manifest is not None
    loaded = load_snapshot(settings.snapshots, manifest)
    scores = pl.from_arrow(loaded.scores)
    assert isinstance(scores, pl.DataFrame)
    # The model as training writes it: with its SHAP/LIME agreement in metadata.json and card.
    bundle = load_bundle(served)
    measured = explanation_agreement(
        bundle.model, bundle.metadata, acs.slice(TRAIN_ROWS, ROWS), spec, sample_rows=5
    ) | {"split": "holdout"}
    metadata = bundle.metadata.model_copy(update={"explanation_agreement": measured})
    (served / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))
    (served / CARD_FILE).write_text(render_card(metadata))
    bare = publish_snapshot(
        scores,
        served,
        settings.spec_path,
        settings.snapshots,
    )
    assert FEATURES_FILE not in bare.files
    entity = scores["entity_id"][0]
    serving = ServingSettings(admin_token=SecretStr(TOKEN), reload_interval_s=0)
    with TestClient(create_app(serving)) as client:
        assert client.get("/readyz").json()["snapshot_id"] == bare.snapshot_id
        assert client.get(f"/scores/{entity}").status_code == 200
        answer = client.get(f"/explain/{entity}", params={"method": "shap"})
        assert answer.status_code == 409
        assert "published without the features" in answer.json()["detail"]
        model = client.get("/model").json()
        assert model["explanation_agreement"] == measured
        assert measured["rows"] == 5 and 0 <= measured["top_k_overlap"] <= 1
