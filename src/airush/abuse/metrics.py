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


def has_both_classes(y_true: np.ndarray) -> bool:
    return 0 < int(np.sum(y_true)) < len(y_true)


def ranking_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """ROC-AUC and PR-AUC (average precision); NaN when y_true holds a single class (nothing to rank)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if not has_both_classes(y_true):
        return {"roc_auc": float("nan"), "pr_auc": float("nan")}
    return {
        "roc_auc": float(roc_auc_score(y_true, scores)),
        "pr_auc": float(average_precision_score(y_true, scores)),
    }


def detection_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision; NaN with a single class) and F1/precision/recall at `threshold`
    (score >= threshold = bot)."""
    from sklearn.metrics import f1_score, precision_score, recall_score

    y_pred = (scores >= threshold).astype(int)
    return {
        **ranking_metrics(y_true, scores),
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


def equal_error_rate(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The error rate where false accepts equal false rejects (interpolated on the ROC curve)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y_true, scores)
    fnr = 1.0 - tpr
    i = int(np.flatnonzero(fnr <= fpr)[0])
    if i == 0:
        return float(fpr[0])
    # crossing between points i-1 and i
    d0, d1 = fpr[i - 1] - fnr[i - 1], fpr[i] - fnr[i]
    w = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def recall_at_fpr(y_true: np.ndarray, scores: np.ndarray, max_fpr: float = 0.01) -> float:
    """The highest recall (TPR) reachable while flagging at most `max_fpr` of negatives."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(tpr[fpr <= max_fpr].max())


def threshold_at_fpr(y_true: np.ndarray, scores: np.ndarray, max_fpr: float = 0.01) -> float:
    """The lowest score threshold (score >= threshold = bot) flagging at most `max_fpr` of the human
    sessions (label 0) of `y_true`; chosen on valid, so test reports how that rate holds on unseen data."""
    human = np.sort(scores[y_true == 0])
    if human.size == 0:
        return float(np.nextafter(scores.max(), np.inf)) if scores.size else 1.0
    allowed = int(np.floor(max_fpr * human.size + 1e-9))  # human sessions that may be flagged
    if allowed >= human.size:
        return float(human[0])
    return float(np.nextafter(human[human.size - allowed - 1], np.inf))


def defined_metrics(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, strict_threshold: float | None = None
) -> dict[str, float]:
    """What a test set's classes define, never a NaN: ROC-AUC, PR-AUC, F1, precision and recall only with
    both classes, the false-positive rate (`fpr`, share of human sessions flagged) with humans, recall with
    bots; always the share of sessions flagged (`flag_rate`) and score quantiles (`score_p50/p90/p99`).

    `strict_threshold` (the valid 1%-FPR threshold, `threshold_at_fpr`) adds `strict_fpr` and
    `strict_flag_rate` at it, so a test set of humans only (real users, no bots) still says how often the
    detector would flag a person at an operating point chosen to flag 1% of them."""
    flagged = scores >= threshold
    if has_both_classes(y_true):
        out = detection_metrics(y_true, scores, threshold)
    else:
        out = {"threshold": float(threshold)}
        if int(np.sum(y_true)) > 0:
            out["recall"] = float(flagged[y_true == 1].mean())
    humans = y_true == 0
    if humans.any():
        out["fpr"] = float(flagged[humans].mean())
    out["flag_rate"] = float(flagged.mean()) if flagged.size else 0.0
    if strict_threshold is not None:
        strict = scores >= strict_threshold
        out["strict_threshold"] = float(strict_threshold)
        out["strict_flag_rate"] = float(strict.mean()) if strict.size else 0.0
        if humans.any():
            out["strict_fpr"] = float(strict[humans].mean())
    if scores.size:
        for q in (50, 90, 99):
            out[f"score_p{q}"] = float(np.percentile(scores, q))
    return {k: v for k, v in out.items() if np.isfinite(v)}
