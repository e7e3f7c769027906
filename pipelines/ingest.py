"""Ingest one landed file: read, validate, and write validated rows, quarantine and the batch log.

This is the one implementation behind the Dagster assets and ``scoreloop ingest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from pipelines.spec import DatasetSpec
from pipelines.tables import read_table, table_uri, write_batch
from pipelines.validate import (
    QUARANTINE_SCHEMA,
    BatchReadError,
    Kind,
    ValidationResult,
    file_version,
    read_batch_file,
    validate_batch,
)

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


def parse_landing_name(path: Path) -> tuple[Kind, str] | None:
    """(kind, batch id) of a landed file, or None for a file that is not a batch or label file."""
    match = FILE_PATTERN.match(path.name)
    if match is None:
        return None
    return ("records" if match["kind"] == "batch" else "labels"), match["batch"]


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
    """The ingest log of ``kind`` (one row per ingestion attempt), optionally of one batch; empty
    (with the log's schema) before the first ingestion. The one reader of the log table."""
    return read_table(log_uri(table_root, kind), batch_id=batch_id, schema=LOG_SCHEMA)


@dataclass
class IngestResult:
    """What happened to one landed file."""

    path: Path
    kind: Kind
    batch_id: str
    data_version: str
    validation: ValidationResult

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
    """Append one ingest log row: the validation ``result``, or a failure with its ``error``."""
    row = {
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
    write_batch(log_uri(root, kind), frame, batch_id, LOG_SCHEMA, table=INGEST_LOG)


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
    now = datetime.now(UTC)
    try:
        raw = read_batch_file(path, spec, kind)
        version = file_version(path)
        result = validate_batch(
            raw,
            spec,
            batch_id=batch_id,
            source_file=str(path),
            max_reject_rate=max_reject_rate,
            kind=kind,
            now=now,
        )
    except BatchReadError as exc:
        _log(table_root, kind, batch_id, path, now, error=str(exc))
        raise
    target = VALIDATED if kind == "records" else LABELS
    schema = validated_schema(spec) if kind == "records" else labels_schema(spec)
    valid = result.valid.with_columns(
        pl.lit(batch_id).alias("batch_id"),
        pl.lit(version).alias("data_version"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
    )
    quarantine_uri = table_uri(
        table_root, QUARANTINE if kind == "records" else f"{LABELS}_{QUARANTINE}"
    )
    write_batch(quarantine_uri, result.quarantine, batch_id, QUARANTINE_SCHEMA, table=QUARANTINE)
    write_batch(table_uri(table_root, target), valid, batch_id, schema, table=target)
    _log(table_root, kind, batch_id, path, now, data_version=version, result=result)
    return IngestResult(
        path=path, kind=kind, batch_id=batch_id, data_version=version, validation=result
    )


def accepted_batches(table_root: str, kind: Kind = "records") -> list[str]:
    """Batch ids whose latest ingestion was accepted (what downstream steps may use)."""
    log = read_table(log_uri(table_root, kind), schema=LOG_SCHEMA)
    return sorted(log.filter(pl.col("status") == "accepted")["batch_id"].to_list())
