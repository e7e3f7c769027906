"""LIME explanations of one row, on numpy alone (no scikit-learn, so the service could use it too).

LIME's tabular algorithm (Ribeiro et al. 2016; the ``lime`` package's ``LimeTabularExplainer``
with ``discretize_continuous=True``), with the training distribution taken from the champion's
reference profile instead of raw training rows:

1. draw ``samples - 1`` perturbed rows, every feature independently from the training
   distribution: a categorical from its training frequencies; a numeric first a quantile bin of
   the profile (by its share, or null by the null share), then a value uniform inside the bin
   (``lime`` draws from a truncated normal with the bin's mean and std, which the profile does not
   keep); the first row is the row itself;
2. represent each sample by ``z``: 1 where a feature equals the row's (same category, same bin),
   0 elsewhere;
3. weight each sample by the kernel ``sqrt(exp(-d^2 / width^2))``, ``d`` the euclidean distance
   of its ``z`` to the row's (all ones), ``width = 0.75 * sqrt(features)`` (``lime``'s default);
4. fit a weighted ridge regression (``alpha = 1``, with intercept, as ``lime``'s default
   ``Ridge``) of the model's P(positive) on ``z``; a feature's LIME weight is its coefficient:
   how much having the row's value (rather than a typical one) moves the probability.

Deterministic for a seed. :func:`agreement` compares LIME with SHAP (top-k overlap and the
Spearman rank correlation of the absolute attributions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from pipelines.errors import ScoreloopError

#: ``lime``'s defaults.
SAMPLES = 5000
KERNEL_SCALE = 0.75
RIDGE_ALPHA = 1.0
SEED = 0

Predict = Callable[[pl.DataFrame], npt.NDArray[np.float64]]


class LimeError(ScoreloopError, ValueError):
    """A LIME explanation cannot be computed (no profile entry for a feature, no row)."""


@dataclass(frozen=True)
class LimeExplanation:
    """LIME weights of one row, in feature order."""

    features: list[str]
    weights: npt.NDArray[np.float64]
    intercept: float
    #: The surrogate's prediction for the row itself, and the model's.
    local_prediction: float
    model_prediction: float
    #: Weighted R^2 of the surrogate on the samples.
    score: float

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` features with the largest absolute weight, largest first."""
        order = np.argsort(-np.abs(self.weights), kind="stable")[:k]
        return [(self.features[i], float(self.weights[i])) for i in order]


def ridge(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    alpha: float = RIDGE_ALPHA,
) -> tuple[npt.NDArray[np.float64], float]:
    """Weighted ridge regression with an unpenalised intercept: (coefficients, intercept).

    Minimises ``sum w_i (y_i - b - x_i . beta)^2 + alpha |beta|^2``: centre ``x`` and ``y`` on their
    weighted means, solve ``(Xc' W Xc + alpha I) beta = Xc' W yc``, ``b = ybar - xbar . beta``.
    """
    w = weights / weights.sum()
    x_mean = w @ x
    y_mean = float(w @ y)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ (xc * weights[:, None]) + alpha * np.eye(x.shape[1])
    beta = np.linalg.solve(gram, xc.T @ (yc * weights))
    return np.asarray(beta, dtype=np.float64), y_mean - float(x_mean @ beta)


def _bin_of(value: float | None, edges: list[float]) -> int:
    """Profile bin of a numeric value (open outer edges), -1 for null."""
    if value is None or np.isnan(value):
        return -1
    return int(np.searchsorted(np.asarray(edges[1:-1]), value, side="right"))


def _sample_feature(
    entry: Mapping[str, Any], row_value: Any, n: int, rng: np.random.Generator
) -> tuple[pl.Series | list[Any], npt.NDArray[np.float64]]:
    """``n`` draws of one feature from its profile, and whether each equals the row's."""
    if entry.get("kind") == "categorical":
        frequencies = {str(k): float(v) for k, v in entry["frequencies"].items()}
        values = list(frequencies)
        shares = np.asarray(list(frequencies.values()))
        drawn = rng.choice(len(values), size=n, p=shares / shares.sum())
        picked = [values[i] for i in drawn]
        same = np.asarray([v == row_value for v in picked], dtype=np.float64)
        return picked, same
    edges = [float(e) for e in entry["bin_edges"]]
    null_share = float(entry.get("null_share", 0.0))
    shares = np.append(np.asarray(entry["bin_shares"], np.float64) * (1 - null_share), null_share)
    bins = rng.choice(shares.size, size=n, p=shares / shares.sum())
    low = np.asarray([*edges[:-1], np.nan])[bins]
    high = np.asarray([*edges[1:], np.nan])[bins]
    values = low + rng.random(n) * (high - low)
    is_null = bins == shares.size - 1
    row_bin = _bin_of(row_value, edges)
    drawn_bins = np.where(is_null, -1, bins)
    same = (drawn_bins == row_bin).astype(np.float64)
    return [None if nul else float(v) for v, nul in zip(values, is_null, strict=True)], same


def explain_lime(
    row: pl.DataFrame,
    profile: Mapping[str, Any],
    predict: Predict,
    *,
    samples: int = SAMPLES,
    seed: int = SEED,
) -> LimeExplanation:
    """LIME weights of one prepared row (the output of ``prepare_features``) for ``predict``.

    Args:
        row: one row, the model's features in order (categoricals as strings).
        profile: the reference profile (``ModelMetadata.reference_profile``).
        predict: P(positive) of a prepared frame.
        samples: perturbed samples, the row included.
        seed: the random seed (same seed, same explanation).
    """
    if row.height != 1:
        raise LimeError(f"LIME explains one row at a time, got {row.height}")
    entries = profile.get("features") or {}
    missing = [name for name in row.columns if name not in entries]
    if missing:
        raise LimeError(
            f"the reference profile has no entry for feature(s) {missing}: retrain the model "
            "(`scoreloop train` writes the profile)"
        )
    rng = np.random.default_rng(seed)
    values = row.row(0, named=True)
    columns: dict[str, pl.Series] = {}
    same = np.ones((samples, row.width), dtype=np.float64)
    for j, name in enumerate(row.columns):
        drawn, equal = _sample_feature(entries[name], values[name], samples - 1, rng)
        dtype = row.schema[name]
        columns[name] = pl.concat([row[name], pl.Series(name, drawn, dtype=dtype)], rechunk=True)
        same[1:, j] = equal
    frame = pl.DataFrame(columns)
    labels = np.asarray(predict(frame), dtype=np.float64)
    width = KERNEL_SCALE * np.sqrt(row.width)
    distances = np.sqrt(((1.0 - same) ** 2).sum(axis=1))
    kernel = np.sqrt(np.exp(-(distances**2) / width**2))
    beta, intercept = ridge(same, labels, kernel)
    fitted = same @ beta + intercept
    mean = float(np.average(labels, weights=kernel))
    total = float(np.sum(kernel * (labels - mean) ** 2))
    score = 1.0 - float(np.sum(kernel * (labels - fitted) ** 2)) / total if total else 1.0
    return LimeExplanation(
        features=list(row.columns),
        weights=beta,
        intercept=intercept,
        local_prediction=float(fitted[0]),
        model_prediction=float(labels[0]),
        score=score,
    )


@dataclass(frozen=True)
class Agreement:
    """How far LIME and SHAP agree on the rows of a sample."""

    rows: int
    top_k: int
    #: Mean share of SHAP's top-k features that are also in LIME's top-k.
    top_k_overlap: float
    #: Mean Spearman rank correlation of |SHAP| and |LIME| over all features.
    rank_correlation: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "rows": self.rows,
            "top_k": self.top_k,
            "top_k_overlap": round(self.top_k_overlap, 4),
            "rank_correlation": round(self.rank_correlation, 4),
        }


def _ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Average ranks (ties share their mean rank), as Spearman's correlation needs."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(values.size, dtype=np.float64)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def agreement(
    shap: npt.NDArray[np.float64], lime: npt.NDArray[np.float64], top_k: int
) -> Agreement:
    """Top-k overlap and Spearman rank correlation of ``|shap|`` and ``|lime|`` per row."""
    if shap.shape != lime.shape or shap.ndim != 2 or shap.shape[0] == 0:
        raise LimeError(f"SHAP {shap.shape} and LIME {lime.shape} must be the same rows x features")
    k = min(top_k, shap.shape[1])
    overlaps, correlations = [], []
    for s, li in zip(np.abs(shap), np.abs(lime), strict=True):
        top_s = set(np.argsort(-s, kind="stable")[:k].tolist())
        top_l = set(np.argsort(-li, kind="stable")[:k].tolist())
        overlaps.append(len(top_s & top_l) / k)
        rs, rl = _ranks(s), _ranks(li)
        if rs.std() and rl.std():
            correlations.append(float(np.corrcoef(rs, rl)[0, 1]))
    return Agreement(
        rows=int(shap.shape[0]),
        top_k=k,
        top_k_overlap=float(np.mean(overlaps)),
        rank_correlation=float(np.mean(correlations)) if correlations else float("nan"),
    )
