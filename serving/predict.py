"""On-demand scoring of one posted record with the snapshot's model.

The record is checked by the same pandera rules as a landed batch (``validate_batch``) and
scored by the same scorer as batch scoring (:func:`pipelines.score.score_frame`: features,
positive-class probability, decision, SHAP reasons), with the ``top_k`` the snapshot's scores
were made with, so a record gets the score and reasons it would get in a scored batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from pipelines.errors import ScoreloopError
from pipelines.score import score_frame
from pipelines.spec import DatasetSpec
from pipelines.validate import validate_batch
from serving.store import Snapshot

#: Stand-ins for the id and event-time columns when a record omits them (they are not features).
PLACEHOLDER = {"int": "0", "float": "0", "string": "predict", "bool": "false"}


@dataclass(frozen=True)
class FieldProblem:
    field: str
    rule: str
    value: str | None


class RecordError(ScoreloopError, ValueError):
    """A posted record breaks the dataset spec; ``problems`` names each field and rule."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.rule} (value {p.value!r})" for p in problems))


def _as_text(name: str, value: Any, problems: list[FieldProblem]) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    problems.append(FieldProblem(name, "scalar_value", repr(value)[:100]))
    return None


def record_frame(record: Mapping[str, Any], spec: DatasetSpec) -> pl.DataFrame:
    """The record as a one-row typed frame of the spec's record columns, validated.

    Raises:
        RecordError: unknown fields, non-scalar values, or any spec rule failing.
    """
    allowed = {*spec.record_columns, spec.target.name}
    problems = [FieldProblem(name, "unknown_field", None) for name in record if name not in allowed]
    row: dict[str, str | None] = {}
    for key in (spec.id, spec.time):
        given = record.get(key.name)
        row[key.name] = (
            _as_text(key.name, given, problems) if given is not None else PLACEHOLDER[key.dtype]
        )
    for column in spec.features:
        row[column.name] = _as_text(column.name, record.get(column.name), problems)
    if any(p.rule == "scalar_value" for p in problems):
        raise RecordError(problems)
    frame = pl.DataFrame([row], schema=dict.fromkeys(row, pl.String))
    result = validate_batch(
        frame, spec, batch_id="predict", source_file="request", max_reject_rate=1.0
    )
    if result.quarantine.height:
        reasons = result.quarantine["reasons"][0].to_list()
        problems += [FieldProblem(r["column"], r["check"], r["value"]) for r in reasons]
    if problems:
        raise RecordError(problems)
    return result.valid


def predict_record(snapshot: Snapshot, record: Mapping[str, Any]) -> dict[str, Any]:
    """Score and explain one record with the snapshot's model and the snapshot's ``top_k``."""
    spec = snapshot.loaded.spec
    manifest = snapshot.manifest
    valid = record_frame(record, spec)
    scored = score_frame(
        snapshot.loaded.bundle,
        valid,
        spec,
        top_k=manifest.top_k,
        thread_count=1,
        model_version=manifest.model_version,
    ).row(0, named=True)
    return scored | {
        # The record's own id (None when omitted), not the placeholder validation needed.
        "entity_id": record.get(spec.id.name),
        "model_name": manifest.model_name,
        "snapshot_id": snapshot.snapshot_id,
    }
