"""Detection metrics on session scores (P(bot)); scikit-learn computes the curves."""

from __future__ import annotations

import numpy as np


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold maximising F1 (chosen on valid, applied to test)."""
    from sklearn.metrics import precision_recall_curve

    if y_true.sum() == 0:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def detection_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision) and F1/precision/recall at `threshold` (score >= threshold = bot)."""
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y_pred = (scores >= threshold).astype(int)
    both_classes = 0 < y_true.sum() < len(y_true)
    return {
        "roc_auc": float(roc_auc_score(y_true, scores)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y_true, scores)) if both_classes else float("nan"),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "threshold": float(threshold),
    }


def recall_by_kind(kinds: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Share of each bot kind's sessions flagged, `recall_<kind>`; humans excluded."""
    out = {}
    for kind in sorted(set(kinds[y_true == 1])):
        mask = kinds == kind
        out[f"recall_{kind}"] = float(y_pred[mask].mean())
    return out
