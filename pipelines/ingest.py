"""Ingest one landed file: read, validate, and write validated rows, quarantine and the batch log.

This is the one implementation behind the Dagster assets and ``scoreloop ingest``.

One batch is one unit: its quarantine, validated and ingest-log commits are made under a lock
on the batch (local tables), each retried when a concurrent writer's commit wins, and the log row
is committed last, so a batch counts as accepted only once its rows are in. A process killed
between the commits leaves the previous log row (and what readers trust) in place; ingesting
the file again heals. The log keeps a batch's last accepted outcome beside a later failed or
refused attempt: a corrupt re-delivery never demotes an accepted batch (the attempt alerts).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.crash_points import crash_point
from pipelines.errors import ScoreloopError
from pipelines.spec import DatasetSpec
from pipelines.tables import (
    read_table,
    scan_table,
    table_exists,
    table_uri,
    write_batch,
    write_batch_stream,
)
from pipelines.validate import (
    CHUNK_ROWS,
    QUARANTINE_SCHEMA,
    BatchReadError,
    Kind,
    ValidationResult,
    file_version,
    validate_file,
)

log = logging.getLogger(__name__)

VALIDATED = "validated"
QUARANTINE = "quarantine"
LABELS = "labels"
INGEST_LOG = "ingest_log"

# batch_2016-03.parquet holds records of batch 2016-03; labels_2016-03.csv their labels.
FILE_PATTERN = re.compile(
    r"^(?P<kind>batch|labels)_(?P<batch>[A-Za-z0-9][A-Za-z0-9_.-]*)\.(?:parquet|pq|csv)$"
)

LOG_SCHEMA: dict[str, pl.DataType] = {
    "batch_id": pl.String(),
    "kind": pl.String(),
    "source_file": pl.String(),
    "data_version": pl.String(),
    "status": pl.String(),  # accepted | refused | failed
    "rows": pl.Int64(),
    "accepted": pl.Int64(),
    "rejected": pl.Int64(),
    "reject_rate": pl.Float64(),
    "error": pl.String(),
    "ignored_columns": pl.List(pl.String()),
    "processed_at": pl.Datetime("us", "UTC"),
}


class IngestWriteError(ScoreloopError, RuntimeError):
    """Writing a batch's tables failed (disk full, storage error): the last commits stand."""


def parse_landing_name(path: Path) -> tuple[Kind, str] | None:
    """(kind, batch id) of a landed file, or None for a file that is not a batch or label file."""
    match = FILE_PATTERN.match(path.name)
    if match is None:
        return None
    return ("records" if match["kind"] == "batch" else "labels"), match["batch"]


def is_in_flight(path: Path) -> bool:
    """Hidden files, among them a writer's ``.tmp-`` file before its rename, are not deliveries."""
    return path.name.startswith(".")


def printable_name(path: Path) -> str:
    """``path``'s name, safe to print and store whatever bytes it holds (undecodable bytes as
    ``\\xff`` escapes)."""
    return os.fsencode(path.name).decode("utf-8", "backslashreplace")


def landing_name_problem(path: Path) -> str | None:
    """Why ``path`` is not a batch or label file name (None when it is one), and how to fix it."""
    if FILE_PATTERN.match(path.name):
        return None
    name = printable_name(path)
    stem, dot, suffix = name.rpartition(".")
    hints = []
    if not name.startswith(("batch_", "labels_")):
        hints.append("it does not start with batch_ or labels_")
    if not dot or suffix not in {"parquet", "pq", "csv"}:
        hints.append("its suffix is not .parquet, .pq or .csv")
    if not path.name.isascii() or not path.name.isprintable():
        hints.append("it has non-ASCII or unprintable characters")
    if any(c.isspace() for c in stem):
        hints.append("it has spaces")
    if not hints:
        hints.append("the batch id must start with a letter or digit")
    return (
        f"name '{name}' is not batch_<id>.parquet|pq|csv or labels_<id>.parquet|pq|csv with an "
        f"id of letters, digits, '_', '.' and '-': {'; '.join(hints)}; rename the file"
    )


def validated_schema(spec: DatasetSpec) -> dict[str, pl.DataType]:
    return {
        **spec.record_schema,
        "batch_id": pl.String(),
        "data_version": pl.String(),
        "ingested_at": pl.Datetime("us", "UTC"),
    }


def labels_schema(spec: DatasetSpec) -> dict[str, pl.DataType]:
    return {
        **spec.label_schema,
        "batch_id": pl.String(),
        "data_version": pl.String(),
        "ingested_at": pl.Datetime("us", "UTC"),
    }


def log_uri(root: str, kind: Kind) -> str:
    return table_uri(root, INGEST_LOG if kind == "records" else f"{LABELS}_{INGEST_LOG}")


def read_ingest_log(
    table_root: str, kind: Kind = "records", batch_id: str | None = None
) -> pl.DataFrame:
    """The ingest log of ``kind``, optionally of one batch; empty (with the log's schema) before
    the first ingestion. The one reader of the log table.

    A batch has one row, its latest attempt, or two when that attempt failed or was refused
    after an accepted ingestion: the attempt and the last accepted outcome, which still holds.
    """
    return read_table(log_uri(table_root, kind), batch_id=batch_id, schema=LOG_SCHEMA)


def batch_outcomes(table_root: str, kind: Kind = "records") -> pl.DataFrame:
    """One log row per batch: its last accepted outcome if it has one, else its latest attempt.

    What readers of "accepted batches" use; :func:`pipelines.landing.ingest_log_entry` gives the
    latest attempt instead (what alerts and the Dagster checks report).
    """
    return (
        read_ingest_log(table_root, kind)
        .sort([pl.col("status") == "accepted", pl.col("processed_at")])
        .unique(subset="batch_id", keep="last", maintain_order=False)
        .sort("batch_id")
    )


@dataclass
class IngestResult:
    """What happened to one landed file."""

    path: Path
    kind: Kind
    batch_id: str
    data_version: str
    validation: ValidationResult
    #: Ids of this batch already present in other batches of the validated table (flagged; the
    #: serving rule for them is "latest by event time", see ``scores_table.latest_scores``).
    duplicate_ids: int = 0
    #: Source file of the accepted ingestion kept in place of this refused re-delivery, if any.
    kept: str | None = None

    @property
    def status(self) -> str:
        return self.validation.status


def _log(
    root: str,
    kind: Kind,
    batch_id: str,
    path: Path,
    now: datetime,
    *,
    data_version: str | None = None,
    result: ValidationResult | None = None,
    error: str | None = None,
) -> None:
    """Record one attempt: the validation ``result``, or a failure with its ``error``.

    The batch's partition is rewritten with the attempt and, when the attempt is not accepted,
    the batch's last accepted row (so a bad re-delivery never hides the good outcome).
    """
    row: dict[str, Any] = {
        "batch_id": batch_id,
        "kind": kind,
        "source_file": str(path),
        "data_version": data_version,
        "status": result.status if result is not None else "failed",
        "rows": result.rows if result is not None else None,
        "accepted": result.accepted if result is not None else 0,
        "rejected": result.rejected if result is not None else None,
        "reject_rate": result.reject_rate if result is not None else None,
        "error": error,
        "ignored_columns": result.ignored_columns if result is not None else [],
        "processed_at": now,
    }
    frame = pl.DataFrame([row], schema=LOG_SCHEMA)
    good = _last_good(root, kind, batch_id)
    if row["status"] != "accepted" and good is not None:
        frame = pl.concat([good, frame])
    write_batch(log_uri(root, kind), frame, batch_id, LOG_SCHEMA, table=INGEST_LOG)


def _last_good(root: str, kind: Kind, batch_id: str) -> pl.DataFrame | None:
    """The batch's accepted log row (one row), or None."""
    good = read_ingest_log(root, kind, batch_id).filter(pl.col("status") == "accepted")
    return good.sort("processed_at").tail(1) if good.height else None


@contextlib.contextmanager
def batch_lock(table_root: str, kind: Kind, batch_id: str) -> Iterator[None]:
    """Hold an exclusive lock on one batch's ingestion (local tables), so that two ingests of
    the same batch id run one after the other and the tables end from one file.

    The lock is an ``flock`` on a file under ``<table root>/.locks``: the kernel drops it when
    the holder dies, so a killed ingest never leaves it held. Object-store roots rely on Delta's
    commit conflicts alone (the last writer of each table wins).
    """
    if "://" in table_root and not table_root.startswith("file://"):
        yield
        return
    folder = Path(table_root.removeprefix("file://")) / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{kind}/{batch_id}".encode()).hexdigest()[:32]
    with (folder / f"{kind}-{key}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ingest_file(
    path: Path,
    spec: DatasetSpec,
    table_root: str,
    *,
    max_reject_rate: float,
    kind: Kind | None = None,
    batch_id: str | None = None,
) -> IngestResult:
    """Validate one landed file and write its batch to the tables (replacing any earlier run).

    Raises :class:`BatchReadError` when the file cannot be read; the failure is recorded in the
    ingest log and no other table is touched, so readers still see the last good state.
    """
    path = Path(path)
    parsed = parse_landing_name(path)
    if kind is None or batch_id is None:
        if parsed is None:
            raise BatchReadError(
                path, "name must look like batch_<id>.parquet|csv or labels_<id>.parquet|csv"
            )
        kind = kind or parsed[0]
        batch_id = batch_id or parsed[1]
    with batch_lock(table_root, kind, batch_id):
        return _ingest_unit(path, spec, table_root, max_reject_rate, kind, batch_id)


def _ingest_unit(
    path: Path,
    spec: DatasetSpec,
    table_root: str,
    max_reject_rate: float,
    kind: Kind,
    batch_id: str,
) -> IngestResult:
    now = datetime.now(UTC)
    try:
        version = file_version(path)
        result = validate_file(
            path, spec, batch_id=batch_id, max_reject_rate=max_reject_rate, kind=kind, now=now
        )
    except BatchReadError as exc:
        _log(table_root, kind, batch_id, path, now, error=str(exc))
        raise
    with result:  # the spilled chunks go, whichever way this ends
        crash_point("ingest:validated")
        good = _last_good(table_root, kind, batch_id)
        if result.status != "accepted" and good is not None:
            kept = str(good["source_file"][0])
            error = (
                f"re-delivery refused (reject rate {result.reject_rate:.2%} > "
                f"{max_reject_rate}); the accepted ingestion of {kept} (data version "
                f"{good['data_version'][0]}) is kept"
            )
            _log(
                table_root,
                kind,
                batch_id,
                path,
                now,
                data_version=version,
                result=result,
                error=error,
            )
            return IngestResult(path, kind, batch_id, version, result, kept=kept)
        return _commit(table_root, spec, path, kind, batch_id, version, result, now)


def _commit(
    table_root: str,
    spec: DatasetSpec,
    path: Path,
    kind: Kind,
    batch_id: str,
    version: str,
    result: ValidationResult,
    now: datetime,
) -> IngestResult:
    """Quarantine, then the valid rows (streamed from validation's spill), then the log."""
    target = VALIDATED if kind == "records" else LABELS
    schema = validated_schema(spec) if kind == "records" else labels_schema(spec)
    valid = result.valid_rows.with_columns(
        pl.lit(batch_id).alias("batch_id"),
        pl.lit(version).alias("data_version"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
    )
    duplicates = (
        _ids_in_other_batches(table_root, spec, valid, batch_id) if kind == "records" else 0
    )
    quarantine_uri = table_uri(
        table_root, QUARANTINE if kind == "records" else f"{LABELS}_{QUARANTINE}"
    )
    try:
        write_batch(
            quarantine_uri, result.quarantine, batch_id, QUARANTINE_SCHEMA, table=QUARANTINE
        )
        crash_point("ingest:quarantine-committed")
        write_batch_stream(
            table_uri(table_root, target),
            lambda: valid.collect_batches(chunk_size=CHUNK_ROWS),
            batch_id,
            schema,
            table=target,
        )
        crash_point("ingest:table-committed")
        _log(table_root, kind, batch_id, path, now, data_version=version, result=result)
    except ScoreloopError:
        raise
    except Exception as exc:  # disk full, storage errors: say so, and record the attempt if we can
        message = (
            f"batch {batch_id}: writing the tables under {table_root} failed "
            f"({type(exc).__name__}: {exc}); the last committed state stands, "
            "fix the cause and ingest the file again"
        )
        try:
            _log(table_root, kind, batch_id, path, now, data_version=version, error=message)
        except Exception as again:
            log.warning(
                "batch %s: the failed attempt could not be logged either: %s", batch_id, again
            )
        raise IngestWriteError(message) from exc
    crash_point("ingest:logged")
    if duplicates:
        log.warning(
            "batch %s: %d id(s) already in other batches; serving keeps each id's latest by "
            "event time",
            batch_id,
            duplicates,
        )
    return IngestResult(path, kind, batch_id, version, result, duplicate_ids=duplicates)


def _ids_in_other_batches(
    table_root: str, spec: DatasetSpec, valid: pl.LazyFrame, batch_id: str
) -> int:
    """How many ids of ``valid`` the validated table already holds under another batch id."""
    uri = table_uri(table_root, VALIDATED)
    if not table_exists(uri):
        return 0
    id_name = spec.id.name
    others = (
        scan_table(uri)
        .filter(pl.col("batch_id") != batch_id)
        .select(pl.col(id_name))
        .join(valid.select(pl.col(id_name)), on=id_name, how="semi")
        .unique()
        .select(pl.len())
        .collect()
    )
    return int(others.item())


def accepted_batches(table_root: str, kind: Kind = "records") -> list[str]:
    """Batch ids with an accepted outcome in the log (what downstream steps may use)."""
    outcomes = batch_outcomes(table_root, kind)
    return sorted(outcomes.filter(pl.col("status") == "accepted")["batch_id"].to_list())
