"""Every endpoint and error of the lookup service, in process (TestClient, overrides)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient
from support.scoring import fit_model
from support.serving import TOKEN, Scrape

from pipelines.evaluate import ScoredModel, evaluate_models
from pipelines.features import prepare_features
from pipelines.model_bundle import HOLDOUT_FILE, holdout_evaluation, load_bundle
from pipelines.score import score_frame
from pipelines.settings import BUNDLED_SPEC
from pipelines.snapshot import publish_snapshot
from pipelines.spec import DatasetSpec
from pipelines.training_set import LABEL_COLUMN
from serving.config import ConfigError, ServingSettings, check_admin_token
from serving.deps import get_settings, get_snapshot
from serving.main import create_app
from serving.routes import scores
from serving.schemas import MAX_LOOKUP_IDS


def _record(row: dict[str, Any], spec: DatasetSpec) -> dict[str, Any]:
    return {name: row[name] for name in spec.feature_names}


def test_get_score_returns_the_snapshot_row(client: TestClient, scores_v1: pl.DataFrame) -> None:
    expected = scores_v1.row(7, named=True)
    response = client.get(f"/scores/{expected['entity_id']}")
    assert response.status_code == 200
    body = response.json()
    assert body["entity_id"] == expected["entity_id"]
    assert body["score"] == pytest.approx(expected["score"], abs=0)
    assert body["decision"] is expected["decision"]
    assert body["threshold"] == 0.5
    assert (body["model_name"], body["model_version"]) == ("employment", "v0.0.1")
    assert body["batch_id"] == "2015-01"
    assert body["scored_at"].startswith("2026-02-01T00:00:00")
    assert body["reasons"] == expected["reasons"]
    assert len(body["reasons"]) == 3


def test_unknown_id_is_404_with_a_clear_body(client: TestClient) -> None:
    response = client.get("/scores/999999999")
    assert response.status_code == 404
    body = response.json()
    assert body["entity_id"] == 999999999
    assert "has no score in snapshot" in body["detail"]
    assert body["snapshot_id"]
    # Outside int64: still a clean 404, not an overflow.
    assert client.get(f"/scores/{2**70}").status_code == 404


@pytest.mark.parametrize("bad", ["abc", "1.5", "1e3", "%20"])
def test_malformed_id_is_422(client: TestClient, bad: str) -> None:
    response = client.get(f"/scores/{bad}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "entity_id"]


def test_fast_lookup_path_answers_as_fastapi_does(
    client: TestClient,
    serving_settings: ServingSettings,
    scores_v1: pl.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GET /scores/{id} answers well-formed ids without FastAPI's handler: same answers."""
    known = str(scores_v1["entity_id"][3])
    raws = [known, "0", "123456789012345678", "0" + known, "+" + known, "-" + known, "1_000",
            " 7", "%C2%B2", "9" * 19, "9" * 25, "1.0"]  # fmt: skip
    fast = {raw: client.get(f"/scores/{raw}") for raw in raws}
    assert fast[known].status_code == 200 and fast["0"].status_code == 404
    monkeypatch.setattr(scores._IntLookupRoute, "parse", staticmethod(lambda raw: None))
    with TestClient(create_app(serving_settings)) as standard_client:
        for raw in raws:
            standard = standard_client.get(f"/scores/{raw}")
            assert (fast[raw].status_code, fast[raw].json()) == (
                standard.status_code,
                standard.json(),
            ), raw


def test_lookup_many_returns_found_and_missing(client: TestClient, scores_v1: pl.DataFrame) -> None:
    known = scores_v1["entity_id"].head(5).to_list()
    response = client.post("/scores/lookup", json={"ids": [*known, -5, known[0]]})
    assert response.status_code == 200
    body = response.json()
    assert sorted(r["entity_id"] for r in body["found"]) == sorted(known)
    assert body["missing"] == [-5]
    assert body["model_version"] == "v0.0.1"


def test_lookup_is_bounded_and_typed(client: TestClient) -> None:
    assert client.post("/scores/lookup", json={"ids": []}).status_code == 422
    too_many = list(range(MAX_LOOKUP_IDS + 1))
    assert client.post("/scores/lookup", json={"ids": too_many}).status_code == 422
    assert client.post("/scores/lookup", json={"ids": ["x"]}).status_code == 422
    assert (
        client.post("/scores/lookup", json={"ids": list(range(MAX_LOOKUP_IDS))}).status_code == 200
    )


def test_predict_gives_the_batch_score_for_the_same_record(
    client: TestClient, scored_rows: pl.DataFrame, scores_v1: pl.DataFrame, spec: DatasetSpec
) -> None:
    row = scored_rows.row(11, named=True)
    batch = scores_v1.filter(pl.col("entity_id") == row["id"]).row(0, named=True)
    response = client.post("/predict", json={**_record(row, spec), "id": row["id"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["score"] == pytest.approx(batch["score"], rel=1e-12)
    assert body["decision"] is batch["decision"]
    assert body["reasons"] == [
        {**r, "contribution": pytest.approx(r["contribution"], rel=1e-9)} for r in batch["reasons"]
    ]
    assert body["expected_value"] == pytest.approx(batch["expected_value"], rel=1e-9)
    assert body["model_version"] == "v0.0.1"
    assert body["entity_id"] == row["id"]


def test_predict_matches_pipelines_scoring(
    client: TestClient, scored_rows: pl.DataFrame, bundle_v1: Path, spec: DatasetSpec
) -> None:
    """Same record, same score as the one scorer batch scoring uses (pipelines.score)."""
    rows = scored_rows.head(3)
    batch = score_frame(load_bundle(bundle_v1), rows, spec, model_version="v0.0.1")
    for row, expected in zip(rows.iter_rows(named=True), batch.iter_rows(named=True), strict=True):
        body = client.post("/predict", json=_record(row, spec)).json()
        assert body["score"] == pytest.approx(expected["score"], rel=1e-12)
        assert [r["feature"] for r in body["reasons"]] == [
            r["feature"] for r in expected["reasons"]
        ]


def test_predict_returns_the_top_k_the_snapshot_was_scored_with(
    client: TestClient,
    scored_rows: pl.DataFrame,
    bundle_v1: Path,
    snapshots: Path,
    spec: DatasetSpec,
) -> None:
    """One knob: batch scoring's ``scoring.top_k`` travels in the manifest to /predict."""
    rows = scored_rows.head(2)
    scored = score_frame(load_bundle(bundle_v1), rows, spec, top_k=5).with_columns(
        pl.lit("2015-01").alias("batch_id"),
        pl.lit(datetime(2026, 2, 1, tzinfo=UTC)).alias("scored_at"),
        pl.lit("md5-test").alias("data_version"),
    )
    manifest = publish_snapshot(scored, bundle_v1, BUNDLED_SPEC, snapshots, top_k=5)
    assert manifest.top_k == 5
    reload = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reload.json()["result"] == "swapped"
    row = rows.row(0, named=True)
    body = client.post("/predict", json=_record(row, spec)).json()
    assert [r["feature"] for r in body["reasons"]] == [
        r["feature"] for r in scored["reasons"][0].to_list()
    ]
    assert len(body["reasons"]) == 5


def test_predict_names_field_and_rule(
    client: TestClient, scored_rows: pl.DataFrame, spec: DatasetSpec
) -> None:
    record = _record(scored_rows.row(0, named=True), spec)
    cases = {
        "AGEP": (-3.5, "min(0)"),
        "SCHL": ("99", "allowed_values"),
    }
    for field, (value, rule) in cases.items():
        response = client.post("/predict", json={**record, field: value})
        assert response.status_code == 422
        body = response.json()
        assert {"field": field, "rule": rule, "value": str(value)} in [
            {k: e[k] for k in ("field", "rule", "value")} for e in body["errors"]
        ]
        assert field in body["detail"]
    missing = {k: v for k, v in record.items() if k != "SEX"}
    body = client.post("/predict", json=missing).json()
    assert [(e["field"], e["rule"]) for e in body["errors"]] == [("SEX", "not_nullable")]
    typo = client.post("/predict", json={**record, "AGE": 3}).json()
    assert ("AGE", "unknown_field") in [(e["field"], e["rule"]) for e in typo["errors"]]
    wrong_type = client.post("/predict", json={**record, "AGEP": "old"})
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"][0]["field"] == "AGEP"
    nested = client.post("/predict", json={**record, "AGEP": [1]})
    assert nested.json()["errors"] == [{"field": "AGEP", "rule": "scalar_value", "value": "[1]"}]
    assert client.post("/predict", json=[record]).status_code == 422


def test_model_endpoint(client: TestClient) -> None:
    body = client.get("/model").json()
    assert (body["name"], body["version"]) == ("employment", "v0.0.1")
    assert body["metrics"] == {"roc_auc": pytest.approx(0.81)}
    assert body["card_summary"] == "A test model, seed 1."
    assert body["entities"] == 400
    assert body["threshold_policy"] == "fixed 0.5 (test)"
    assert body["card"] == "# employment v0.0.1\n\nA test model, seed 1.\n"
    assert body["holdout"] is None  # this bundle was never evaluated on a holdout


def test_model_endpoint_reports_the_holdout_evaluation_as_numbers(
    client: TestClient,
    bundle_v1: Path,
    scores_v1: pl.DataFrame,
    snapshots: Path,
    acs: pl.DataFrame,
    spec: DatasetSpec,
    tmp_path: Path,
) -> None:
    """A bundle fetched from the registry carries holdout.json (its part of the recorded
    evaluation): /model answers it as numbers, beside the models it was judged against."""
    bundle = load_bundle(bundle_v1)
    rows = acs.slice(90_000, 600).with_columns(
        (pl.col(spec.target.name) == spec.positive_label).cast(pl.Int8).alias(LABEL_COLUMN)
    )
    baseline = fit_model(acs.slice(0, 500), spec, seed=7)
    evaluation = evaluate_models(
        rows,
        spec,
        [
            ScoredModel("challenger", bundle.model, bundle.metadata.threshold, "v0.0.1"),
            ScoredModel("baseline", baseline, bundle.metadata.threshold),
        ],
    )
    evaluated = tmp_path / "bundle"
    shutil.copytree(bundle_v1, evaluated)
    (evaluated / HOLDOUT_FILE).write_text(holdout_evaluation(evaluation).model_dump_json())
    publish_snapshot(scores_v1, evaluated, BUNDLED_SPEC, snapshots)
    reload = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reload.json()["result"] == "swapped"

    holdout = client.get("/model").json()["holdout"]
    overall = evaluation["models"]["challenger"]["overall"]
    assert holdout["rows"] == 600
    for name in ("roc_auc", "pr_auc", "log_loss", "brier", "f1", "precision", "recall", "tp"):
        assert holdout["metrics"][name] == overall[name]
        assert isinstance(holdout["metrics"][name], int | float)
    assert 0.5 < holdout["metrics"]["roc_auc"] <= 1.0
    [other] = holdout["compared_with"]
    assert (other["role"], other["version"]) == ("baseline", None)
    assert other["metrics"]["roc_auc"] == evaluation["models"]["baseline"]["overall"]["roc_auc"]
    assert set(holdout["slices"]) == set(spec.slices)
    assert sum(s["rows"] for s in holdout["slices"]["SEX"].values()) == 600


def test_health_ready_and_metrics(client: TestClient, scores_v1: pl.DataFrame) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == "v0.0.1"
    client.get(f"/scores/{scores_v1['entity_id'][0]}")
    client.get("/scores/123456789")
    text = client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain; version=")
    scrape = Scrape(text.text)
    route = {"method": "GET", "route": "/scores/{entity_id}"}
    assert scrape.value("scoreloop_http_requests_total", **route, status="200") == 1
    assert scrape.value("scoreloop_http_requests_total", **route, status="404") == 1
    assert scrape.value("scoreloop_http_request_duration_seconds_count", **route, status="200") == 1
    info = scrape.labels("scoreloop_snapshot_info")
    assert len(info) == 1 and info[0]["model_version"] == "v0.0.1"
    assert scrape.value("scoreloop_snapshot_reloads_total", result="swapped") == 1


def test_no_snapshot_means_not_ready_and_503(state: Path) -> None:
    settings = ServingSettings(admin_token=SecretStr(TOKEN), reload_interval_s=0)
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        response = client.get("/scores/1")
        assert response.status_code == 503
        assert "no snapshot loaded" in response.json()["detail"]


def test_snapshot_dependency_override(client: TestClient) -> None:
    """Routes other than the lookups take the snapshot through SnapshotDep: overriding it
    changes their answers (the /scores routes read the store from the app state directly)."""
    current = client.app.state.store.current  # type: ignore[attr-defined]

    def no_snapshot() -> Any:
        from fastapi import HTTPException

        raise HTTPException(503, detail="maintenance")

    client.app.dependency_overrides[get_snapshot] = no_snapshot  # type: ignore[attr-defined]
    try:
        assert client.get("/model").json() == {"detail": "maintenance"}
    finally:
        client.app.dependency_overrides.pop(get_snapshot)  # type: ignore[attr-defined]
    assert client.get("/model").json()["snapshot_id"] == current.snapshot_id


def test_admin_reload_needs_the_bearer_token(
    client: TestClient, bundle_v2: Path, scores_v2: pl.DataFrame, snapshots: Path
) -> None:
    assert client.post("/admin/reload").status_code == 401
    wrong = client.post("/admin/reload", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    publish_snapshot(scores_v2, bundle_v2, BUNDLED_SPEC, snapshots)
    ok = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert ok.json()["result"] == "swapped"
    assert client.get("/model").json()["version"] == "v0.0.2"


def test_admin_token_override_through_settings_dependency(client: TestClient) -> None:
    other = ServingSettings(
        admin_token=SecretStr("another-token-abcdefghijkl"), reload_interval_s=0
    )
    client.app.dependency_overrides[get_settings] = lambda: other  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/admin/reload", headers=headers).status_code == 401
    headers = {"Authorization": "Bearer another-token-abcdefghijkl"}
    assert client.post("/admin/reload", headers=headers).json()["result"] == "unchanged"


@pytest.mark.parametrize("token", [None, "", "changeme", "short-token"])
def test_refuses_to_start_with_missing_or_placeholder_token(state: Path, token: str | None) -> None:
    settings = ServingSettings(
        admin_token=SecretStr(token) if token is not None else None, reload_interval_s=0
    )
    with pytest.raises(ConfigError, match="SCORELOOP_ADMIN_TOKEN"):
        check_admin_token(settings)
    with pytest.raises(ConfigError), TestClient(create_app(settings)):
        pass
    check_admin_token(settings.model_copy(update={"dev_mode": True}))


def test_predict_score_is_the_model_probability(
    client: TestClient, scored_rows: pl.DataFrame, bundle_v1: Path, spec: DatasetSpec
) -> None:
    row = scored_rows.slice(20, 1)
    proba = load_bundle(bundle_v1).model.predict_proba(prepare_features(row, spec))[0, 1]
    body = client.post("/predict", json=_record(row.row(0, named=True), spec)).json()
    assert body["score"] == pytest.approx(float(np.float64(proba)), rel=1e-12)


def test_openapi_documents_every_route(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {
        "/scores/{entity_id}",
        "/scores/lookup",
        "/predict",
        "/explain/{entity_id}",
        "/model",
        "/healthz",
        "/readyz",
        "/metrics",
        "/admin/reload",
    }
    param = schema["paths"]["/scores/{entity_id}"]["get"]["parameters"][0]
    assert param["schema"]["type"] == "integer"
    assert client.get("/docs").status_code == 200
