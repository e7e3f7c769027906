"""Drift of a batch against the champion's training reference: per feature PSI and unseen share.

The reference is ``ModelMetadata.reference_profile`` (written by :func:`pipelines.train.
reference_profile`): numeric features carry quantile ``bin_edges`` and ``bin_shares`` (of the
non-null values) and a ``null_share``; categorical features the share of each value
(``frequencies``, nulls counted as ``__missing__``). A model without a profile gets one from
:func:`profile_frame` on a reference frame.

PSI (population stability index) = sum over bins of (a - e) * ln(a / e), with ``e`` the reference
share and ``a`` the batch share of a bin, both floored at :data:`EPSILON` so an empty bin counts
instead of dividing by zero. Numeric bins are the reference quantile bins with open outer edges
(values beyond the training range fall in the first or last bin) plus a null bin; categorical bins
are the reference values plus one bin for every value unseen in training.

Beside PSI, every feature gets one row of the statistic configured for it (``drift_method``,
``drift_methods``; default ``auto``: Evidently's rule), see :mod:`pipelines.drift_stats`, and the
batch gets a dataset row (feature ``__dataset__``, metric ``drift_share``): the share of features
whose statistic drifted, drifted when it reaches ``drift_share``. A profile written before the
statistics existed (no counts) gets PSI rows only.

The score distribution is compared the same way (numeric bins) with the champion's scores of its
own holdout batches when the scores table holds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from pipelines.drift_stats import (
    DriftStatError,
    auto_method,
    current_distribution,
    is_drifted,
    reference_distribution,
    statistic,
)
from pipelines.features import prepare_features
from pipelines.ingest import VALIDATED, accepted_batches, validated_schema
from pipelines.monitoring import (
    DATASET_FEATURE,
    SCORE_FEATURE,
    Champion,
    MonitoringError,
    MonitoringParams,
    current_champion,
    monitoring_params,
    training_batches,
)
from pipelines.scores_table import scores_uri
from pipelines.settings import Settings, get_settings
from pipelines.spec import DatasetSpec, load_spec
from pipelines.tables import read_batches, read_table, table_uri, write_batch

DRIFT = "drift"
EPSILON = 1e-4
PSI = "psi"
UNSEEN_SHARE = "unseen_share"
SCORE_PSI = "score_psi"
DRIFT_SHARE = "drift_share"
#: Metrics of the configurable statistics (rows beside PSI).
STAT_METRICS = ["wasserstein", "jensenshannon", "ks", "chi2"]
#: Score bins of the score reference (quantiles of the reference scores).
SCORE_BINS = 10
#: What drift reads of the scores table.
SCORE_COLUMNS: dict[str, pl.DataType] = {"batch_id": pl.String(), "score": pl.Float64()}

DRIFT_SCHEMA: dict[str, pl.DataType] = {
    "batch_id": pl.String(),
    "feature": pl.String(),
    "metric": pl.String(),
    "value": pl.Float64(),
    "threshold": pl.Float64(),
    "drifted": pl.Boolean(),
    "model_version": pl.String(),
    "computed_at": pl.Datetime("us", "UTC"),
}


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = EPSILON) -> float:
    """PSI of two share vectors over the same bins (each sums to 1, or to 0 when empty)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), epsilon)
    a = np.maximum(np.asarray(actual, dtype=np.float64), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros_like(counts, dtype=np.float64)


def bin_index(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """The reference bin of each value: like ``np.histogram(bins=edges)`` with open outer edges."""
    return np.searchsorted(np.asarray(edges[1:-1], dtype=np.float64), values, side="right")


def numeric_psi(series: pl.Series, reference: dict[str, Any]) -> float:
    """PSI of a numeric column against a profile entry (``bin_edges``, ``bin_shares``, nulls)."""
    edges = [float(e) for e in reference["bin_edges"]]
    ref_shares = np.asarray(reference["bin_shares"], dtype=np.float64)
    ref_null = float(reference.get("null_share", 0.0))
    values = series.cast(pl.Float64).fill_nan(None)
    present = values.drop_nulls().to_numpy()
    nulls = values.len() - present.size
    counts = np.bincount(bin_index(present, edges), minlength=ref_shares.size)[: ref_shares.size]
    total = max(values.len(), 1)
    actual = np.append(_shares(counts) * (present.size / total), nulls / total)
    expected = np.append(ref_shares * (1.0 - ref_null), ref_null)
    return psi(expected, actual)


def categorical_drift(series: pl.Series, reference: dict[str, Any]) -> tuple[float, float]:
    """(PSI, share of rows unseen in training) of a categorical column against its profile."""
    frequencies = {str(k): float(v) for k, v in reference["frequencies"].items()}
    counts = series.cast(pl.String).value_counts()
    name = series.name
    observed = dict(zip(counts[name].to_list(), counts["count"].to_list(), strict=True))
    total = max(series.len(), 1)
    unseen = sum(int(c) for v, c in observed.items() if str(v) not in frequencies)
    expected = np.append(np.asarray(list(frequencies.values())), 0.0)
    actual = np.append(
        np.asarray([observed.get(v, 0) / total for v in frequencies], dtype=np.float64),
        unseen / total,
    )
    return psi(expected, actual), unseen / total


def profile_frame(frame: pl.DataFrame, spec: DatasetSpec, bins: int = 10) -> dict[str, Any]:
    """A reference profile of ``frame`` (spec features), in the format training writes.

    Used when a model's metadata carries no ``reference_profile``. It is
    :func:`pipelines.train.reference_profile` itself; the positive rate (which needs labels)
    is left out.
    """
    from pipelines.train import reference_profile
    from pipelines.training_set import LABEL_COLUMN

    labelled = frame.with_columns(pl.lit(0, dtype=pl.Int8).alias(LABEL_COLUMN))
    profile = reference_profile(labelled, spec, bins)
    profile.pop("positive_rate", None)
    return profile


def has_counts(profile: dict[str, Any]) -> bool:
    """Whether the profile carries the counts the statistics need (written since they exist)."""
    return all(
        "counts" in entry or "support" in entry for entry in profile.get("features", {}).values()
    )


def score_profile(scores: np.ndarray, bins: int = SCORE_BINS) -> dict[str, Any]:
    """Quantile bins of reference scores (a numeric profile entry)."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        raise MonitoringError("no reference scores to build the score profile from")
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:
        edges = np.array([edges[0], edges[0]])
    counts = np.bincount(bin_index(values, list(edges)), minlength=edges.size - 1)
    return {
        "kind": "numeric",
        "bin_edges": [float(e) for e in edges],
        "bin_shares": [float(s) for s in _shares(counts)],
        "null_share": 0.0,
    }


def compute_drift(
    batch: pl.DataFrame,
    profile: dict[str, Any],
    spec: DatasetSpec,
    params: MonitoringParams,
    *,
    batch_id: str,
    model_version: str,
    scores: pl.Series | None = None,
    score_reference: dict[str, Any] | None = None,
    computed_at: datetime | None = None,
) -> pl.DataFrame:
    """Drift rows of one batch (pure: no IO), in the drift table's schema.

    One ``psi`` row per spec feature in the profile, one ``unseen_share`` row per categorical,
    and a ``score_psi`` row (feature ``score``) when scores and a score reference are given.
    """
    features = profile.get("features") or {}
    if not features:
        raise MonitoringError(f"model {model_version}: the reference profile has no features")
    prepared = prepare_features(batch, spec)
    now = computed_at or datetime.now(UTC)
    rows: list[dict[str, Any]] = []

    def add(
        feature: str, metric: str, value: float, threshold: float, drifted: bool | None = None
    ) -> bool:
        flag = bool(value > threshold) if drifted is None else drifted
        rows.append(
            {
                "batch_id": batch_id,
                "feature": feature,
                "metric": metric,
                "value": round(value, 6) if drifted is None else value,
                "threshold": threshold,
                "drifted": flag,
                "model_version": model_version,
                "computed_at": now,
            }
        )
        return flag

    verdicts: list[bool] = []
    for column in spec.features:
        reference = features.get(column.name)
        if reference is None:
            continue
        categorical = reference.get("kind") == "categorical"
        if categorical:
            value, unseen = categorical_drift(prepared[column.name], reference)
            psi_drifted = add(column.name, PSI, value, params.psi_threshold)
            add(column.name, UNSEEN_SHARE, unseen, params.unseen_threshold)
        else:
            psi_drifted = add(
                column.name,
                PSI,
                numeric_psi(prepared[column.name], reference),
                params.psi_threshold,
            )
        verdict = _statistic_row(column.name, reference, prepared[column.name], params, add)
        verdicts.append(psi_drifted if verdict is None else verdict)
    if verdicts:
        share = sum(verdicts) / len(verdicts)
        add(DATASET_FEATURE, DRIFT_SHARE, share, params.drift_share, share >= params.drift_share)
    if scores is not None and score_reference is not None and scores.len():
        add(
            SCORE_FEATURE,
            SCORE_PSI,
            numeric_psi(scores, score_reference),
            params.score_psi_threshold,
        )
    return pl.DataFrame(rows, schema=DRIFT_SCHEMA)


def _statistic_row(
    feature: str,
    reference: dict[str, Any],
    series: pl.Series,
    params: MonitoringParams,
    add: Any,
) -> bool | None:
    """Add the feature's configured statistic row; its verdict (None: the method is PSI, or the
    profile predates the statistics and has no counts)."""
    try:
        ref = reference_distribution(reference, feature)
    except DriftStatError:
        return None
    numeric = reference.get("kind") != "categorical"
    current = current_distribution(series, numeric=numeric)
    method = params.method_of(feature)
    if method == "auto":
        method = auto_method(ref, current, numeric=numeric)
    if method == PSI:
        return None
    try:
        value = statistic(method, ref, current, numeric=numeric)
    except DriftStatError as exc:
        raise MonitoringError(
            f"drift of feature {feature!r}: {exc} (monitoring.drift_methods in params.yaml)"
        ) from exc
    threshold = params.threshold_of(method)
    drifted: bool = add(feature, method, value, threshold, is_drifted(method, value, threshold))
    return drifted


@dataclass(frozen=True)
class DistributionView:
    """Reference vs batch shares of one feature over the same bins (what the view draws)."""

    feature: str
    labels: list[str]
    reference: list[float]
    current: list[float]


#: A categorical view shows at most this many values (the most frequent in the reference).
VIEW_VALUES = 20


def distribution_view(
    feature: str, series: pl.Series, reference: dict[str, Any]
) -> DistributionView:
    """Shares of the reference and of the batch: numeric over the profile's quantile bins (plus
    nulls), categorical over the reference's values (plus everything unseen)."""
    if reference.get("kind") == "categorical":
        frequencies = {str(k): float(v) for k, v in reference["frequencies"].items()}
        shown = sorted(frequencies, key=lambda k: -frequencies[k])[:VIEW_VALUES]
        counts = series.cast(pl.String).value_counts()
        observed = dict(zip(counts[series.name].to_list(), counts["count"].to_list(), strict=True))
        total = max(series.len(), 1)
        current = [observed.get(v, 0) / total for v in shown]
        return DistributionView(
            feature,
            [*shown, "other / unseen"],
            [frequencies[v] for v in shown] + [max(0.0, 1.0 - sum(frequencies[v] for v in shown))],
            [*current, max(0.0, 1.0 - sum(current))],
        )
    edges = [float(e) for e in reference["bin_edges"]]
    ref_null = float(reference.get("null_share", 0.0))
    values = series.cast(pl.Float64).fill_nan(None)
    present = values.drop_nulls().to_numpy()
    bins = len(reference["bin_shares"])
    binned = np.bincount(bin_index(present, edges), minlength=bins)[:bins]
    total = max(values.len(), 1)
    labels = [f"{edges[i]:g}-{edges[i + 1]:g}" for i in range(bins)] + ["null"]
    return DistributionView(
        feature,
        labels,
        [float(x) * (1.0 - ref_null) for x in reference["bin_shares"]] + [ref_null],
        [float(c) / total for c in binned] + [(values.len() - present.size) / total],
    )


def drift_uri(settings: Settings) -> str:
    return table_uri(settings.tables, DRIFT)


def read_drift(settings: Settings | None = None, batch_id: str | None = None) -> pl.DataFrame:
    """The drift table (empty frame with its schema when it does not exist yet)."""
    settings = settings or get_settings()
    return read_table(drift_uri(settings), batch_id=batch_id, schema=DRIFT_SCHEMA)


def champion_scores(settings: Settings, model_version: str, batches: list[str]) -> pl.DataFrame:
    """``batch_id, score`` of ``model_version`` in ``batches`` (empty when none are scored)."""
    return read_batches(
        scores_uri(settings), batches, SCORE_COLUMNS, where={"model_version": model_version}
    )


def reference_of(champion: Champion, settings: Settings, spec: DatasetSpec) -> dict[str, Any]:
    """The champion's reference profile; computed from its training batches when it has none."""
    profile = champion.metadata.reference_profile
    train = training_batches(champion.metadata).get("train", [])
    if profile.get("features") and (has_counts(profile) or not train):
        return profile  # a profile without counts and without known batches: PSI only
    if not train:
        raise MonitoringError(
            f"champion {champion.version} has no reference_profile in its metadata and does not "
            "record its training batches: retrain it with `scoreloop train` (which writes both)"
        )
    rows = read_batches(table_uri(settings.tables, VALIDATED), train, validated_schema(spec))
    if rows.height == 0:
        raise MonitoringError(
            f"champion {champion.version}: its training batches {train} are not in the "
            f"validated table under {settings.tables}"
        )
    return profile_frame(rows, spec)


@dataclass
class DriftReport:
    """Drift of one batch, as written to the drift table."""

    batch_id: str
    model_version: str
    rows: int
    frame: pl.DataFrame
    table_version: int
    score_reference: str | None
    #: Reference vs batch distribution of every drifted feature.
    views: dict[str, DistributionView] = field(default_factory=dict)

    @property
    def drifted(self) -> pl.DataFrame:
        return self.frame.filter(pl.col("drifted"))

    @property
    def drifted_features(self) -> list[str]:
        drifted = self.drifted.filter(pl.col("feature") != DATASET_FEATURE)
        return sorted(set(drifted["feature"].to_list()))

    @property
    def drift_share(self) -> float | None:
        """Share of features whose statistic drifted (None: no statistics in the profile)."""
        row = self.frame.filter(pl.col("metric") == DRIFT_SHARE)
        return float(row["value"][0]) if row.height else None

    @property
    def dataset_drift(self) -> bool:
        """At least ``drift_share`` of the features drifted (Evidently's dataset drift)."""
        row = self.frame.filter(pl.col("metric") == DRIFT_SHARE)
        return bool(row.height and row["drifted"][0])

    def psi_table(self) -> pl.DataFrame:
        """feature, psi, unseen_share, method, statistic, drifted: one row per feature."""
        frame = self.frame.filter(pl.col("feature") != DATASET_FEATURE)
        measure = pl.col("metric").is_in(STAT_METRICS)
        wide = (
            frame.group_by("feature")
            .agg(
                pl.col("value").filter(pl.col("metric").is_in([PSI, SCORE_PSI])).first().alias(PSI),
                pl.col("value")
                .filter(pl.col("metric") == UNSEEN_SHARE)
                .first()
                .alias(UNSEEN_SHARE),
                pl.col("metric").filter(measure).first().alias("method"),
                pl.col("value").filter(measure).first().alias("statistic"),
                pl.col("drifted").any().alias("drifted"),
            )
            .sort(PSI, descending=True, nulls_last=True)
        )
        return wide


def drift_batch(
    batch_id: str,
    *,
    settings: Settings | None = None,
    champion: Champion | None = None,
    spec: DatasetSpec | None = None,
    params: MonitoringParams | None = None,
) -> DriftReport:
    """Compute the drift of an accepted batch against the champion and write it (replacing).

    Raises:
        MonitoringError: no champion, the batch is not accepted, or no reference is available.
    """
    settings = settings or get_settings()
    spec = spec or load_spec(settings.spec_path)
    params = params or monitoring_params(settings)
    champion = champion or current_champion(settings)
    if champion is None:
        raise MonitoringError(
            "no champion model: drift is measured against the champion's training data; "
            "train and promote a model first"
        )
    if batch_id not in accepted_batches(settings.tables, "records"):
        raise MonitoringError(
            f"batch {batch_id!r} is not an accepted batch under {settings.tables}: drift is "
            "measured on accepted batches only (see the ingest log for why)"
        )
    batch = read_table(
        table_uri(settings.tables, VALIDATED), batch_id=batch_id, schema=validated_schema(spec)
    )
    profile = reference_of(champion, settings, spec)
    holdout = training_batches(champion.metadata).get("holdout", [])
    reference_scores = champion_scores(settings, champion.version, holdout)
    batch_scores = champion_scores(settings, champion.version, [batch_id])
    score_reference = (
        score_profile(reference_scores["score"].to_numpy()) if reference_scores.height else None
    )
    frame = compute_drift(
        batch,
        profile,
        spec,
        params,
        batch_id=batch_id,
        model_version=champion.version,
        scores=batch_scores["score"] if batch_scores.height else None,
        score_reference=score_reference,
    )
    version = write_batch(drift_uri(settings), frame, batch_id, DRIFT_SCHEMA, table=DRIFT)
    prepared = prepare_features(batch, spec)
    drifted = frame.filter(pl.col("drifted"))["feature"].unique().to_list()
    views = {
        name: distribution_view(name, prepared[name], profile["features"][name])
        for name in sorted(drifted)
        if name in profile["features"]
    }
    return DriftReport(
        views=views,
        batch_id=batch_id,
        model_version=champion.version,
        rows=batch.height,
        frame=frame,
        table_version=version,
        score_reference=f"holdout batches {', '.join(holdout)}" if score_reference else None,
    )


def psi_markdown(table: pl.DataFrame) -> str:
    """The per-feature PSI table as markdown (drifted rows flagged)."""
    lines = [
        "| feature | PSI | unseen share | statistic | value | drifted |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.iter_rows(named=True):
        unseen = row[UNSEEN_SHARE]
        lines.append(
            f"| {row['feature']} | {_fmt(row[PSI])} | {_fmt(unseen)} | {row['method'] or ''} | "
            f"{_fmt(row['statistic'])} | {'**yes**' if row['drifted'] else 'no'} |"
        )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.4f}"
