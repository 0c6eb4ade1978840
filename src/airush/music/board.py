"""What a music board scores (`airush.inference.board`): labels `user, item` (plays held out from the board's
inputs, the data set's own ids) against a submission's top-N rows `user, rank, item, score`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from airush.data.tables import fail_where
from airush.errors import UserError
from airush.music.metrics import METRICS, MIN_EVAL_USERS, ranking_metrics_from_hits

KEY, VALUE = "user", "item"
UNITS = "users"


def check_metric(metric: str, top_n: int | None) -> int:
    """The metric's K (`ndcg_at_10` -> 10): the items a submission is asked for unless `top_n` says more."""
    name, _, k = metric.rpartition("_at_")
    if name not in METRICS or not k.isdigit() or int(k) < 1:
        raise UserError(
            f"metric {metric!r} is not a music board metric (<{'|'.join(METRICS)}>_at_<K>, e.g. ndcg_at_10)"
        )
    if top_n is not None and top_n < int(k):
        raise UserError(f"top_n {top_n} is below the metric's K {k}")
    return int(k)


def higher_is_better(metric: str) -> bool:
    return True


def typed_labels(frame: pd.DataFrame, keys: pd.Series, path: Path) -> pd.DataFrame:
    """Item ids as text; a (user, item) pair repeated counts once."""
    items = frame[VALUE].astype(str).str.strip()
    fail_where(frame, (items == "").to_numpy(), VALUE, path, "an item id")
    labels = pd.DataFrame({KEY: keys, VALUE: items}, index=frame.index)
    return labels[~labels.duplicated([KEY, VALUE])]


def check_part(part: str, rows: pd.DataFrame) -> str | None:
    users = rows[KEY].nunique()
    if users < MIN_EVAL_USERS:
        return f"the {part} labels hold {users} users; at least {MIN_EVAL_USERS} are needed for a score worth ranking"
    return None


def score(metric: str, predictions: pd.DataFrame, labels: pd.DataFrame) -> float:
    """Mean metric@K over the labelled users: each user's top K (by rank) against the items held out."""
    k = check_metric(metric, None)
    top = predictions.assign(user=predictions[KEY].astype(str), item=predictions[VALUE].astype(str))
    top = top[top["rank"] <= k]
    users = pd.Index(labels[KEY].unique())
    missing = ~users.isin(top[KEY].unique())
    if missing.any():
        raise UserError(
            f"no recommendations for user {users[int(np.argmax(missing))]} ({int(missing.sum())} of {len(users)} "
            "labelled users): the board's inputs and labels do not match"
        )
    top = top[top[KEY].isin(users)]
    relevant = set(zip(labels[KEY], labels[VALUE], strict=True))
    hits = np.zeros((len(users), k), dtype=bool)
    hits[users.get_indexer(top[KEY]), top["rank"].to_numpy(np.int64) - 1] = [
        pair in relevant for pair in zip(top[KEY], top[VALUE], strict=True)
    ]
    n_relevant = labels.groupby(KEY).size().reindex(users).to_numpy()
    return float(ranking_metrics_from_hits(hits, n_relevant, [k])[metric].mean())
