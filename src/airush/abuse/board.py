"""What an abuse board scores (`airush.inference.board`): labels `session_id, label` (0 human, 1 bot) against
a submission's `session_id, score, flagged` rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from airush.data.tables import fail_where, integer_column
from airush.errors import UserError

KEY, VALUE = "session_id", "label"  # the labels' columns; KEY is what predictions are joined on
METRICS = {  # name: higher is better
    "roc_auc": True,
    "pr_auc": True,
    "f1": True,  # of `flagged`, at the threshold the submitted run chose on its own valid split
    "recall_at_1pct_fpr": True,
    "eer": False,
}
UNITS = "sessions"


def check_metric(metric: str, top_n: int | None) -> int | None:
    if metric not in METRICS:
        raise UserError(
            f"metric {metric!r} is not an abuse board metric (choose one of {', '.join(METRICS)})"
        )
    return None


def higher_is_better(metric: str) -> bool:
    return METRICS[metric]


def typed_labels(frame: pd.DataFrame, keys: pd.Series, path: Path) -> pd.DataFrame:
    """Labels 0 or 1, each session once."""
    labels = integer_column(frame, VALUE, path, min_value=0)
    fail_where(frame, labels > 1, VALUE, path, "0 (human) or 1 (bot)")
    fail_where(frame, keys.duplicated().to_numpy(), KEY, path, "each session once")
    return pd.DataFrame({KEY: keys, VALUE: labels}, index=frame.index)


def check_part(part: str, rows: pd.DataFrame) -> str | None:
    """Why the `part` labels cannot be scored (one class only), or None."""
    if rows[VALUE].nunique() < 2:
        kind = "bots" if len(rows) and rows[VALUE].iloc[0] == 1 else "humans"
        return f"the {part} labels need both humans and bots ({len(rows)} sessions, all {kind})"
    return None


def score(metric: str, predictions: pd.DataFrame, labels: pd.DataFrame) -> float:
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    from airush.abuse.metrics import equal_error_rate, recall_at_fpr

    scored = predictions.assign(session_id=predictions[KEY].astype(str)).drop_duplicates(KEY)
    merged = labels.merge(scored, on=KEY, how="left")
    missing = merged["score"].isna().to_numpy()
    if missing.any():
        raise UserError(
            f"the model scored no session {merged[KEY].iloc[int(np.argmax(missing))]} ({int(missing.sum())} "
            f"of {len(merged)} labelled sessions unscored): the board's inputs and labels do not match"
        )
    y, s = merged[VALUE].to_numpy(), merged["score"].to_numpy(np.float64)
    if metric == "roc_auc":
        return float(roc_auc_score(y, s))
    if metric == "pr_auc":
        return float(average_precision_score(y, s))
    if metric == "f1":
        return float(f1_score(y, merged["flagged"].astype(bool).to_numpy()))
    if metric == "eer":
        return equal_error_rate(y, s)
    return recall_at_fpr(y, s, 0.01)
