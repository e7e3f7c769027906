"""The scores Delta table: its contract, the per-batch write (``score_batch``) and its readers.

``score_batch`` streams one accepted batch of the validated table through the one scorer
(:func:`pipelines.score.score_frame`) into the scores table; it is the implementation behind the
Dagster ``scores`` asset and ``scoreloop score``. ``scored_versions``, ``stale_batches`` and
``latest_scores`` read the table back (rescoring and snapshot publishing build on them:
:mod:`pipelines.rescore`, :mod:`pipelines.publish`).

The scores table (Delta, under ``<table root>/scores``) is partitioned by ``batch_id`` and
``model_version``: one model's scores of one batch are one partition, written in one commit, so
re-scoring a batch with the same model replaces its rows and a new champion's rows sit next to
the old champion's. A batch is streamed in chunks of ``scoring_chunk_rows`` from the validated
table to the Delta writer, so memory stays bounded whatever the batch size, and a crash
mid-batch commits nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandera.polars as pa
import polars as pl
import pyarrow.parquet as pq
from deltalake.exceptions import CommitFailedError
from pydantic import BaseModel, ConfigDict, Field

from pipelines.explain import DEFAULT_TOP_K
from pipelines.ingest import VALIDATED, batch_outcomes
from pipelines.model_bundle import ModelBundle, load_bundle
from pipelines.object_store import filesystem_for
from pipelines.params import Params, load_params
from pipelines.registry import ChampionRef, resolve_champion
from pipelines.score import ScoringError, check_bundle, score_frame
from pipelines.settings import Settings, get_settings
from pipelines.snapshot import scores_schema as _snapshot_scores_schema
from pipelines.spec import DatasetSpec, load_spec
from pipelines.tables import (
    open_table,
    scan_table,
    table_exists,
    table_uri,
    write_partition_stream,
)

log = logging.getLogger(__name__)

SCORES = "scores"
#: The scores table is partitioned by these columns (in this order).
PARTITION_COLUMNS = ("batch_id", "model_version")
#: Attempts at committing a batch when concurrent writers (other batches' runs) commit first.
COMMIT_ATTEMPTS = 3
#: Score histogram bins reported for each scored batch.
HISTOGRAM_BINS = 10

ProgressCallback = Callable[[int, int], None]
#: Target size of the scores table's data files (a file is closed once it reaches this: about 1M
#: scored rows with reasons). ``write_partition_stream`` writes files itself and holds only the
#: current chunk, so the size no longer costs memory.
SCORES_FILE_BYTES = 16 * 1024 * 1024
#: Bytes read from a parquet file at a time when streaming a batch (see ``_chunks``).
READ_BUFFER = 1 << 20


class BatchNotAcceptedError(ScoringError):
    """The batch was not accepted by validation (refused, failed, or never ingested)."""


class NoChampionError(ScoringError):
    """No model has been promoted yet."""


class ScoringParams(BaseModel):
    """The ``scoring`` section of params.yaml."""

    model_config = ConfigDict(extra="forbid")
    #: Reasons per row; recorded in the serving snapshot's manifest, so /predict returns as many.
    top_k: int = Field(DEFAULT_TOP_K, ge=1)
    #: Rows scored at a time; None = ``Settings.scoring_chunk_rows`` (SCORELOOP_SCORING_CHUNK_ROWS).
    chunk_rows: int | None = Field(None, ge=1)
    #: CatBoost threads for predict and SHAP (-1 = all cores).
    thread_count: int = -1
    #: Serving snapshots kept on disk (the current one is never pruned).
    snapshot_keep: int = Field(3, ge=1)


def scoring_params(params: Params) -> ScoringParams:
    return ScoringParams.model_validate(params.section("scoring"))


def scores_schema(spec: DatasetSpec) -> dict[str, pl.DataType]:
    """Columns and types of the scores table (the contract serving and downstream readers use)."""
    return _snapshot_scores_schema(spec.id.dtype)


def scores_pandera_schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    """The scores table as a pandera schema, checked on every chunk before it is written."""
    dtypes = scores_schema(spec)
    checks: dict[str, list[pa.Check]] = {
        "score": [pa.Check.in_range(0.0, 1.0)],
        "threshold": [pa.Check.in_range(0.0, 1.0)],
        "batch_id": [pa.Check.str_length(min_value=1)],
        "model_version": [pa.Check.str_length(min_value=1)],
        "reasons": [pa.Check(lambda data: data.lazyframe.select(pl.col(data.key).list.len() > 0))],
    }
    columns = {
        name: pa.Column(dtype, nullable=False, checks=checks.get(name), unique=False)
        for name, dtype in dtypes.items()
    }
    return pa.DataFrameSchema(columns, strict=True, ordered=True, name=SCORES)


def scores_uri(settings: Settings) -> str:
    return table_uri(settings.tables, SCORES)


@dataclass
class ScoreSummary:
    """Running summary of a scored batch (bounded memory: no per-row state)."""

    rows: int = 0
    positives: int = 0
    score_sum: float = 0.0
    score_min: float = float("inf")
    score_max: float = float("-inf")
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BINS)
    sample: pl.DataFrame | None = None

    def add(self, chunk: pl.DataFrame, sample_rows: int) -> None:
        if chunk.height == 0:
            return
        scores = chunk["score"].to_numpy()
        self.rows += chunk.height
        self.positives += int(chunk["decision"].sum())
        self.score_sum += float(scores.sum())
        self.score_min = min(self.score_min, float(scores.min()))
        self.score_max = max(self.score_max, float(scores.max()))
        counts, _ = np.histogram(scores, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
        self.histogram = [a + int(b) for a, b in zip(self.histogram, counts, strict=True)]
        if self.sample is None:
            # A copy, not a slice: a slice of the chunk would keep the whole first chunk's
            # buffers (reasons included) alive until the batch is done.
            self.sample = pl.from_dicts(chunk.head(sample_rows).to_dicts(), schema=chunk.schema)

    @property
    def decision_rate(self) -> float:
        return self.positives / self.rows if self.rows else 0.0

    @property
    def mean(self) -> float:
        return self.score_sum / self.rows if self.rows else float("nan")

    def describe(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "decision_rate": round(self.decision_rate, 6),
            "score_mean": round(self.mean, 6) if self.rows else None,
            "score_min": round(self.score_min, 6) if self.rows else None,
            "score_max": round(self.score_max, 6) if self.rows else None,
            "score_histogram": {
                f"{i / HISTOGRAM_BINS:.1f}-{(i + 1) / HISTOGRAM_BINS:.1f}": n
                for i, n in enumerate(self.histogram)
            },
        }


@dataclass
class BatchScoreResult:
    """What scoring one batch did."""

    batch_id: str
    model_name: str
    model_version: str
    data_version: str | None
    table_version: int
    summary: ScoreSummary
    seconds: float

    @property
    def rows(self) -> int:
        return self.summary.rows


@dataclass(frozen=True)
class ScoringContext:
    """Everything a batch is scored with, resolved and checked once (before any row is written)."""

    settings: Settings
    spec: DatasetSpec
    params: ScoringParams
    champion: ChampionRef
    bundle: ModelBundle

    @property
    def chunk_rows(self) -> int:
        return self.params.chunk_rows or self.settings.scoring_chunk_rows


def _ingest_log(settings: Settings) -> pl.DataFrame:
    # a batch's last accepted outcome stands beside a later failed re-delivery
    return batch_outcomes(settings.tables)


def accepted_data_versions(settings: Settings) -> dict[str, str]:
    """Accepted batch id -> data version of its accepted ingestion (from the ingest log)."""
    accepted = _ingest_log(settings).filter(pl.col("status") == "accepted")
    return dict(
        zip(accepted["batch_id"].to_list(), accepted["data_version"].to_list(), strict=True)
    )


def _require_accepted(settings: Settings, batch_id: str) -> str:
    log_frame = _ingest_log(settings).filter(pl.col("batch_id") == batch_id)
    if log_frame.height == 0:
        raise BatchNotAcceptedError(
            f"batch {batch_id!r} was never ingested (no entry in the ingest log under "
            f"{settings.tables}); ingest it first: scoreloop ingest <landing>/batch_{batch_id}.*"
        )
    entry = log_frame.row(0, named=True)
    if entry["status"] != "accepted":
        why = entry["error"] or (
            f"reject rate {entry['reject_rate']:.2%}" if entry["reject_rate"] is not None else ""
        )
        raise BatchNotAcceptedError(
            f"batch {batch_id!r} is {entry['status']} ({why}; file {entry['source_file']}): only "
            "accepted batches are scored; fix the file and ingest it again"
        )
    return str(entry["data_version"])


def scoring_context(
    settings: Settings | None = None,
    champion: ChampionRef | None = None,
    spec: DatasetSpec | None = None,
    params: ScoringParams | None = None,
) -> ScoringContext:
    """Resolve what was not given (settings, spec, params, the champion) and check the model.

    Raises:
        NoChampionError: no model is promoted and none was given.
        FeatureMismatchError: the model was trained on other features than the spec's.
        ScoringError: the model's metadata does not fit the champion or the spec's target.
    """
    settings = settings or get_settings()
    spec = spec or load_spec(settings.spec_path)
    params = params or scoring_params(load_params(settings.params_path))
    champion = champion or resolve_champion(settings)
    if champion is None:
        raise NoChampionError(
            f"no champion model for {settings.model_name!r} in registry {settings.registry}: "
            "train and promote a model first (scoreloop train / scoreloop model promote)"
        )
    bundle = load_bundle(champion.model_dir)
    if bundle.metadata.version is not None and bundle.metadata.version != champion.version:
        raise ScoringError(
            f"champion {champion.name}:{champion.version} points at {champion.model_dir}, whose "
            f"metadata says version {bundle.metadata.version!r}"
        )
    check_bundle(bundle, spec)
    return ScoringContext(settings, spec, params, champion, bundle)


def _validated_files(ctx: ScoringContext, batch_id: str) -> list[str]:
    """The parquet files holding the batch's validated rows (resolved before the write starts)."""
    uri = table_uri(ctx.settings.tables, VALIDATED)
    if not table_exists(uri):
        raise BatchNotAcceptedError(f"no validated table at {uri}: ingest batch {batch_id} first")
    # deltalake must not be called from inside the chunk generator: delta-rs drives it from its
    # own async runtime while writing, and a nested runtime panics.
    return list(open_table(uri).file_uris(partition_filters=[("batch_id", "=", batch_id)]))


def _chunks(files: list[str], columns: list[str], size: int) -> Iterator[pl.DataFrame]:
    """The rows of ``files`` in chunks of ``size`` rows, read on demand.

    Each file is decoded ``size`` rows at a time (``ParquetFile.iter_batches`` without
    pre-buffering), so memory holds about one chunk of input however large the file's row groups
    are: a pyarrow dataset scan decodes whole row groups and reads the next one ahead (twice the
    RSS with the 1M-row row groups of a big validated batch), and polars' ``collect_batches``
    runs the whole scan ahead of a slow consumer.
    """
    if not files:
        return
    filesystem, paths = filesystem_for(files)
    pending: list[pl.DataFrame] = []
    buffered = 0
    for path in paths:
        with (
            filesystem.open_input_file(path) as handle,
            pq.ParquetFile(handle, pre_buffer=False, buffer_size=READ_BUFFER) as source,
        ):
            for batch in source.iter_batches(batch_size=size, columns=columns):
                if batch.num_rows == 0:
                    continue
                frame = pl.DataFrame(pl.from_arrow(batch))
                pending.append(frame)
                buffered += frame.height
                while buffered >= size:
                    whole = pl.concat(pending, rechunk=False)
                    yield whole.slice(0, size)
                    rest = whole.slice(size)
                    pending, buffered = ([rest] if rest.height else []), rest.height
    if buffered:
        yield pl.concat(pending)


def score_batch_with(
    ctx: ScoringContext, batch_id: str, progress: ProgressCallback | None = None
) -> BatchScoreResult:
    """Score one batch with a prepared context (:func:`scoring_context`).

    Retried when a concurrent writer's commit wins: a streamed batch cannot be replayed into a
    new commit, so the batch is scored again.
    """
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return _score_batch_once(ctx, batch_id, progress)
        except CommitFailedError as exc:
            if attempt == COMMIT_ATTEMPTS:
                raise ScoringError(
                    f"batch {batch_id}: the scores table kept changing under the write "
                    f"({exc}); nothing was committed, run it again"
                ) from exc
            log.warning("batch %s: concurrent commit (%s), scoring again", batch_id, exc)
    raise AssertionError("unreachable")  # pragma: no cover


def _score_batch_once(
    ctx: ScoringContext, batch_id: str, progress: ProgressCallback | None = None
) -> BatchScoreResult:
    started = time.perf_counter()
    expected_version = _require_accepted(ctx.settings, batch_id)
    schema = scores_schema(ctx.spec)
    checker = scores_pandera_schema(ctx.spec)
    summary = ScoreSummary()
    seen_versions: set[str] = set()
    scored_at = datetime.now(UTC)

    files = _validated_files(ctx, batch_id)
    columns = [ctx.spec.id.name, *ctx.spec.feature_names, "data_version"]

    def chunks() -> Iterator[pl.DataFrame]:
        done = 0
        for number, chunk in enumerate(_chunks(files, columns, ctx.chunk_rows), start=1):
            scored = score_frame(
                ctx.bundle,
                chunk,
                ctx.spec,
                model_version=ctx.champion.version,
                top_k=ctx.params.top_k,
                thread_count=ctx.params.thread_count,
            )
            seen_versions.update(chunk["data_version"].unique().to_list())
            frame = scored.with_columns(
                pl.lit(batch_id, dtype=pl.String).alias("batch_id"),
                pl.lit(scored_at, dtype=pl.Datetime("us", "UTC")).alias("scored_at"),
                chunk["data_version"],
            ).select(list(schema))
            frame = checker.validate(frame)
            summary.add(frame, sample_rows=5)
            done += frame.height
            yield frame
            if progress is not None:
                progress(number, done)

    version = write_partition_stream(
        scores_uri(ctx.settings),
        chunks(),
        {"batch_id": batch_id, "model_version": ctx.champion.version},
        schema,
        table=SCORES,
        partition_by=list(PARTITION_COLUMNS),
        target_file_size=SCORES_FILE_BYTES,
    )
    if seen_versions - {expected_version}:
        log.warning(
            "batch %s: validated rows carry data versions %s, the ingest log says %s",
            batch_id,
            sorted(seen_versions),
            expected_version,
        )
    return BatchScoreResult(
        batch_id=batch_id,
        model_name=ctx.bundle.metadata.name,
        model_version=ctx.champion.version,
        data_version=expected_version,
        table_version=version,
        summary=summary,
        seconds=time.perf_counter() - started,
    )


def score_batch(
    batch_id: str,
    *,
    settings: Settings | None = None,
    champion: ChampionRef | None = None,
    spec: DatasetSpec | None = None,
    params: ScoringParams | None = None,
    progress: ProgressCallback | None = None,
) -> BatchScoreResult:
    """Score one accepted batch with the champion and replace its rows in the scores table.

    The model's features are checked against the spec, and the batch's acceptance against the
    ingest log, before any row is written. All chunks of the batch go into one Delta commit.

    Args:
        batch_id: an accepted batch.
        champion: the model to score with (default: :func:`pipelines.registry.resolve_champion`).
        progress: called after each chunk with (chunks done, rows done).

    Raises:
        BatchNotAcceptedError: the batch was refused, failed or never ingested.
        NoChampionError: no model is promoted and none was given.
        FeatureMismatchError: the model was trained on other features than the spec's.
    """
    return score_batch_with(scoring_context(settings, champion, spec, params), batch_id, progress)


def scored_versions(settings: Settings) -> pl.DataFrame:
    """Distinct (batch_id, model_version, data_version) present in the scores table."""
    uri = scores_uri(settings)
    schema = {"batch_id": pl.String(), "model_version": pl.String(), "data_version": pl.String()}
    if not table_exists(uri):
        return pl.DataFrame(schema=schema)
    return scan_table(uri).select(list(schema)).unique().collect()


def stale_batches(settings: Settings, model_version: str) -> list[str]:
    """Accepted batches without scores by ``model_version`` for their current data version."""
    accepted = accepted_data_versions(settings)
    done = scored_versions(settings).filter(pl.col("model_version") == model_version)
    current = {
        b
        for b, v in zip(done["batch_id"].to_list(), done["data_version"].to_list(), strict=True)
        if accepted.get(b) == v
    }
    return sorted(b for b in accepted if b not in current)


def latest_scores(
    settings: Settings, model_version: str, batches: list[str] | None = None
) -> pl.DataFrame:
    """One row per entity: its score by ``model_version`` from its latest record.

    An id delivered in several batches (flagged at ingest) is served from the record with the
    greatest event time (the spec's time column in the validated table), then the latest
    ingestion, then the latest ``scored_at``; never by batch-id text order, so a batch named out
    of time order cannot shadow newer records. Only ``batches`` (default: every accepted batch)
    are considered.
    """
    uri = scores_uri(settings)
    batches = sorted(accepted_data_versions(settings)) if batches is None else batches
    spec = load_spec(settings.spec_path)
    records = (
        scan_table(table_uri(settings.tables, VALIDATED))
        .filter(pl.col("batch_id").is_in(batches))
        .select(
            pl.col(spec.id.name).alias("entity_id"),
            "batch_id",
            pl.col(spec.time.name).alias("__event_time"),
            pl.col("ingested_at").alias("__ingested_at"),
        )
    )
    return (
        scan_table(uri)
        .filter((pl.col("model_version") == model_version) & pl.col("batch_id").is_in(batches))
        .join(records, on=["entity_id", "batch_id"], how="left")
        .sort(["__event_time", "__ingested_at", "scored_at"], nulls_last=False)
        .unique(subset="entity_id", keep="last", maintain_order=False)
        .drop("__event_time", "__ingested_at")
        .sort("entity_id")
        .collect()
    )


def sample_markdown(sample: pl.DataFrame | None) -> str:
    """A few scored rows with their reasons, as a markdown table (for Dagster metadata)."""
    if sample is None or sample.height == 0:
        return "_no rows_"
    lines = ["| entity_id | score | decision | reasons |", "|---|---|---|---|"]
    for row in sample.iter_rows(named=True):
        reasons = "; ".join(
            f"{r['feature']}={r['value']} ({r['contribution']:+.3f})" for r in row["reasons"]
        )
        lines.append(f"| {row['entity_id']} | {row['score']:.4f} | {row['decision']} | {reasons} |")
    return "\n".join(lines)
