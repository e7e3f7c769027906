"""Monitoring knobs, errors and the champion as monitoring sees it (its reference AUC and age);
drift, performance and staleness (:mod:`pipelines.staleness`) build on these."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.drift_stats import DEFAULT_THRESHOLDS, Method
from pipelines.errors import ScoreloopError
from pipelines.model_bundle import ModelMetadata, load_bundle
from pipelines.params import Params, load_params
from pipelines.registry import ChampionRef, resolve_champion
from pipelines.settings import Settings, get_settings

#: The pseudo-feature under which the score distribution's drift is recorded.
SCORE_FEATURE = "score"
#: The pseudo-feature of the dataset-level drift row (share of drifted features).
DATASET_FEATURE = "__dataset__"


class MonitoringError(ScoreloopError, RuntimeError):
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
    retrain_min_labelled_batches: int = Field(
        6,
        ge=0,
        description="The staleness sensor requests retraining only once this many labelled "
        "batches are newer than the champion's training data: a challenger needs labelled data "
        "of the new regime for its holdout (2), validation (1) and a few training batches (3).",
    )
    retrain_cooldown_batches: int = Field(
        6,
        ge=0,
        description="After a retraining request, the staleness sensor requests none until this "
        "many newer batches are accepted (one retrain per drift episode).",
    )
    min_labelled_rows: int = Field(
        100, ge=1, description="Performance of a batch with fewer labelled rows is not judged."
    )
    drift_method: Method | Literal["auto"] = Field(
        "auto",
        description="Drift statistic of every feature: auto (Evidently's rule) or one method.",
    )
    drift_methods: dict[str, Method] = Field(
        default_factory=dict, description="Per-feature override of drift_method."
    )
    drift_thresholds: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_THRESHOLDS),
        description="Threshold of each statistic (ks, chi2: p-value; wasserstein, "
        "jensenshannon: distance); psi uses psi_threshold.",
    )
    drift_share: float = Field(
        0.5, gt=0, le=1, description="The dataset drifts when this share of features drifts."
    )
    estimated_auc_tolerance: float | None = Field(
        None,
        ge=0,
        description="Stale when the mean estimated (CBPE) AUC of the window falls this far "
        "below the reference AUC; null: estimated performance never makes the champion stale.",
    )
    webhook_url: str | None = Field(
        None, description="Alerts are POSTed here too (SCORELOOP_ALERT_WEBHOOK_URL overrides)."
    )

    @classmethod
    def from_params(cls, params: Params) -> MonitoringParams:
        return cls.model_validate(params.section("monitoring"))

    def method_of(self, feature: str) -> Method | Literal["auto"]:
        """The drift statistic configured for ``feature``."""
        return self.drift_methods.get(feature, self.drift_method)

    def threshold_of(self, method: str) -> float:
        """The threshold of a drift statistic (Evidently's default unless configured)."""
        if method == "psi":
            return self.psi_threshold
        return float(self.drift_thresholds.get(method, DEFAULT_THRESHOLDS[method]))

    def judges(self, labelled_rows: int) -> bool:
        """Whether realised performance on this many labelled rows is judged (alerts, checks)."""
        return labelled_rows >= self.min_labelled_rows


def monitoring_params(settings: Settings) -> MonitoringParams:
    return MonitoringParams.from_params(load_params(settings.params_path))


def plots_dir(settings: Settings) -> Path:
    """Where the monitoring PNGs (drift and AUC over batches) are kept."""
    return settings.state_root / "monitoring" / "plots"


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

    ``pipelines.train`` writes them as the ``training_set`` extra of the metadata.
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
