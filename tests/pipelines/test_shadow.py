"""Shadow scoring: the challenger beside the champion on the same rows (real CatBoost models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from support.scoring import ingest_batch, train_bundle

from pipelines.drift import numeric_psi, score_profile
from pipelines.model_bundle import load_bundle
from pipelines.score import score_frame
from pipelines.settings import Settings
from pipelines.shadow import shadow_compare, shadow_newest_batch
from pipelines.spec import DatasetSpec


def test_shadow_compares_two_models_on_the_same_rows(
    acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    old = load_bundle(train_bundle(acs, spec, tmp_path / "a", version="v0.0.1").model_dir)
    new = load_bundle(
        train_bundle(acs, spec, tmp_path / "b", version="v0.0.2", seed=3, threshold=0.7).model_dir
    )
    rows = acs.slice(50_000, 1_000)
    same = shadow_compare(old, old, rows, spec, batch_id="2016-01")
    assert same is not None
    assert (same.score_psi, same.decision_agreement, same.mean_score_delta) == (0.0, 1.0, 0.0)

    shadow = shadow_compare(new, old, rows, spec, batch_id="2016-01")
    assert shadow is not None
    assert (shadow.rows, shadow.challenger_version, shadow.champion_version) == (
        1000,
        "v0.0.2",
        "v0.0.1",
    )
    # the figures are what they say, from the two models' own scores
    a = score_frame(new, rows, spec, with_reasons=False)
    b = score_frame(old, rows, spec, with_reasons=False)
    agree = float((a["decision"] == b["decision"]).mean())  # type: ignore[arg-type]
    assert shadow.decision_agreement == round(agree, 6)
    assert agree < 1.0  # a higher threshold decides differently on some rows
    delta = float(np.mean(a["score"].to_numpy() - b["score"].to_numpy()))
    assert shadow.mean_score_delta == round(delta, 6)
    psi = numeric_psi(a["score"], score_profile(b["score"].to_numpy()))
    assert shadow.score_psi == round(psi, 6) and psi > 0
    assert shadow.challenger_decision_rate < shadow.champion_decision_rate
    assert shadow_compare(new, old, rows.head(0), spec, batch_id="x") is None


def test_shadow_reads_the_newest_accepted_batch(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    old = load_bundle(train_bundle(acs, spec, tmp_path / "a", version="v0.0.1").model_dir)
    new = load_bundle(train_bundle(acs, spec, tmp_path / "b", version="v0.0.2", seed=3).model_dir)
    assert shadow_newest_batch(settings, spec, new, old) is None
    ingest_batch(settings, acs, spec, "2016-01", start=0, rows=300)
    ingest_batch(settings, acs, spec, "2016-02", start=300, rows=200)
    shadow = shadow_newest_batch(settings, spec, new, old, challenger_version="v0.0.9")
    assert shadow is not None
    assert (shadow.batch_id, shadow.rows, shadow.challenger_version) == ("2016-02", 200, "v0.0.9")
