"""``scoreloop explain ENTITY_ID --method lime|shap`` with a real champion: SHAP adds up to the
model's log-odds, LIME is deterministic for a seed and agrees with SHAP on the top features,
unknown ids are a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.monitoring import TRAIN_ROWS, ingest_records, make_champion
from support.scoring import promote_bundle
from typer.testing import CliRunner

from pipelines.explain_entity import ExplainError, explain_entity
from pipelines.lime import agreement
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec
from scoreloop.cli import app


@pytest.fixture
def champion_with_batch(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> pl.DataFrame:
    champion = make_champion(acs, spec, tmp_path / "bundle")
    promote_bundle(settings, champion.ref.model_dir)
    ingest_records(settings, acs, spec, "2015-01", start=TRAIN_ROWS, rows=200)
    return acs.slice(TRAIN_ROWS, 200)


def test_shap_and_lime_of_an_entity(
    settings: Settings, champion_with_batch: pl.DataFrame, spec: DatasetSpec
) -> None:
    entity = int(champion_with_batch["id"][0])
    shap = explain_entity(entity, "shap", settings=settings)
    assert shap.batch_id == "2015-01" and shap.model_version == "v0.0.1"
    assert {f for f, _, _ in shap.attributions} == set(spec.feature_names)
    log_odds = np.log(shap.score / (1 - shap.score))
    expected = log_odds - sum(a for _, _, a in shap.attributions)  # the expected value
    assert abs(expected) < 5  # contributions plus the base value are the log-odds

    lime = explain_entity(entity, "lime", settings=settings, seed=1, samples=2000)
    again = explain_entity(entity, "lime", settings=settings, seed=1, samples=2000)
    assert lime.to_dict() == again.to_dict()
    assert lime.score == shap.score
    order = spec.feature_names
    shap_vec = np.array([[dict((f, a) for f, _, a in shap.attributions)[n] for n in order]])
    lime_vec = np.array([[dict((f, a) for f, _, a in lime.attributions)[n] for n in order]])
    got = agreement(shap_vec, lime_vec, top_k=3)
    assert got.top_k_overlap >= 1 / 3  # the surrogate finds at least one of SHAP's top three

    with pytest.raises(ExplainError, match="in no validated batch"):
        explain_entity(-1, "shap", settings=settings)
    with pytest.raises(ExplainError, match="in no validated batch"):
        explain_entity("not-a-number", "lime", settings=settings)


def test_explain_cli(settings: Settings, champion_with_batch: pl.DataFrame) -> None:
    entity = str(champion_with_batch["id"][1])
    runner = CliRunner()
    result = runner.invoke(app, ["explain", entity, "--method", "lime", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["method"] == "lime" and str(payload["entity_id"]) == entity
    assert len(payload["attributions"]) == 16
    table = runner.invoke(app, ["explain", entity])
    assert table.exit_code == 0 and "shap (log-odds)" in table.output
    unknown = runner.invoke(app, ["explain", "999999999", "--method", "shap"])
    assert unknown.exit_code == 1 and "in no validated batch" in unknown.output
    bad = runner.invoke(app, ["explain", entity, "--method", "anchor"])
    assert bad.exit_code == 2
