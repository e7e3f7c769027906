"""Batch scoring into the scores table, rescoring and publishing: real Delta tables, a real
CatBoost model and a real SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandera.errors
import polars as pl
import pytest
from catboost import CatBoostClassifier
from support.scoring import ingest_batch, train_bundle
from typer.testing import CliRunner

from pipelines import scores_table as scoring
from pipelines.features import FeatureMismatchError, prepare_features
from pipelines.model_bundle import ModelMetadata, load_bundle, save_bundle
from pipelines.publish import IncompleteScoresError, publish_serving_snapshot
from pipelines.registry import ChampionRef
from pipelines.rescore import rescore_population
from pipelines.settings import BUNDLED_SPEC, Settings
from pipelines.snapshot import load_snapshot, read_current
from pipelines.spec import DatasetSpec, load_spec
from pipelines.tables import read_table, table_version
from scoreloop.cli import app

BATCHES = ("2015-01", "2015-02", "2015-03")
ROWS = 400


@pytest.fixture(scope="module")
def models(
    tmp_path_factory: pytest.TempPathFactory, acs: pl.DataFrame
) -> tuple[ChampionRef, ChampionRef]:
    spec = load_spec(BUNDLED_SPEC)
    root = tmp_path_factory.mktemp("models")
    first = train_bundle(acs, spec, root / "v1", version="v0.0.1", seed=1)
    second = train_bundle(acs, spec, root / "v2", version="v0.0.2", seed=2, rows=6000)
    return first, second


@pytest.fixture
def ingested(settings: Settings, acs: pl.DataFrame, spec: DatasetSpec) -> list[str]:
    """Three accepted batches of disjoint ACS rows and one refused batch (2015-04)."""
    for i, batch_id in enumerate(BATCHES):
        assert ingest_batch(settings, acs, spec, batch_id, start=i * ROWS, rows=ROWS).status == (
            "accepted"
        )
    refused = ingest_batch(settings, acs, spec, "2015-04", start=5000, rows=100, bad=40)
    assert refused.status == "refused"
    return list(BATCHES)


def small(**overrides: object) -> scoring.ScoringParams:
    return scoring.ScoringParams.model_validate({"thread_count": 2, **overrides})


def scores(settings: Settings) -> pl.DataFrame:
    return pl.read_delta(scoring.scores_uri(settings))


def test_scores_equal_predict_proba_and_follow_the_contract(
    settings: Settings,
    ingested: list[str],
    models: tuple[ChampionRef, ChampionRef],
    spec: DatasetSpec,
) -> None:
    champion = models[0]
    result = scoring.score_batch("2015-02", champion=champion, params=small(chunk_rows=150))
    assert result.rows == ROWS
    table = scores(settings)
    assert dict(table.schema) == scoring.scores_schema(spec)
    validated = read_table(f"{settings.tables}/validated", batch_id="2015-02")
    joined = validated.join(table, left_on=spec.id.name, right_on="entity_id", how="inner")
    assert joined.height == ROWS
    bundle = load_bundle(champion.model_dir)
    expected = bundle.model.predict_proba(prepare_features(joined, spec))[:, 1]
    np.testing.assert_allclose(joined["score"].to_numpy(), expected, rtol=0, atol=1e-12)
    assert (joined["decision"] == (joined["score"] >= 0.5)).all()
    assert set(joined["batch_id"]) == {"2015-02"}
    assert set(joined["model_version"]) == {"v0.0.1"}
    assert set(joined["model_name"]) == {"employment"}
    assert set(joined["data_version"]) == set(validated["data_version"])
    assert joined["reasons"].list.len().to_list() == [3] * ROWS
    assert result.summary.rows == ROWS
    assert sum(result.summary.histogram) == ROWS
    assert result.summary.decision_rate == pytest.approx(float(joined["decision"].mean()))  # type: ignore[arg-type]
    assert "| entity_id |" in scoring.sample_markdown(result.summary.sample)


def test_reasons_for_all_features_add_up_to_raw_prediction(
    settings: Settings,
    ingested: list[str],
    models: tuple[ChampionRef, ChampionRef],
    spec: DatasetSpec,
) -> None:
    champion = models[0]
    scoring.score_batch("2015-01", champion=champion, params=small(top_k=len(spec.feature_names)))
    table = scores(settings)
    validated = read_table(f"{settings.tables}/validated", batch_id="2015-01")
    joined = validated.join(table, left_on=spec.id.name, right_on="entity_id")
    raw = load_bundle(champion.model_dir).model.predict(
        prepare_features(joined, spec), prediction_type="RawFormulaVal"
    )
    total = joined["reasons"].list.eval(pl.element().struct.field("contribution")).list.sum()
    np.testing.assert_allclose(
        (total + joined["expected_value"]).to_numpy(), raw, rtol=0, atol=1e-9
    )


def test_rescoring_a_batch_replaces_its_rows_and_keeps_other_models(
    settings: Settings, ingested: list[str], models: tuple[ChampionRef, ChampionRef]
) -> None:
    first, second = models
    calls: list[tuple[int, int]] = []
    scoring.score_batch(
        "2015-01",
        champion=first,
        params=small(chunk_rows=70),
        progress=lambda n, r: calls.append((n, r)),
    )
    assert calls[-1] == (6, ROWS)  # 400 rows in chunks of 70 ...
    version = table_version(scoring.scores_uri(settings))
    before = scores(settings)
    scoring.score_batch("2015-01", champion=first, params=small(chunk_rows=70))
    assert table_version(scoring.scores_uri(settings)) == version + 1  # ... in ONE commit
    after = scores(settings)
    assert after.height == before.height == ROWS
    assert after["entity_id"].n_unique() == ROWS
    assert after["scored_at"].min() > before["scored_at"].max()  # type: ignore[operator]
    assert after.sort("entity_id")["score"].equals(before.sort("entity_id")["score"])
    scoring.score_batch("2015-01", champion=second, params=small())
    both = scores(settings)
    assert both.group_by("model_version").len().sort("model_version").rows() == [
        ("v0.0.1", ROWS),
        ("v0.0.2", ROWS),
    ]


def test_refused_or_unknown_batch_is_never_scored(
    settings: Settings, ingested: list[str], models: tuple[ChampionRef, ChampionRef]
) -> None:
    with pytest.raises(scoring.BatchNotAcceptedError, match=r"'2015-04' is refused"):
        scoring.score_batch("2015-04", champion=models[0], params=small())
    with pytest.raises(scoring.BatchNotAcceptedError, match="never ingested"):
        scoring.score_batch("2099-01", champion=models[0], params=small())
    assert table_version(scoring.scores_uri(settings)) is None


def test_model_with_other_features_fails_before_any_row_is_written(
    settings: Settings,
    ingested: list[str],
    models: tuple[ChampionRef, ChampionRef],
    acs: pl.DataFrame,
    spec: DatasetSpec,
    tmp_path: Path,
) -> None:
    scoring.score_batch("2015-01", champion=models[0], params=small())
    version = table_version(scoring.scores_uri(settings))
    features = [n for n in spec.feature_names if n != "DIS"]
    categorical = [n for n in spec.categorical_names if n != "DIS"]
    train = acs.head(2000)
    model = CatBoostClassifier(iterations=5, depth=2, thread_count=2, verbose=0)
    model.fit(
        prepare_features(train, spec).select(features),
        train["employed"].to_numpy(),
        cat_features=categorical,
    )
    metadata = ModelMetadata(
        name="employment",
        version="v9.0.0",
        spec_name=spec.name,
        features=features,
        categorical=categorical,
        threshold=0.5,
        trained_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
    )
    save_bundle(model, metadata, tmp_path / "narrow")
    narrow = ChampionRef(name="employment", version="v9.0.0", model_dir=tmp_path / "narrow")
    with pytest.raises(FeatureMismatchError, match="do not match spec"):
        scoring.score_batch("2015-02", champion=narrow, params=small())
    with pytest.raises(FeatureMismatchError):
        rescore_population(champion=narrow)
    assert table_version(scoring.scores_uri(settings)) == version


def test_pandera_schema_refuses_a_frame_off_contract(spec: DatasetSpec) -> None:
    checker = scoring.scores_pandera_schema(spec)
    frame = pl.DataFrame(
        {
            "entity_id": [1],
            "batch_id": ["b"],
            "score": [0.2],
            "decision": [False],
            "threshold": [0.5],
            "model_name": ["m"],
            "model_version": ["v1"],
            "reasons": [[{"feature": "AGEP", "value": "3.0", "contribution": 0.1}]],
            "expected_value": [0.0],
            "scored_at": [datetime(2026, 1, 1, tzinfo=UTC)],
            "data_version": ["x"],
        },
        schema=scoring.scores_schema(spec),
    )
    checker.validate(frame)
    with pytest.raises(pandera.errors.SchemaError):
        checker.validate(frame.with_columns(pl.lit(1.5).alias("score")))
    with pytest.raises(pandera.errors.SchemaError):
        checker.validate(frame.with_columns(pl.lit(None, dtype=pl.String).alias("model_version")))
    with pytest.raises(pandera.errors.SchemaError):
        checker.validate(frame.with_columns(pl.col("score").cast(pl.Float32)))
    with pytest.raises(pandera.errors.SchemaError):
        checker.validate(frame.drop("reasons"))


def test_rescore_population_then_snapshot_never_mixes_versions(
    settings: Settings, ingested: list[str], models: tuple[ChampionRef, ChampionRef]
) -> None:
    first, second = models
    result = rescore_population(champion=first)
    assert [r.batch_id for r in result.scored] == ingested and result.skipped == []
    assert result.snapshot is not None and result.snapshot.row_count == 3 * ROWS
    # Nothing stale: a second run scores nothing and republishes the same population.
    again = rescore_population(champion=first, publish=False)
    assert again.scored == [] and again.skipped == ingested and again.snapshot is None
    # A new champion: a snapshot is refused until every batch has its scores ...
    with pytest.raises(IncompleteScoresError, match="3 accepted batch"):
        publish_serving_snapshot(champion=second)
    scoring.score_batch("2015-01", champion=second, params=small())
    with pytest.raises(IncompleteScoresError, match=r"\['2015-02', '2015-03'\]"):
        publish_serving_snapshot(champion=second)
    current = read_current(settings.snapshots)
    assert current is not None and current.model_version == "v0.0.1"
    # ... then rescoring the population publishes one snapshot of the new version only.
    promoted = rescore_population(champion=second)
    assert [r.batch_id for r in promoted.scored] == ["2015-02", "2015-03"]
    manifest = read_current(settings.snapshots)
    assert manifest is not None and manifest.model_version == "v0.0.2"
    loaded = load_snapshot(settings.snapshots, manifest)
    assert set(loaded.scores.column("model_version").to_pylist()) == {"v0.0.2"}
    assert loaded.scores.num_rows == 3 * ROWS
    table = scores(settings)
    assert table.group_by("model_version").len().sort("model_version").rows() == [
        ("v0.0.1", 3 * ROWS),
        ("v0.0.2", 3 * ROWS),
    ]


def test_snapshot_keeps_latest_batch_per_entity(
    settings: Settings,
    acs: pl.DataFrame,
    spec: DatasetSpec,
    models: tuple[ChampionRef, ChampionRef],
) -> None:
    ingest_batch(settings, acs, spec, "2016-01", start=0, rows=50)
    ingest_batch(settings, acs, spec, "2016-02", start=25, rows=50)  # 25 entities seen again
    rescore_population(champion=models[0])
    latest = scoring.latest_scores(settings, "v0.0.1")
    assert latest.height == 75
    again = latest.filter(pl.col("entity_id").is_in(acs.slice(25, 25)["id"].to_list()))
    assert set(again["batch_id"]) == {"2016-02"}


def test_an_id_in_two_batches_is_served_from_its_latest_event_time(
    settings: Settings,
    acs: pl.DataFrame,
    spec: DatasetSpec,
    models: tuple[ChampionRef, ChampionRef],
) -> None:
    # "2016-b" sorts after "2016-a" and is ingested last, but holds the older records
    recent = acs.slice(0, 40).with_columns(pl.lit(2018, dtype=acs.schema["year"]).alias("year"))
    acs_recent = pl.concat([recent, acs.slice(40, acs.height - 40)])
    ingest_batch(settings, acs_recent, spec, "2016-a", start=0, rows=40)
    old = ingest_batch(settings, acs, spec, "2016-b", start=20, rows=40)  # ids 20-39 again
    assert old.duplicate_ids == 20
    rescore_population(champion=models[0])
    latest = scoring.latest_scores(settings, "v0.0.1")
    assert latest.height == 60
    shared = latest.filter(pl.col("entity_id").is_in(list(range(20, 40))))
    assert set(shared["batch_id"]) == {"2016-a"}  # year 2018 beats year 2015


def test_no_champion_is_a_clear_error(settings: Settings, ingested: list[str]) -> None:
    with pytest.raises(scoring.NoChampionError, match="no champion"):
        scoring.score_batch("2015-01")
    result = CliRunner().invoke(app, ["score", "2015-01"])
    assert result.exit_code == 1
    assert "no champion" in result.output


def test_sigkill_mid_batch_leaves_the_table_as_before(
    settings: Settings, ingested: list[str], models: tuple[ChampionRef, ChampionRef], tmp_path: Path
) -> None:
    champion = models[0]
    scoring.score_batch("2015-03", champion=champion, params=small())
    uri = scoring.scores_uri(settings)
    version = table_version(uri)
    before = scores(settings).sort("entity_id")
    marker = tmp_path / "reached"
    child = tmp_path / "child.py"
    child.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            from pathlib import Path
            from pipelines.registry import ChampionRef
            from pipelines.scores_table import ScoringParams, score_batch

            def progress(chunk: int, rows: int) -> None:
                if chunk == 3:  # three chunks handed to the Delta writer: die mid-batch
                    Path({str(marker)!r}).write_text(str(rows))
                    time.sleep(120)

            champion = ChampionRef("employment", "v0.0.1", Path({str(champion.model_dir)!r}))
            score_batch("2015-03", champion=champion,
                        params=ScoringParams(chunk_rows=60, thread_count=1), progress=progress)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(child)], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None, "child exited before reaching the third chunk"
            assert time.monotonic() < deadline, "child never reached the third chunk"
            time.sleep(0.05)
        assert marker.read_text() == "180"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert table_version(uri) == version
    after = scores(settings).sort("entity_id")
    assert after.equals(before)
    # The table is still writable afterwards (no lock or half-commit left behind).
    scoring.score_batch("2015-03", champion=champion, params=small())
    assert table_version(uri) == version + 1  # type: ignore[operator]


def test_a_chunk_off_contract_mid_stream_commits_nothing(
    settings: Settings,
    ingested: list[str],
    models: tuple[ChampionRef, ChampionRef],
    spec: DatasetSpec,
) -> None:
    from pipelines.tables import TableSchemaError, write_partition_stream

    scoring.score_batch("2015-01", champion=models[0], params=small())
    uri = scoring.scores_uri(settings)
    version = table_version(uri)
    good = scores(settings)

    def frames() -> Iterator[pl.DataFrame]:
        yield good.head(100)
        yield good.slice(100, 100).with_columns(pl.col("score").cast(pl.Float32))

    with pytest.raises(TableSchemaError, match="'score' is Float32"):
        write_partition_stream(
            uri,
            frames(),
            {"batch_id": "2015-01", "model_version": "v0.0.1"},
            scoring.scores_schema(spec),
            table="scores",
            partition_by=list(scoring.PARTITION_COLUMNS),
        )
    assert table_version(uri) == version
    assert scores(settings).equals(good)


def test_batches_scored_concurrently_by_separate_processes_all_land(
    settings: Settings, ingested: list[str], models: tuple[ChampionRef, ChampionRef], tmp_path: Path
) -> None:
    # What parallel Dagster runs do: one process per batch, all writing the new scores table.
    champion = models[0]
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from pipelines.registry import ChampionRef
        from pipelines.scores_table import ScoringParams, score_batch

        champion = ChampionRef("employment", "v0.0.1", Path({str(champion.model_dir)!r}))
        score_batch(sys.argv[1], champion=champion, params=ScoringParams(thread_count=1))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, batch_id], env=dict(os.environ))
        for batch_id in ingested
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    table = scores(settings)
    assert table.group_by("batch_id").len().sort("batch_id").rows() == [(b, ROWS) for b in ingested]


def test_downstream_readers_query_the_table_as_the_readme_shows(
    settings: Settings, ingested: list[str], models: tuple[ChampionRef, ChampionRef]
) -> None:
    """The reading recipes of README/docs/scoring.md: polars (Delta) and DuckDB over that frame."""
    import duckdb

    for champion in models:
        scoring.score_batch("2015-01", champion=champion, params=small())
    scoring.score_batch("2015-02", champion=models[1], params=small())
    scored = pl.read_delta(scoring.scores_uri(settings))  # noqa: F841 - DuckDB reads it by name
    counts = duckdb.sql(
        "SELECT batch_id, model_version, count(*) AS n, avg(decision::INT) AS rate "
        "FROM scored GROUP BY ALL ORDER BY ALL"
    ).pl()
    assert counts.select("batch_id", "model_version", "n").rows() == [
        ("2015-01", "v0.0.1", ROWS),
        ("2015-01", "v0.0.2", ROWS),
        ("2015-02", "v0.0.2", ROWS),
    ]
    reasons = duckdb.sql(
        "SELECT r.feature, r.contribution FROM (SELECT unnest(reasons) AS r FROM scored) "
        "ORDER BY abs(r.contribution) DESC LIMIT 1"
    ).fetchall()
    assert reasons and reasons[0][0] in models[0].model_dir.joinpath("metadata.json").read_text()
