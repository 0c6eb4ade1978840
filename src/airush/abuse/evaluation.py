"""The abuse task's `evaluate` step: test metrics at the thresholds chosen on valid, the calibrated
probability's Brier score, ECE and reliability, and the figures and tables a run logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from airush.abuse.calibration import (
    brier_score,
    expected_calibration_error,
    fit_calibration,
    reliability_table,
)
from airush.abuse.copies import with_copy_rule
from airush.abuse.explain import save_top_flagged
from airush.abuse.metrics import (
    best_f1_threshold,
    defined_metrics,
    equal_error_rate,
    has_both_classes,
    ranking_metrics,
    recall_at_fpr,
    recall_by_kind,
    threshold_at_fpr,
)
from airush.abuse.plots import save_evaluation_plots, save_reliability_plot
from airush.abuse.split import SessionSplits
from airush.abuse.verification import AccountVerifier
from airush.console import Stages


def evaluate(
    model, splits: SessionSplits, cfg: DictConfig, stages: Stages, out_dir: Path
) -> dict[str, float]:
    """Test ROC-AUC, PR-AUC, EER, recall at 1% FPR, F1 (threshold chosen on valid, or 0.5 per account),
    recall per positive kind, false-positive and flag rates at that threshold and at the one flagging
    `task.target_fpr` of valid's humans (`strict_*`), score quantiles, and valid ROC-AUC / PR-AUC for model
    selection (what tuning optimises, so it never sees test); only what the test set's classes define, never
    a NaN (`defined_metrics`). Session detectors' scores pass `task.copy_share`'s rule (`with_copy_rule`).
    Session detectors add the Brier score and ECE of their calibrated probability
    (`airush.abuse.calibration`) and a reliability table and diagram. Test predictions as Parquet."""
    strict, probability = None, None
    if isinstance(model, AccountVerifier):
        by_session = model.score_sessions(splits.X["test"], splits.account["test"], splits.session_id["test"])
        scores, threshold = by_session.to_numpy(), 0.5
        session_ids = by_session.index.to_numpy()
        valid_metrics = {}
    else:
        copy_share = cfg.task.get("copy_share")
        valid_scores = with_copy_rule(model.predict_proba(splits.X["valid"]), splits.X["valid"], copy_share)
        threshold = best_f1_threshold(splits.y["valid"], valid_scores)
        strict = threshold_at_fpr(splits.y["valid"], valid_scores, float(cfg.task.get("target_fpr", 0.01)))
        # valid ROC-AUC / PR-AUC, for model selection; NaN when valid holds a single class (nothing to rank:
        # such a run is not comparable, and choosing it by its test score would leak test)
        ranked = ranking_metrics(splits.y["valid"], valid_scores)
        valid_metrics = {f"valid_{k}": v for k, v in ranked.items() if np.isfinite(v)}
        scores = with_copy_rule(model.predict_proba(splits.X["test"]), splits.X["test"], copy_share)
        session_ids = splits.session_id["test"]
        # score -> P(bot), fitted on the valid scores the thresholds came from; the MLflow Model saved after
        # this step carries it (`airush.abuse.serving`)
        method = str(cfg.task.get("calibration", "platt"))
        splits.calibration = fit_calibration(splits.y["valid"], valid_scores, method)
        probability = splits.calibration.probability(scores)
    y, kind = splits.y["test"], splits.kind["test"]
    metrics = defined_metrics(y, scores, threshold, strict) | valid_metrics
    if has_both_classes(y):
        metrics |= {"eer": equal_error_rate(y, scores), "recall_at_1pct_fpr": recall_at_fpr(y, scores, 0.01)}
    metrics |= recall_by_kind(kind, y, (scores >= threshold).astype(int))
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions = pd.DataFrame({"session_id": session_ids, "label": y, "kind": kind, "score": scores})
    if probability is not None:
        predictions["probability"] = probability
        metrics |= calibration_metrics(y, scores, probability, out_dir)
    predictions.to_parquet(out_dir / "test_predictions.parquet", index=False)
    importance = model.feature_importance() if callable(getattr(model, "feature_importance", None)) else None
    if importance is not None:
        importance.to_frame().to_csv(out_dir / "feature_importance.csv")
    save_evaluation_plots(y, scores, threshold, importance, out_dir)
    if splits.test_events is not None:  # the top flagged test sessions, explained (`airush.abuse.explain`)
        explained = (model, splits.X["test"], session_ids, scores, threshold, splits.test_events)
        save_top_flagged(*explained, out_dir / "explanations", kind=kind)
    return metrics


def calibration_metrics(y: np.ndarray, scores: np.ndarray, probability: np.ndarray, out_dir: Path):
    """Brier score and ECE of the calibrated probability (and the Brier score of the raw score, to show what
    calibrating changed); its reliability table (CSV) and diagram (PNG) in `out_dir`."""
    table = reliability_table(y, probability)
    table.to_csv(out_dir / "reliability.csv", index=False)
    save_reliability_plot(table, reliability_table(y, scores), out_dir / "reliability.png")
    return {
        "brier": brier_score(y, probability),
        "brier_uncalibrated": brier_score(y, scores),
        "ece": expected_calibration_error(y, probability),
    }
