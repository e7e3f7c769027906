"""On-demand scoring of one posted record with the snapshot's model.

The record is checked by the same pandera rules as a landed batch (``validate_batch``), turned
into model input by the same ``prepare_features``, and explained by the same SHAP reason codes as
batch scoring, so a record gets the score it would get in a scored batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from pipelines.errors import ScoreloopError
from pipelines.explain import reason_codes, shap_values
from pipelines.features import prepare_features
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


def predict_record(snapshot: Snapshot, record: Mapping[str, Any], top_k: int) -> dict[str, Any]:
    """Score and explain one record with the snapshot's model."""
    spec = snapshot.loaded.spec
    bundle = snapshot.loaded.bundle
    valid = record_frame(record, spec)
    features = prepare_features(valid, spec)
    classes = [str(c) for c in (bundle.model.classes_ if bundle.model.classes_ is not None else [])]
    positive = classes.index(str(spec.positive_label))
    proba = float(np.asarray(bundle.model.predict_proba(features, thread_count=1))[0, positive])
    explanation = shap_values(bundle.model, features, bundle.metadata.categorical, thread_count=1)
    sign = 1.0 if positive == 1 else -1.0
    reasons = reason_codes(features, sign * explanation.contributions, top_k).to_list()[0]
    threshold = float(bundle.metadata.threshold)
    return {
        "entity_id": record.get(spec.id.name),
        "score": proba,
        "decision": proba >= threshold,
        "threshold": threshold,
        "model_name": snapshot.manifest.model_name,
        "model_version": snapshot.manifest.model_version,
        "snapshot_id": snapshot.snapshot_id,
        "expected_value": sign * explanation.expected_value,
        "reasons": reasons,
    }
