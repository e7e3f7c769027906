"""The short loop (ingest -> train -> promote -> score -> snapshot -> lookup) on PostgreSQL + S3 +
two Dask workers gives the same results as the embedded run (SQLite, local tables, in-process).

The scaled-out half goes through the code of ``scoreloop demo --scale``: the stack's database,
bucket and configuration block from :func:`scoreloop.scale_stack.scale_stack` (on the session's
servers), the batches ingested and scored on the workers by the demo's ``ingest_batches`` and
``score_batches``."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.exceptions import StarletteDeprecationWarning
from support.servers import PostgresServer, S3Server

from assets import runner
from pipelines.model_bundle import load_metadata
from pipelines.registry import resolve_champion
from pipelines.scores_table import scores_uri
from pipelines.settings import PROJECT_ROOT, get_settings
from pipelines.simulate import simulate
from pipelines.spec import load_spec
from pipelines.tables import read_table, table_uri
from scoreloop.demo.state import ensure_dagster_home
from scoreloop.demo.steps import ingest_batches, score_batches
from scoreloop.scale_stack import scale_stack
from serving.config import ServingSettings
from serving.main import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

BATCHES = 5


def _params(directory: Path) -> Path:
    raw = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    raw["training"].update(iterations=20, baseline_iterations=5, early_stopping_rounds=5)
    raw["scoring"]["thread_count"] = 1
    raw["split"].update(window_batches=BATCHES, until=None)
    path = directory / "params.small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _loop(root: Path, monkeypatch: pytest.MonkeyPatch, *, workers: int) -> dict[str, Any]:
    scale = workers > 0
    root.mkdir()
    monkeypatch.setenv("SCORELOOP_STATE_ROOT", str(root))
    monkeypatch.setenv("SCORELOOP_PARAMS_PATH", str(_params(root)))
    settings = get_settings()
    spec = load_spec(settings.spec_path)
    simulate(
        spec,
        settings.spec_path.parent / "employment_MA.parquet",
        settings.landing,
        limit=BATCHES,
        label_lag=0,
    )
    home = ensure_dagster_home(settings.dagster, settings.dagster_pg_url)
    batches = [f"2015-{m:02d}" for m in range(1, BATCHES + 1)]
    runs = ingest_batches(home, [(b, True, True) for b in batches], workers=workers)
    assert len(runs) == BATCHES and all(r.success for r in runs), [r.errors for r in runs]
    training = runner.run_retraining(home)
    assert "champion" in training.materialized, training.errors
    # at scale the partitions' scores on the workers (a failed one raises), then the snapshot
    score_batches(home, batches, workers=workers)
    published = runner.publish_snapshot(home)
    assert published.success, published.errors
    # embedded, the snapshot run scores the batches; at scale the workers left it nothing to score
    assert ("scores" in published.materialized) is not scale, published.materialized
    champion = resolve_champion(settings)
    assert champion is not None
    scores = read_table(scores_uri(settings)).sort("entity_id")
    cache = root / "replica-cache" if scale else settings.snapshots
    serving = ServingSettings(dev_mode=True, reload_interval_s=0, snapshot_dir=cache)
    entity = int(scores["entity_id"][0])
    with TestClient(create_app(serving)) as client:
        looked_up = client.get(f"/scores/{entity}").json()
    return {
        "validated": read_table(table_uri(settings.tables, "validated")).height,
        "labels": read_table(table_uri(settings.tables, "labels")).height,
        "metrics": load_metadata(champion.model_dir).metrics,
        "scores": scores.select("entity_id", "batch_id", "score", "decision"),
        "lookup": (looked_up["model_version"], round(looked_up["score"], 12)),
    }


@pytest.mark.slow
def test_the_loop_on_postgres_s3_and_two_workers_matches_the_embedded_run(
    state: Path,
    pg_server: PostgresServer,
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedded = _loop(tmp_path / "embedded", monkeypatch, workers=0)

    with scale_stack(workers=2, postgres=pg_server, s3=s3_server) as stack:
        for key, value in stack.environment().items():
            monkeypatch.setenv(key, value)
        at_scale = _loop(tmp_path / "scale", monkeypatch, workers=stack.workers)

    assert not (tmp_path / "scale" / "tables").exists()  # the tables really are on S3
    assert at_scale["validated"] == embedded["validated"] > 0
    assert at_scale["labels"] == embedded["labels"] > 0
    assert at_scale["metrics"] == pytest.approx(embedded["metrics"])
    assert at_scale["scores"].equals(embedded["scores"])
    assert at_scale["lookup"] == embedded["lookup"]
    assert os.environ["SCORELOOP_DAGSTER_PG_URL"] == stack.pg_url
    assert stack.pg_url.startswith(f"postgresql+psycopg2://postgres@127.0.0.1:{pg_server.port}/")
