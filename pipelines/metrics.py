"""Classification metrics of scores against labels: one definition for training, evaluation and
realised performance."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

CALIBRATION_BINS = 10


def score_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Threshold-free and thresholded metrics; AUCs are None when the rows hold one class."""
    labels = labels.astype(np.int64)
    both = labels.min() != labels.max() if labels.size else False
    decisions = scores >= threshold
    tp = int(np.sum(decisions & (labels == 1)))
    fp = int(np.sum(decisions & (labels == 0)))
    tn = int(np.sum(~decisions & (labels == 0)))
    fn = int(np.sum(~decisions & (labels == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    clipped = np.clip(scores, 1e-15, 1 - 1e-15)
    return {
        "rows": int(labels.size),
        "positive_rate": round(float(labels.mean()), 6) if labels.size else None,
        "roc_auc": round(float(roc_auc_score(labels, scores)), 6) if both else None,
        "pr_auc": round(float(average_precision_score(labels, scores)), 6) if both else None,
        "log_loss": (
            round(float(log_loss(labels, clipped, labels=[0, 1])), 6) if labels.size else None
        ),
        "brier": round(float(brier_score_loss(labels, scores)), 6) if labels.size else None,
        "threshold": round(float(threshold), 6),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(2 * precision * recall / (precision + recall), 6)
        if precision + recall
        else 0.0,
    }


def calibration(
    labels: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS
) -> list[dict[str, float]]:
    """Reliability curve: equal-width score bins, mean predicted vs observed positive rate."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    curve = []
    for b in range(bins):
        mask = index == b
        if not mask.any():
            continue
        curve.append(
            {
                "bin": b,
                "mean_predicted": round(float(scores[mask].mean()), 6),
                "fraction_positive": round(float(labels[mask].mean()), 6),
                "count": int(mask.sum()),
            }
        )
    return curve


def auc_interval(
    auc: float, positives: int, negatives: int, z: float = 1.96
) -> tuple[float, float]:
    """A ``z``-sigma interval of a ROC AUC (Hanley & McNeil 1982), clipped to [0, 1].

    Cheap (no bootstrap): enough to see whether a slice's AUC differs from another's.
    """
    if positives <= 0 or negatives <= 0:
        return (0.0, 1.0)
    q1 = auc / (2.0 - auc)
    q2 = 2.0 * auc * auc / (1.0 + auc)
    variance = (
        auc * (1.0 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    half = z * float(np.sqrt(max(variance, 0.0)))
    return (max(0.0, auc - half), min(1.0, auc + half))
