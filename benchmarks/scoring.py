"""Scoring cost against bare CatBoost, in one process on the same rows, plus peak memory at scale.

(a) ``scoring_vs_predict``: the scoring path without reasons (``score_frame``: shared feature
    prep, predict_proba, decision and the scores frame, in chunks of ``scoring_chunk_rows``) vs
    bare ``predict_proba`` on the already prepared frame. Ratio of throughputs (goal >= 0.95).
(b) ``reasons_vs_shap``: the scoring path with top-k reasons for every row (predict_proba +
    SHAP + reason codes) vs bare ``get_feature_importance(type="ShapValues")``. Goal >= 0.95.
(c) ``scoring_peak_rss_gb``: a child process runs the real ``score_batch`` (validated Delta
    table in, scores Delta table out, reasons included) over 10x the rows (10M by default) in one
    batch and reports its own peak RSS (goal < 1 GB): its ``VmHWM``, not ``ru_maxrss``, which
    Linux carries over from the parent through ``subprocess``'s vfork + exec (this parent peaks
    at ~1.8 GB in the comparison, and that is what the child's ``ru_maxrss`` used to report).

Rows are resampled from the bundled ACS data (default 1M); the model is trained here
(100 iterations, depth 6). Warm-up, then the median of repeats.

    .venv/bin/python benchmarks/scoring.py     # SCORELOOP_BENCH_ROWS=100000 for a quick run

``SCORELOOP_BENCH_RSS_ROWS`` sets the peak-RSS run's rows apart (default 10x the rows).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from catboost import CatBoostClassifier, Pool
from deltalake import write_deltalake

from pipelines.features import prepare_features
from pipelines.ingest import INGEST_LOG, LOG_SCHEMA, VALIDATED, log_uri, validated_schema
from pipelines.model_bundle import ModelBundle, ModelMetadata, load_bundle, save_bundle
from pipelines.registry import ChampionRef
from pipelines.score import score_frame
from pipelines.scores_table import ScoringParams, score_batch
from pipelines.settings import BUNDLED_SPEC, get_settings
from pipelines.spec import DatasetSpec, load_spec
from pipelines.tables import table_uri, write_batch

ROWS = int(os.environ.get("SCORELOOP_BENCH_ROWS", "1000000"))
REPEATS = int(os.environ.get("SCORELOOP_BENCH_REPEATS", "3"))
#: Rows of the peak-RSS run (10x ROWS unless set: a test that only needs the ratios shrinks it).
RSS_ROWS = int(os.environ.get("SCORELOOP_BENCH_RSS_ROWS", str(10 * ROWS)))
THREADS = 2
WRITE_CHUNK = 1_000_000


def make_rows(spec: DatasetSpec, rows: int, seed: int) -> pl.DataFrame:
    source = pl.read_parquet(BUNDLED_SPEC.parent / "employment_MA.parquet")
    return (
        source.select(spec.record_columns)
        .sample(rows, with_replacement=True, seed=seed)
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(spec.id.name))
    )


def train(
    spec: DatasetSpec,
    directory: Path,
    *,
    rows: int = 50_000,
    iterations: int = 100,
    version: str = "v0.0.1",
) -> ModelBundle:
    """A real CatBoost model on ``rows`` sampled ACS rows, saved and loaded as a model bundle."""
    source = pl.read_parquet(BUNDLED_SPEC.parent / "employment_MA.parquet").sample(rows, seed=3)
    model = CatBoostClassifier(
        iterations=iterations,
        depth=6,
        thread_count=THREADS,
        verbose=0,
        random_seed=3,
        allow_writing_files=False,
        cat_features=spec.categorical_names,
    )
    model.fit(prepare_features(source, spec), source[spec.target.name].to_numpy())
    metadata = ModelMetadata(
        name="employment",
        version=version,
        spec_name=spec.name,
        features=spec.feature_names,
        categorical=spec.categorical_names,
        threshold=0.5,
        trained_at=datetime.now(UTC),
    )
    save_bundle(model, metadata, directory)
    return load_bundle(directory)


def paired_medians(bare: Callable[[], object], ours: Callable[[], object]) -> tuple[float, float]:
    """Median seconds of each side; repeats alternate so machine noise hits both alike."""
    bare()  # warm-up
    ours()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEATS):
        for side, work in enumerate((bare, ours)):
            start = time.perf_counter()
            work()
            times[side].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def chunked(rows: pl.DataFrame, size: int, fn: Callable[[pl.DataFrame], object]) -> None:
    for offset in range(0, rows.height, size):
        fn(rows.slice(offset, size))


def compare(spec: DatasetSpec, bundle: ModelBundle) -> tuple[float, float]:
    rows = make_rows(spec, ROWS, seed=11)
    features = prepare_features(rows, spec)
    model = bundle.model
    chunk = get_settings().scoring_chunk_rows

    def ours(with_reasons: bool) -> Callable[[], object]:
        return lambda: chunked(
            rows,
            chunk,
            lambda part: score_frame(
                bundle,
                part,
                spec,
                model_version="v0.0.1",
                top_k=3,
                with_reasons=with_reasons,
                thread_count=THREADS,
            ),
        )

    bare_predict, ours_predict = paired_medians(
        lambda: model.predict_proba(features, thread_count=THREADS), ours(False)
    )

    def bare_shap_values() -> object:
        pool = Pool(features, cat_features=spec.categorical_names)
        return model.get_feature_importance(pool, type="ShapValues", thread_count=THREADS)

    bare_shap, ours_shap = paired_medians(bare_shap_values, ours(True))
    print(
        f"{ROWS} rows: predict_proba {bare_predict:.2f}s, scoring without reasons "
        f"{ours_predict:.2f}s; ShapValues {bare_shap:.2f}s, scoring with reasons {ours_shap:.2f}s"
    )
    return bare_predict / ours_predict, bare_shap / ours_shap


def build_state(spec: DatasetSpec, root: Path, rows: int) -> str:
    """A validated table holding one accepted batch of ``rows`` rows, written in pieces."""
    tables = str(root / "tables")
    schema = validated_schema(spec)
    uri = table_uri(tables, VALIDATED)
    now = datetime.now(UTC)
    for index, offset in enumerate(range(0, rows, WRITE_CHUNK)):
        size = min(WRITE_CHUNK, rows - offset)
        part = (
            make_rows(spec, size, seed=100 + index)
            .with_columns(
                (pl.col(spec.id.name) + offset).alias(spec.id.name),
                pl.lit("big").alias("batch_id"),
                pl.lit("bench").alias("data_version"),
                pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
            )
            .select(list(schema))
        )
        write_deltalake(
            uri, part.to_arrow(), mode="append", partition_by=["batch_id"], storage_options={}
        )
    entry = {
        "batch_id": "big",
        "kind": "records",
        "source_file": "benchmark",
        "data_version": "bench",
        "status": "accepted",
        "rows": rows,
        "accepted": rows,
        "rejected": 0,
        "reject_rate": 0.0,
        "error": None,
        "processed_at": now,
    }
    frame = pl.DataFrame([entry], schema=LOG_SCHEMA)
    write_batch(log_uri(tables, "records"), frame, "big", LOG_SCHEMA, table=INGEST_LOG)
    return tables


def own_peak_rss_kb() -> int:
    """This process's own peak RSS in KiB (``VmHWM``: reset by exec, unlike ``ru_maxrss``)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux


def child(model_dir: str) -> None:
    """Score the big batch in this process and print its own peak RSS (JSON)."""
    champion = ChampionRef(name="employment", version="v0.0.1", model_dir=Path(model_dir))
    start = time.perf_counter()
    result = score_batch("big", champion=champion, params=ScoringParams(thread_count=THREADS))
    peak_kb = own_peak_rss_kb()
    print(
        json.dumps(
            {"rows": result.rows, "seconds": time.perf_counter() - start, "peak_kb": peak_kb}
        )
    )


def peak_rss(spec: DatasetSpec, model_dir: Path, workdir: Path) -> float:
    state = workdir / "state"
    build_state(spec, state, RSS_ROWS)
    env = {**os.environ, "SCORELOOP_STATE_ROOT": str(state)}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(model_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if report["rows"] != RSS_ROWS:
        raise RuntimeError(f"child scored {report['rows']} rows, expected {RSS_ROWS}")
    gb = report["peak_kb"] / 1024**2
    parent_gb = own_peak_rss_kb() / 1024**2
    print(
        f"{RSS_ROWS} rows scored with reasons in {report['seconds']:.1f}s, peak RSS {gb:.2f} GB "
        f"(this parent process, which trained, compared and built the input: {parent_gb:.2f} GB)"
    )
    return float(gb)


def main() -> None:
    spec = load_spec(BUNDLED_SPEC)
    with tempfile.TemporaryDirectory(prefix="scoreloop-bench-") as tmp:
        workdir = Path(tmp)
        bundle = train(spec, workdir / "model")
        predict_ratio, shap_ratio = compare(spec, bundle)
        rss = peak_rss(spec, workdir / "model", workdir)
    print(f"bench scoring_vs_predict: {predict_ratio:.2f} (goal >= 0.95)")
    print(f"bench reasons_vs_shap: {shap_ratio:.2f} (goal >= 0.95)")
    print(f"bench scoring_peak_rss_gb: {rss:.2f} (goal < 1)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
