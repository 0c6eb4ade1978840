"""Evaluation figures logged with every abuse run: ROC and PR curves, score histograms by class, and
feature importance. Drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from airush.figures import pyplot, save


def save_evaluation_plots(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, importance: pd.Series | None, out_dir: Path
) -> list[Path]:
    """Write roc.png, pr.png, score_histogram.png (and feature_importance.png) into `out_dir`."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if 0 < y_true.sum() < len(y_true):
        fpr, tpr, _ = roc_curve(y_true, scores)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(fpr, tpr, label=f"ROC-AUC {roc_auc_score(y_true, scores):.3f}")
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
        ax.set(xlabel="false positive rate", ylabel="true positive rate (recall)", title="ROC, test")
        ax.legend(loc="lower right")
        written.append(save(fig, out_dir / "roc.png"))

        precision, recall, _ = precision_recall_curve(y_true, scores)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(recall, precision, label=f"PR-AUC {average_precision_score(y_true, scores):.3f}")
        ax.axhline(y_true.mean(), ls="--", c="grey", lw=0.8, label=f"positive share {y_true.mean():.3f}")
        ax.set(xlabel="recall", ylabel="precision", title="precision-recall, test", ylim=(0, 1.02))
        ax.legend(loc="lower left")
        written.append(save(fig, out_dir / "pr.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41)
    for label, name in ((0, "human / owner"), (1, "bot / intruder")):
        if (y_true == label).any():  # a test set of one class (humans only) has no other to draw
            ax.hist(scores[y_true == label], bins=bins, alpha=0.6, density=True, label=name)
    ax.axvline(threshold, c="k", lw=1, label=f"threshold {threshold:.3f}")
    ax.set(xlabel="score", ylabel="density", title="test scores by class")
    ax.legend()
    written.append(save(fig, out_dir / "score_histogram.png"))

    if importance is not None and len(importance):
        top = importance.head(25)[::-1]
        fig, ax = plt.subplots(figsize=(6, 0.25 * len(top) + 1))
        ax.barh(top.index, top.to_numpy())
        xlabel = "total gain" if importance.name == "gain" else str(importance.name)
        ax.set(xlabel=xlabel, title="feature importance (top 25)")
        written.append(save(fig, out_dir / "feature_importance.png"))
    return written
