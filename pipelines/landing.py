"""The landing folder and the ingest log, seen from the orchestrator (plain functions, no Dagster).

The Dagster sensor and assets in ``assets/ingestion.py`` are thin wrappers over these: which
files are new since the last look, which file holds a batch, what the ingest log says about it,
and the metadata an ingestion run reports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.ingest import (
    IngestResult,
    is_in_flight,
    landing_name_problem,
    parse_landing_name,
    printable_name,
    read_ingest_log,
)
from pipelines.tables import table_uri, table_version
from pipelines.validate import Kind, file_version

SUFFIXES = (".parquet", ".pq", ".csv")


@dataclass(frozen=True)
class LandedFile:
    """One batch or label file in the landing folder, with the stamp that says if it changed."""

    path: Path
    kind: Kind
    batch_id: str
    stamp: str  # "<mtime_ns>:<size>"

    @property
    def run_key(self) -> str:
        return f"{self.path.name}@{self.stamp}"


def load_cursor(cursor: str | None) -> dict[str, str]:
    """The sensor cursor (JSON: file name -> stamp); an empty or unreadable cursor starts afresh."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def dump_cursor(seen: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(seen.items())), separators=(",", ":"))


def scan_landing(landing: Path, seen: Mapping[str, str]) -> tuple[list[LandedFile], dict[str, str]]:
    """Files that are new or changed since ``seen``, in landing order, and the updated ``seen``.

    Only names that :func:`parse_landing_name` accepts count (temp files, hidden files and other
    names are ignored). A file that vanishes while we look is skipped. Raises
    ``FileNotFoundError`` when ``landing`` does not exist.
    """
    if not landing.is_dir():
        raise FileNotFoundError(f"landing folder {landing} does not exist")
    found: list[tuple[int, str, LandedFile]] = []
    for path in landing.iterdir():
        parsed = parse_landing_name(path)
        if parsed is None or not path.is_file():
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        stamp = f"{stat.st_mtime_ns}:{stat.st_size}"
        if seen.get(path.name) == stamp:
            continue
        found.append((stat.st_mtime_ns, path.name, LandedFile(path, parsed[0], parsed[1], stamp)))
    found.sort(key=lambda item: (item[0], item[1]))
    new = [item[2] for item in found]
    updated = dict(seen)
    updated.update({f.path.name: f.stamp for f in new})
    return new, updated


@dataclass(frozen=True)
class UnrecognisedFile:
    """A file in the landing folder that is not a batch or label file, and why."""

    name: str  # printable (undecodable bytes escaped)
    reason: str
    stamp: str

    @property
    def cursor_key(self) -> str:
        return f"?{self.name}"


def unrecognised_files(
    landing: Path, seen: Mapping[str, str]
) -> tuple[list[UnrecognisedFile], dict[str, str]]:
    """Files in ``landing`` that are new or changed since ``seen`` and are not batch or label
    files (hidden and in-flight ``.tmp-`` files aside), each with the reason, and the updated
    ``seen`` (so each is reported once per change). A vanishing file or folder is no error.
    """
    found: list[UnrecognisedFile] = []
    try:
        entries = list(landing.iterdir())
    except OSError:
        return [], dict(seen)
    for path in entries:
        if is_in_flight(path) or parse_landing_name(path) is not None:
            continue
        try:
            if not path.is_file():
                continue
            stat = path.stat()
        except OSError:
            continue
        name = printable_name(path)
        entry = UnrecognisedFile(
            name, landing_name_problem(path) or "", f"{stat.st_mtime_ns}:{stat.st_size}"
        )
        if seen.get(entry.cursor_key) != entry.stamp:
            found.append(entry)
    updated = dict(seen)
    updated.update({f.cursor_key: f.stamp for f in found})
    return sorted(found, key=lambda f: f.name), updated


def ingested_versions(table_root: str) -> dict[tuple[str, str], str]:
    """``{(source_file, data_version): status}`` of every ingestion that read its file."""
    seen: dict[tuple[str, str], str] = {}
    for kind in ("records", "labels"):
        log = read_ingest_log(table_root, kind)
        for row in log.filter(pl.col("data_version").is_not_null()).iter_rows(named=True):
            seen[(row["source_file"], row["data_version"])] = row["status"]
    return seen


def not_yet_ingested(files: list[LandedFile], table_root: str) -> list[LandedFile]:
    """The files whose exact content (md5) the ingest log has not recorded for that path.

    Lets a sensor started on a filled landing folder (after ``scoreloop demo``) skip what is
    already in the tables; a changed file has a new md5 and is ingested again.
    """
    if not files:
        return []
    done = ingested_versions(table_root)
    return [f for f in files if (str(f.path), _md5_or_none(f.path)) not in done]


def _md5_or_none(path: Path) -> str | None:
    try:
        return file_version(path)
    except OSError:
        return None


def find_landed(landing: Path, kind: Kind, batch_id: str) -> Path:
    """The landed file of ``batch_id`` and ``kind`` (the newest if several formats landed)."""
    prefix = "batch" if kind == "records" else "labels"
    candidates = [
        path for suffix in SUFFIXES if (path := landing / f"{prefix}_{batch_id}{suffix}").is_file()
    ]
    if not candidates:
        raise FileNotFoundError(
            f"no {kind} file for batch {batch_id!r} in {landing} "
            f"(expected {prefix}_{batch_id}.parquet or .csv)"
        )
    return max(candidates, key=lambda p: (p.stat().st_mtime_ns, p.name))


def ingest_log_entry(table_root: str, kind: Kind, batch_id: str) -> dict[str, Any] | None:
    """The latest ingest-log row for a batch (status, reject_rate, error, ...), or None."""
    log = read_ingest_log(table_root, kind, batch_id)
    if log.is_empty():
        return None
    return log.sort("processed_at").row(-1, named=True)


def markdown_table(frame: pl.DataFrame, empty: str = "_none_") -> str:
    """A small frame as a GitHub markdown table (what Dagster shows for ``MetadataValue.md``)."""
    if frame.is_empty():
        return empty

    def cell(value: object) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(frame.columns) + " |",
        "|" + "---|" * frame.width,
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in frame.iter_rows()),
    ]
    return "\n".join(lines)


def ingest_report(result: IngestResult, table_root: str) -> dict[str, Any]:
    """Plain metadata of one ingestion: counts, status, reasons, schema and table versions."""
    v = result.validation
    target = "validated" if result.kind == "records" else "labels"
    quarantine = "quarantine" if result.kind == "records" else "labels_quarantine"
    return {
        "status": v.status,
        "source_file": str(result.path),
        "rows": v.rows,
        "accepted": v.accepted,
        "rejected": v.rejected,
        # a refused batch quarantines every row, not only the rejected ones
        "quarantined": v.quarantine.height,
        "reject_rate": v.reject_rate,
        "max_reject_rate": v.max_reject_rate,
        "top_reasons": markdown_table(v.top_reasons()),
        "ignored_columns": ", ".join(v.ignored_columns) or "none",
        "schema": {name: str(dtype) for name, dtype in v.valid_rows.collect_schema().items()},
        "table_uri": table_uri(table_root, target),
        "table_version": table_version(table_uri(table_root, target)),
        "quarantine_uri": table_uri(table_root, quarantine),
        "quarantine_version": table_version(table_uri(table_root, quarantine)),
        "data_version": result.data_version,
    }
