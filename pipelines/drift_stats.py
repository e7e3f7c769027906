"""Drift statistics people compare against (Evidently's), from a precomputed reference profile.

Every statistic is scipy's, computed from the reference profile training writes
(:func:`pipelines.train.reference_profile`), never from raw training rows: a numeric feature's
profile carries its distinct values and their counts (``support`` / ``support_counts``; exact up
to :data:`MAX_SUPPORT` distinct values, above that :data:`MAX_SUPPORT` equally weighted quantiles),
a categorical feature the count of each value (``counts``). The batch side is reduced the same way
(``value_counts`` in polars), so a 1M-row batch costs one pass per column.

=================  ===================================================  =========  ==========
method             statistic (scipy)                                    threshold  drifted if
=================  ===================================================  =========  ==========
``ks``             ``scipy.stats.ks_2samp`` p-value (numeric)           0.05       p < thr
``chi2``           ``scipy.stats.chisquare`` p-value of the batch's     0.05       p < thr
                   counts vs the reference shares scaled to the batch
``wasserstein``    ``scipy.stats.wasserstein_distance`` / max(reference 0.1        d >= thr
                   std, 0.001) (numeric)
``jensenshannon``  ``scipy.spatial.distance.jensenshannon`` of the      0.1        d >= thr
                   value shares (categorical, numeric with <= 20
                   values) or of 30 equal-width bins over both samples
``psi``            scoreloop's PSI (:mod:`pipelines.drift`)             psi_thr.   v > thr
=================  ===================================================  =========  ==========

``auto`` (the default) picks per feature as Evidently's DataDriftPreset does: reference <= 1000
rows: numeric with > 5 distinct values ``ks``, otherwise ``chi2``; reference > 1000 rows: numeric
with > 5 distinct values ``wasserstein``, otherwise ``jensenshannon``. (Evidently uses a
two-proportion z-test for a binary column of a small reference; scoreloop uses ``chi2`` there.)
The dataset drifts when at least ``drift_share`` (0.5) of the features drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy import stats
from scipy.spatial import distance

from pipelines.errors import ScoreloopError

Method = Literal["psi", "wasserstein", "jensenshannon", "ks", "chi2"]
METHODS: tuple[Method, ...] = ("psi", "wasserstein", "jensenshannon", "ks", "chi2")
#: Methods whose value is a p-value (drifted below the threshold); the others are distances.
P_VALUE_METHODS = frozenset({"ks", "chi2"})
#: Evidently's defaults.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chi2": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
}
#: Reference size up to which Evidently uses the tests (ks, chi2), above it the distances.
SMALL_REFERENCE = 1000
#: A numeric feature with at most this many distinct values is treated like a categorical.
FEW_VALUES = 5
#: Numeric Jensen-Shannon: value shares up to this many distinct reference values, else bins.
JS_VALUE_BINS = 20
JS_BINS = 30
#: Wasserstein's normalisation floor (Evidently's).
MIN_STD = 0.001
#: Distinct values a numeric profile keeps exactly; more are summarised by this many quantiles.
MAX_SUPPORT = 10_000


class DriftStatError(ScoreloopError, ValueError):
    """A drift statistic cannot be computed from this profile entry."""


def numeric_support(values: np.ndarray) -> dict[str, Any]:
    """Profile entries of a numeric column's non-null values: distinct values and their counts."""
    uniques, counts = np.unique(np.asarray(values, dtype=np.float64), return_counts=True)
    exact = uniques.size <= MAX_SUPPORT
    if not exact:
        # Equally weighted quantiles: Wasserstein and KS are then approximations (documented).
        uniques = np.quantile(values, (np.arange(MAX_SUPPORT) + 0.5) / MAX_SUPPORT)
        counts = np.full(MAX_SUPPORT, values.size // MAX_SUPPORT or 1)
    return {
        "support": [float(v) for v in uniques],
        "support_counts": [int(c) for c in counts],
        "support_exact": bool(exact),
    }


@dataclass(frozen=True)
class Distribution:
    """Distinct values and their counts (nulls left out for numerics)."""

    values: np.ndarray
    counts: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.counts.sum())

    def sample(self) -> np.ndarray:
        """The multiset itself (what a raw-sample test like ks_2samp needs)."""
        return np.repeat(self.values, self.counts.astype(np.int64))


def current_distribution(series: pl.Series, *, numeric: bool) -> Distribution:
    """A batch column as distinct values and counts (one polars pass)."""
    if numeric:
        clean = series.cast(pl.Float64).fill_nan(None).drop_nulls()
        counts = clean.value_counts(sort=False).sort(series.name)
        return Distribution(
            counts[series.name].to_numpy().astype(np.float64),
            counts["count"].to_numpy().astype(np.int64),
        )
    counts = series.cast(pl.String).value_counts(sort=False).sort(series.name)
    return Distribution(
        np.asarray(counts[series.name].to_list(), dtype=object),
        counts["count"].to_numpy().astype(np.int64),
    )


def reference_distribution(entry: Mapping[str, Any], feature: str) -> Distribution:
    """The profile entry of a feature as values and counts."""
    if entry.get("kind") == "categorical":
        counts = entry.get("counts")
        if not counts:
            raise DriftStatError(
                f"feature {feature!r}: the reference profile has no category counts (a model "
                "trained before scoreloop kept them): retrain with `scoreloop train`"
            )
        keys = sorted(counts)
        return Distribution(
            np.asarray(keys, dtype=object), np.asarray([counts[k] for k in keys], dtype=np.int64)
        )
    if "support" not in entry:
        raise DriftStatError(
            f"feature {feature!r}: the reference profile has no value support (a model trained "
            "before scoreloop kept it): retrain with `scoreloop train`"
        )
    return Distribution(
        np.asarray(entry["support"], dtype=np.float64),
        np.asarray(entry["support_counts"], dtype=np.int64),
    )


def ks_pvalue(reference: Distribution, current: Distribution) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (``scipy.stats.ks_2samp``, two-sided, auto mode)."""
    return float(stats.ks_2samp(reference.sample(), current.sample()).pvalue)


def wasserstein_norm(reference: Distribution, current: Distribution) -> float:
    """Wasserstein distance over the reference's std (ddof 0), floored at :data:`MIN_STD`."""
    weights = reference.counts.astype(np.float64)
    mean = np.average(reference.values, weights=weights)
    std = float(np.sqrt(np.average((reference.values - mean) ** 2, weights=weights)))
    value = stats.wasserstein_distance(
        reference.values,
        current.values,
        u_weights=weights,
        v_weights=current.counts.astype(np.float64),
    )
    return float(value / max(std, MIN_STD))


def _aligned(reference: Distribution, current: Distribution) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both over the union of their values (in a fixed order)."""
    ref = dict(zip(reference.values.tolist(), reference.counts.tolist(), strict=True))
    cur = dict(zip(current.values.tolist(), current.counts.tolist(), strict=True))
    keys = sorted(set(ref) | set(cur), key=str)
    return (
        np.asarray([ref.get(k, 0) for k in keys], dtype=np.float64),
        np.asarray([cur.get(k, 0) for k in keys], dtype=np.float64),
    )


def chi2_pvalue(reference: Distribution, current: Distribution) -> float:
    """Chi-squared goodness of fit of the batch's counts to the reference shares (p-value).

    A value the reference never saw has an expected count of 0: the statistic is infinite and
    the p-value 0 (the batch drifted), as in Evidently.
    """
    ref, cur = _aligned(reference, current)
    expected = ref * (cur.sum() / ref.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(cur, expected).pvalue)


def jensenshannon_distance(
    reference: Distribution, current: Distribution, *, numeric: bool
) -> float:
    """Jensen-Shannon distance (natural log) of the two distributions' shares.

    Categorical (and numeric with at most :data:`JS_VALUE_BINS` distinct reference values):
    shares of each value; numeric otherwise: :data:`JS_BINS` equal-width bins over the range of
    both samples (``np.histogram_bin_edges`` of their union), as Evidently bins.
    """
    if numeric and reference.values.size > JS_VALUE_BINS:
        # Equal-width bins over the union's range: histogram_bin_edges only reads min and max.
        edges = np.histogram_bin_edges(np.concatenate([reference.values, current.values]), JS_BINS)
        ref = np.histogram(reference.values, edges, weights=reference.counts)[0].astype(np.float64)
        cur = np.histogram(current.values, edges, weights=current.counts)[0].astype(np.float64)
    else:
        ref, cur = _aligned(reference, current)
    return float(distance.jensenshannon(ref / ref.sum(), cur / max(cur.sum(), 1.0)))


def auto_method(reference: Distribution, current: Distribution, *, numeric: bool) -> Method:
    """Evidently's default choice of statistic for one feature (see the module docstring)."""
    distinct = len(set(reference.values.tolist()) | set(current.values.tolist()))
    many = numeric and distinct > FEW_VALUES
    if reference.rows <= SMALL_REFERENCE:
        return "ks" if many else "chi2"
    return "wasserstein" if many else "jensenshannon"


def statistic(
    method: Method, reference: Distribution, current: Distribution, *, numeric: bool
) -> float:
    """The value of ``method`` (not ``psi``: that one reads the quantile bins)."""
    if method == "ks":
        if not numeric:
            raise DriftStatError("ks is for numeric features: use chi2 or jensenshannon")
        return ks_pvalue(reference, current)
    if method == "wasserstein":
        if not numeric:
            raise DriftStatError("wasserstein is for numeric features: use chi2 or jensenshannon")
        return wasserstein_norm(reference, current)
    if method == "chi2":
        return chi2_pvalue(reference, current)
    if method == "jensenshannon":
        return jensenshannon_distance(reference, current, numeric=numeric)
    raise DriftStatError(f"unknown drift method {method!r}: one of {', '.join(METHODS)}")


def is_drifted(method: str, value: float, threshold: float) -> bool:
    """Evidently's comparison: p-values drift below the threshold, distances at or above it."""
    if method in P_VALUE_METHODS:
        return bool(value < threshold)
    return bool(value >= threshold)
