"""Staleness: is the champion due for retraining? A pure decision (:func:`is_stale`) over the
drift and performance tables, and :func:`staleness` that reads them as they are now.

:func:`retraining_request` is the staleness sensor's decision (pure): whether to request a
retraining run, under which run key and tags, with which alert; :func:`staleness_trigger` feeds
it the tables as they are now. The sensor only delivers what it returns."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from pipelines.alerts import Alert, stale_alert
from pipelines.drift import read_drift
from pipelines.estimate import read_estimated
from pipelines.ingest import accepted_batches
from pipelines.monitoring import (
    DATASET_FEATURE,
    SCORE_FEATURE,
    Champion,
    MonitoringParams,
    batches_since_training,
    current_champion,
    monitoring_params,
    reference_auc,
)
from pipelines.performance import read_performance
from pipelines.settings import Settings, get_settings

#: Tags of a retraining run the staleness sensor requests.
TRIGGER_TAG = "scoreloop/trigger"
STALE_CHAMPION_TAG = "scoreloop/stale_champion"
REASONS_TAG = "scoreloop/stale_reasons"
#: Run tag values are kept short; the full reasons are in the alert.
MAX_TAG = 1000


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
    estimated: pl.DataFrame | None = None,
) -> StalenessDecision:
    """Decide whether the champion is stale (pure: no IO).

    Args:
        drift: drift-table rows of the champion (columns ``batch_id, feature, metric, drifted``).
        performance: performance-table rows of the champion (``batch_id, roc_auc, rows``).
        params: thresholds (``monitoring`` in params.yaml).
        reference_auc: the champion's expected AUC (holdout), None if unknown.
        batches_since_training: batches newer than the champion's training data, None if unknown.
        estimated: estimated-performance rows of the champion (``batch_id, estimated_roc_auc``).

    Stale when any of:

    * at least ``min_drifted_batches`` of the newest ``window_batches`` drift batches each have
      at least ``min_drifted_features`` drifted features (PSI or unseen share over threshold);
    * the mean realised AUC of the newest ``window_batches`` judged batches (with at least
      ``min_labelled_rows`` rows) is below ``reference_auc - auc_tolerance``;
    * ``batches_since_training > max_batches_since_training``;
    * ``estimated_auc_tolerance`` is set and the mean estimated (CBPE) AUC of the newest
      ``window_batches`` estimated batches is below ``reference_auc - estimated_auc_tolerance``
      (labels need not have landed).
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
                & ~pl.col("feature").is_in([SCORE_FEATURE, DATASET_FEATURE])
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

    tolerance = params.estimated_auc_tolerance
    if estimated is not None and tolerance is not None and reference_auc is not None:
        newest = (
            estimated.filter(pl.col("estimated_roc_auc").is_not_null())
            .sort("batch_id")
            .tail(params.window_batches)
        )
        if newest.height:
            mean = float(newest["estimated_roc_auc"].mean())  # type: ignore[arg-type]
            floor = reference_auc - tolerance
            details.update(estimated_auc=round(mean, 6), estimated_auc_floor=round(floor, 6))
            if mean < floor:
                reasons.append(
                    f"estimated performance drop: mean estimated (CBPE) AUC {mean:.4f} over "
                    f"batches {', '.join(newest['batch_id'].to_list())} is below the reference "
                    f"{reference_auc:.4f} - estimated_auc_tolerance {tolerance} = {floor:.4f}"
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
    settings = settings or get_settings()
    champion = champion or current_champion(settings)
    if champion is None:
        return None
    params = monitoring_params(settings)
    drift = read_drift(settings).filter(pl.col("model_version") == champion.version)
    performance = read_performance(settings).filter(pl.col("model_version") == champion.version)
    estimated = read_estimated(settings).filter(pl.col("model_version") == champion.version)
    auc = reference_auc(champion.metadata, settings.registry)
    accepted = accepted_batches(settings.tables, "records")
    decision = is_stale(
        drift,
        performance,
        params,
        reference_auc=auc[0] if auc else None,
        batches_since_training=batches_since_training(champion.metadata, accepted),
        estimated=estimated,
    )
    decision.details["champion_version"] = champion.version
    decision.details["reference_auc_source"] = auc[1] if auc else None
    decision.details["reference_auc"] = auc[0] if auc else None
    return decision


@dataclass(frozen=True)
class TriggerCursor:
    """The staleness sensor's cursor (stored as JSON): its last request's run key and the newest
    accepted batch when it made it (the start of the cooldown)."""

    last_run_key: str | None = None
    last_request_batch: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> TriggerCursor:
        """The cursor a sensor stored (None or empty: nothing requested yet). A plain run key
        (what the sensor stored before the cursor was JSON) is read as the last run key."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return cls(last_run_key=text)
        if not isinstance(data, dict):
            return cls(last_run_key=text)
        return cls(data.get("last_run_key"), data.get("last_request_batch"))

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class TriggerRules:
    """When a stale champion may be retrained (``monitoring`` in params.yaml)."""

    #: Labelled batches newer than the champion's training data needed before a request.
    min_labelled_batches: int = 0
    #: Accepted batches after a request before the next one may be made.
    cooldown_batches: int = 0

    @classmethod
    def from_params(cls, params: MonitoringParams) -> TriggerRules:
        return cls(params.retrain_min_labelled_batches, params.retrain_cooldown_batches)


@dataclass(frozen=True)
class RetrainingRequest:
    """Request one retraining run: its run key, tags, alert and the cursor to store."""

    run_key: str
    tags: dict[str, str]
    alert: Alert
    cursor: str = ""


@dataclass(frozen=True)
class NoRetraining:
    """No retraining run is requested, and why."""

    reason: str


def retraining_request(
    decision: StalenessDecision | None,
    newest_batch: str | None,
    cursor: str | None,
    *,
    accepted: Sequence[str] = (),
    labelled_since_training: int | None = None,
    rules: TriggerRules = TriggerRules(),
) -> RetrainingRequest | NoRetraining:
    """Whether the staleness sensor requests retraining (pure: no IO).

    One request per drift episode: a stale champion is retrained once at least
    ``rules.min_labelled_batches`` labelled batches are newer than its training data (before
    that, a challenger would learn the old regime and be judged on it), and no second request
    follows within ``rules.cooldown_batches`` accepted batches of the last one (the cursor
    remembers where it was made), whatever the gate decides. The run key
    ``stale-<version>-<batch>`` is never requested twice.

    Args:
        decision: :func:`staleness` now (None without a champion).
        newest_batch: the newest accepted batch id, None if there is none.
        cursor: the sensor's cursor (:class:`TriggerCursor` as JSON; None at first).
        accepted: the accepted batch ids (for the cooldown count).
        labelled_since_training: labelled batches newer than the champion's training batches
            (None: unknown, not enforced).
        rules: the minimum labelled batches and the cooldown.
    """
    if decision is None:
        return NoRetraining("no champion model promoted yet")
    version = str(decision.details["champion_version"])
    if not decision.stale:
        return NoRetraining(f"champion {version} is not stale")
    state = TriggerCursor.parse(cursor)
    run_key = f"stale-{version}-{newest_batch or 'none'}"
    if run_key == state.last_run_key:
        return NoRetraining(f"retraining already requested for {run_key}")
    last = state.last_request_batch
    if last is not None and rules.cooldown_batches:
        since = sum(1 for b in accepted if b > last)
        if since < rules.cooldown_batches:
            return NoRetraining(
                f"cooldown: retraining was requested at batch {last}, {since} of "
                f"{rules.cooldown_batches} batches ago"
            )
    if labelled_since_training is not None and labelled_since_training < rules.min_labelled_batches:
        return NoRetraining(
            f"champion {version} is stale, waiting for labelled batches: "
            f"{labelled_since_training} of {rules.min_labelled_batches} newer than its "
            "training data"
        )
    return RetrainingRequest(
        run_key=run_key,
        tags={
            TRIGGER_TAG: "staleness",
            STALE_CHAMPION_TAG: version,
            REASONS_TAG: "; ".join(decision.reasons)[:MAX_TAG],
        },
        alert=stale_alert(version, decision.reasons, run_requested=True),
        cursor=TriggerCursor(run_key, newest_batch).dumps(),
    )


def staleness_trigger(
    settings: Settings | None = None, cursor: str | None = None
) -> RetrainingRequest | NoRetraining:
    """:func:`retraining_request` on the tables, the registry and params as they are now."""
    settings = settings or get_settings()
    champion = current_champion(settings)
    decision = staleness(settings, champion)
    batches = accepted_batches(settings.tables, "records")
    labelled = accepted_batches(settings.tables, "labels")
    return retraining_request(
        decision,
        batches[-1] if batches else None,
        cursor,
        accepted=batches,
        labelled_since_training=(
            batches_since_training(champion.metadata, labelled) if champion else None
        ),
        rules=TriggerRules.from_params(monitoring_params(settings)),
    )
