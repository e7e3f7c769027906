"""Shadow scoring: before promotion, the challenger scores the newest batch beside the champion.

The comparison is reported evidence, not a gate rule: the score PSI between the two models'
score distributions on the same rows (the champion's scores binned as the reference, as the
score-drift monitor does), the share of rows on which both take the same decision at their own
thresholds, and the mean score delta (challenger - champion). :func:`shadow_compare` is pure;
:func:`shadow_newest_batch` reads the newest accepted batch's validated rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from pipelines.drift import numeric_psi, score_profile
from pipelines.ingest import VALIDATED, accepted_batches, validated_schema
from pipelines.model_bundle import ModelBundle
from pipelines.score import score_frame
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec
from pipelines.tables import read_batches, table_uri


@dataclass(frozen=True)
class ShadowComparison:
    """The challenger and the champion on the same rows."""

    batch_id: str
    rows: int
    challenger_version: str | None
    champion_version: str | None
    #: PSI of the challenger's scores over the champion's score bins.
    score_psi: float
    #: Share of rows where both models decide the same (each at its own threshold).
    decision_agreement: float
    #: Mean of challenger score - champion score.
    mean_score_delta: float
    challenger_decision_rate: float
    champion_decision_rate: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shadow_compare(
    challenger: ModelBundle,
    champion: ModelBundle,
    frame: pl.DataFrame,
    spec: DatasetSpec,
    *,
    batch_id: str,
    challenger_version: str | None = None,
    thread_count: int = -1,
) -> ShadowComparison | None:
    """Score ``frame`` (the spec's id and features) with both models and compare (no table IO).

    None when the frame has no rows.
    """
    if frame.height == 0:
        return None
    version = challenger_version or challenger.metadata.version or "challenger"
    new = score_frame(
        challenger,
        frame,
        spec,
        with_reasons=False,
        model_version=version,
        thread_count=thread_count,
    )
    old = score_frame(
        champion,
        frame,
        spec,
        with_reasons=False,
        model_version=champion.metadata.version or "champion",
        thread_count=thread_count,
    )
    new_scores = new["score"].to_numpy()
    old_scores = old["score"].to_numpy()
    return ShadowComparison(
        batch_id=batch_id,
        rows=frame.height,
        challenger_version=version,
        champion_version=champion.metadata.version,
        score_psi=round(numeric_psi(new["score"], score_profile(old_scores)), 6),
        decision_agreement=round(float((new["decision"] == old["decision"]).mean()), 6),  # type: ignore[arg-type]
        mean_score_delta=round(float(np.mean(new_scores - old_scores)), 6),
        challenger_decision_rate=round(float(new["decision"].mean()), 6),  # type: ignore[arg-type]
        champion_decision_rate=round(float(old["decision"].mean()), 6),  # type: ignore[arg-type]
    )


def shadow_newest_batch(
    settings: Settings,
    spec: DatasetSpec,
    challenger: ModelBundle,
    champion: ModelBundle,
    *,
    challenger_version: str | None = None,
) -> ShadowComparison | None:
    """:func:`shadow_compare` on the newest accepted batch's validated rows (None without one)."""
    batches = accepted_batches(settings.tables, "records")
    if not batches:
        return None
    newest = batches[-1]
    schema = validated_schema(spec)
    frame = read_batches(
        table_uri(settings.tables, VALIDATED),
        [newest],
        {name: schema[name] for name in (spec.id.name, *spec.feature_names)},
        storage_options=settings.storage_options(),
    )
    return shadow_compare(
        challenger,
        champion,
        frame,
        spec,
        batch_id=newest,
        challenger_version=challenger_version,
    )
