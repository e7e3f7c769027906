"""Monitoring knobs, the champion as monitoring sees it, and the staleness decision.

:func:`is_stale` is a pure function: the drift and performance tables (or the rows of them that
matter), the champion's reference AUC and its age in batches in; a decision with its reasons out.
:func:`staleness` reads those inputs from the tables and the registry and calls it; the Dagster
``staleness_sensor`` and ``scoreloop monitor`` call that.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from pipelines.model_bundle import ModelMetadata, load_bundle
from pipelines.params import Params, load_params
from pipelines.registry import ChampionRef, resolve_champion
from pipelines.settings import Settings, get_settings

#: The pseudo-feature under which the score distribution's drift is recorded.
SCORE_FEATURE = "score"


class MonitoringError(RuntimeError):
    """Drift or performance cannot be computed for a batch; the message says why and what to do."""


class MonitoringParams(BaseModel):
    """``monitoring`` section of params.yaml."""

    model_config = ConfigDict(extra="forbid")

    psi_threshold: float = Field(0.2, gt=0, description="A feature with PSI above this drifted.")
    unseen_threshold: float = Field(
        0.01, ge=0, le=1, description="Share of rows with categories unseen in training."
    )
    score_psi_threshold: float = Field(0.2, gt=0, description="PSI of the score distribution.")
    auc_tolerance: float = Field(
        0.03, ge=0, description="Realised AUC may fall this far below the reference AUC."
    )
    window_batches: int = Field(3, ge=1, description="Staleness looks at the newest N batches.")
    min_drifted_features: int = Field(
        3, ge=1, description="A batch counts as drifted with at least this many drifted features."
    )
    min_drifted_batches: int = Field(
        2, ge=1, description="Retrain when this many batches of the window drifted."
    )
    max_batches_since_training: int = Field(
        12, ge=1, description="Retrain when the champion's newest training batch is this old."
    )
    min_labelled_rows: int = Field(
        100, ge=1, description="Performance of a batch with fewer labelled rows is not judged."
    )
    webhook_url: str | None = Field(
        None, description="Alerts are POSTed here too (SCORELOOP_ALERT_WEBHOOK_URL overrides)."
    )

    @classmethod
    def from_params(cls, params: Params) -> MonitoringParams:
        return cls.model_validate(params.section("monitoring"))


def monitoring_params(settings: Settings) -> MonitoringParams:
    return MonitoringParams.from_params(load_params(settings.params_path))


@dataclass(frozen=True)
class Champion:
    """The champion as monitoring needs it: its registry entry and its metadata."""

    ref: ChampionRef
    metadata: ModelMetadata

    @property
    def version(self) -> str:
        return self.ref.version


def current_champion(
    settings: Settings | None = None, champion: ChampionRef | None = None
) -> Champion | None:
    """The champion (``resolve_champion`` unless one is given) with its metadata; None if none."""
    settings = settings or get_settings()
    ref = champion or resolve_champion(settings)
    if ref is None:
        return None
    return Champion(ref=ref, metadata=load_bundle(ref.model_dir).metadata)


def training_batches(metadata: ModelMetadata) -> dict[str, list[str]]:
    """Batches of each split (train/validation/holdout) the model was trained on, if recorded.

    ``pipelines.training`` writes them as the ``training_set`` extra of the metadata.
    """
    extra = metadata.model_extra or {}
    splits = extra.get("training_set") or {}
    out: dict[str, list[str]] = {}
    if isinstance(splits, dict):
        for name, info in splits.items():
            if isinstance(info, dict) and isinstance(info.get("batches"), list):
                out[str(name)] = [str(b) for b in info["batches"]]
    return out


def batches_since_training(metadata: ModelMetadata, batches: list[str]) -> int | None:
    """How many of ``batches`` are newer than the newest batch the model was trained on.

    None when the metadata does not say which batches it was trained on.
    """
    seen = [b for split in training_batches(metadata).values() for b in split]
    if not seen:
        return None
    newest = max(seen)
    return sum(1 for b in set(batches) if b > newest)


def reference_auc(
    metadata: ModelMetadata, registry: Path | None = None
) -> tuple[float, str] | None:
    """The ROC AUC the champion is expected to reach, and where that figure comes from.

    In order: ``metrics["holdout_roc_auc"]``; the holdout AUC recorded in the registry's
    promotion decision for this version (``decisions/*.json``, primary metric ``roc_auc``);
    ``metrics["validation_roc_auc"]``. None when none is known.
    """
    metrics = metadata.metrics
    if "holdout_roc_auc" in metrics:
        return float(metrics["holdout_roc_auc"]), "metadata holdout_roc_auc"
    if registry is not None and metadata.version:
        folder = registry / "decisions"
        for path in sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []:
            try:
                record = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if (
                record.get("version") == metadata.version
                and record.get("primary_metric") == "roc_auc"
                and record.get("challenger_value") is not None
            ):
                return float(record["challenger_value"]), f"holdout AUC in {path.name}"
    if "validation_roc_auc" in metrics:
        return float(metrics["validation_roc_auc"]), "metadata validation_roc_auc"
    return None


@dataclass
class StalenessDecision:
    """Whether retraining is due, why, and the figures it was judged on."""

    stale: bool
    reasons: list[str]
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_stale(
    drift: pl.DataFrame,
    performance: pl.DataFrame,
    params: MonitoringParams,
    *,
    reference_auc: float | None,
    batches_since_training: int | None,
) -> StalenessDecision:
    """Decide whether the champion is stale (pure: no IO).

    Args:
        drift: drift-table rows of the champion (columns ``batch_id, feature, metric, drifted``).
        performance: performance-table rows of the champion (``batch_id, roc_auc, rows``).
        params: thresholds (``monitoring`` in params.yaml).
        reference_auc: the champion's expected AUC (holdout), None if unknown.
        batches_since_training: batches newer than the champion's training data, None if unknown.

    Stale when any of:

    * at least ``min_drifted_batches`` of the newest ``window_batches`` drift batches each have
      at least ``min_drifted_features`` drifted features (PSI or unseen share over threshold);
    * the mean realised AUC of the newest ``window_batches`` judged batches (with at least
      ``min_labelled_rows`` rows) is below ``reference_auc - auc_tolerance``;
    * ``batches_since_training > max_batches_since_training``.
    """
    reasons: list[str] = []
    details: dict[str, Any] = {}

    window = sorted(drift["batch_id"].unique().to_list())[-params.window_batches :]
    details["drift_window"] = window
    if window:
        features = (
            drift.filter(
                pl.col("batch_id").is_in(window)
                & pl.col("drifted")
                & (pl.col("feature") != SCORE_FEATURE)
            )
            .group_by("batch_id")
            .agg(pl.col("feature").unique().sort())
        )
        drifted_by_batch = {
            row["batch_id"]: row["feature"] for row in features.iter_rows(named=True)
        }
        details["drifted_features"] = drifted_by_batch
        drifted_batches = [
            b for b in window if len(drifted_by_batch.get(b, [])) >= params.min_drifted_features
        ]
        if len(drifted_batches) >= params.min_drifted_batches:
            names = sorted({f for b in drifted_batches for f in drifted_by_batch[b]})
            reasons.append(
                f"feature drift: {len(drifted_batches)} of the last {len(window)} batches "
                f"({', '.join(drifted_batches)}) have >= {params.min_drifted_features} drifted "
                f"features ({', '.join(names)})"
            )

    judged = performance.filter(
        pl.col("roc_auc").is_not_null() & (pl.col("rows") >= params.min_labelled_rows)
    ).sort("batch_id")
    recent = judged.tail(params.window_batches)
    if recent.height and reference_auc is not None:
        realised = float(recent["roc_auc"].mean())  # type: ignore[arg-type]
        floor = reference_auc - params.auc_tolerance
        details.update(realised_auc=round(realised, 6), auc_floor=round(floor, 6))
        details["performance_window"] = recent["batch_id"].to_list()
        if realised < floor:
            reasons.append(
                f"performance drop: mean realised AUC {realised:.4f} over batches "
                f"{', '.join(recent['batch_id'].to_list())} is below the reference "
                f"{reference_auc:.4f} - tolerance {params.auc_tolerance} = {floor:.4f}"
            )

    details["batches_since_training"] = batches_since_training
    if (
        batches_since_training is not None
        and batches_since_training > params.max_batches_since_training
    ):
        reasons.append(
            f"age: {batches_since_training} batches since the newest training batch "
            f"(max_batches_since_training {params.max_batches_since_training})"
        )
    return StalenessDecision(stale=bool(reasons), reasons=reasons, details=details)


def staleness(
    settings: Settings | None = None, champion: Champion | None = None
) -> StalenessDecision | None:
    """:func:`is_stale` on the tables and the registry as they are now; None without champion."""
    from pipelines.drift import read_drift
    from pipelines.ingest import accepted_batches
    from pipelines.performance import read_performance

    settings = settings or get_settings()
    champion = champion or current_champion(settings)
    if champion is None:
        return None
    params = monitoring_params(settings)
    drift = read_drift(settings).filter(pl.col("model_version") == champion.version)
    performance = read_performance(settings).filter(pl.col("model_version") == champion.version)
    auc = reference_auc(champion.metadata, settings.registry)
    accepted = accepted_batches(settings.tables, "records")
    decision = is_stale(
        drift,
        performance,
        params,
        reference_auc=auc[0] if auc else None,
        batches_since_training=batches_since_training(champion.metadata, accepted),
    )
    decision.details["champion_version"] = champion.version
    decision.details["reference_auc_source"] = auc[1] if auc else None
    decision.details["reference_auc"] = auc[0] if auc else None
    return decision
