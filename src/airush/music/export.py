"""Top-N recommendations for every user, written as CSV and Melon-style JSON.

Checked the way the Melon (Kakao Arena) scorer checks a submission before it is written: exactly N
distinct items per user and none the user already played. Ids are the data set's own, not airush's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from airush.errors import ConfigError
from airush.music.ranking import membership, top_k_blocks


def top_n_for_all_users(score, seen: sp.csr_matrix, n: int, batch_users: int = 2048) -> np.ndarray:
    """(n_users, n) item ids, best first, never an item in the user's `seen` row; scored in blocks."""
    n_users, n_items = seen.shape
    out = np.empty((n_users, n), dtype=np.int64)
    for users, top in top_k_blocks(score, np.arange(n_users), n_items, n, seen, batch_users):
        out[users] = top
    return out


def check_top_n(top: np.ndarray, seen: sp.csr_matrix, n: int) -> None:
    """Exactly n distinct, unseen items per user, or a one-line error naming the first user that fails."""
    short = (top < 0).any(axis=1) | (top.shape[1] != n)
    if short.any():
        user = int(np.flatnonzero(short)[0])
        unseen = seen.shape[1] - seen[user].nnz
        raise ConfigError(
            f"task.recommend.top_n={n} but user {user} has only {unseen} items left to recommend"
        )
    ordered = np.sort(top, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
    if repeated.any() or membership(top, seen).any():  # a bug of ours, not the user's: fail loudly
        raise AssertionError("top-N lists with repeated or already-played items")


def write_top_n(top: np.ndarray, user_ids: np.ndarray, item_ids: np.ndarray, out_dir: Path) -> list[Path]:
    """recommendations.csv (user, rank, item) and recommendations.json ([{"id", "songs", "tags"}])."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n_users, n = top.shape
    items = item_ids[top]
    table = pd.DataFrame({"user": np.repeat(user_ids, n), "rank": np.tile(np.arange(1, n + 1), n_users),
                          "item": items.ravel()})  # fmt: skip
    csv_path, json_path = out_dir / "recommendations.csv", out_dir / "recommendations.json"
    table.to_csv(csv_path, index=False)
    records = [
        {"id": _plain(u), "songs": [_plain(i) for i in row], "tags": []}
        for u, row in zip(user_ids, items, strict=True)
    ]
    json_path.write_text(json.dumps(records, ensure_ascii=False))
    return [csv_path, json_path]


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
