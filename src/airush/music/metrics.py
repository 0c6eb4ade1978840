"""Full-ranking top-K metrics: every item is a candidate, each user's known items are masked.

For a user u with relevant (test) set R_u, masked set M_u (train, and valid at test time) and top-K list
L_u = [i_1..i_K] ranked over all items not in M_u (ties -> lower item id), with rel_j = [i_j ∈ R_u]:

    recall_at_K    = Σ_j rel_j / |R_u|
    Precision@K = Σ_j rel_j / K
    Hit@K       = 1 if Σ_j rel_j > 0 else 0
    NDCG@K      = (Σ_j rel_j / log2(j + 1)) / (Σ_{j=1}^{min(|R_u|, K)} 1 / log2(j + 1))
    MRR@K       = 1 / (rank of the first relevant item in L_u), 0 if none
    MAP@K       = (Σ_j rel_j · Precision@j) / min(|R_u|, K)

each averaged over users with |R_u| > 0 (binary relevance, RecBole's definitions). Catalogue coverage@K is
the share of all items that appear in at least one top-K list; mean popularity@K the average share of
training users who played a recommended item.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from airush.music.ranking import membership, top_k_blocks

METRICS = ("ndcg", "recall", "precision", "hit", "mrr", "map")
# The default of `task.min_eval_users`: the fewest users valid and test metrics may average over.
MIN_EVAL_USERS = 10


def ranking_metrics_from_hits(
    hits: np.ndarray, n_relevant: np.ndarray, ks: list[int]
) -> dict[str, np.ndarray]:
    """Per-user metric values from a (users, max K) hit matrix in rank order."""
    kmax = hits.shape[1]
    discount = 1.0 / np.log2(np.arange(2, kmax + 2))
    ideal = np.cumsum(discount)
    hits_f = hits.astype(np.float64)
    cum_hits = np.cumsum(hits_f, axis=1)
    first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    precision_at = cum_hits / np.arange(1, kmax + 1)
    ap_terms = np.cumsum(precision_at * hits_f, axis=1)
    dcg = np.cumsum(hits_f * discount, axis=1)
    out = {}
    for k in ks:
        kk = min(k, kmax)
        n_hit = cum_hits[:, kk - 1]
        capped = np.minimum(n_relevant, k)
        out[f"recall_at_{k}"] = n_hit / n_relevant
        out[f"precision_at_{k}"] = n_hit / k
        out[f"hit_at_{k}"] = (n_hit > 0).astype(np.float64)
        out[f"ndcg_at_{k}"] = dcg[:, kk - 1] / ideal[np.minimum(capped, kmax) - 1]
        out[f"mrr_at_{k}"] = np.where((first_hit > 0) & (first_hit <= k), 1.0 / np.maximum(first_hit, 1), 0.0)
        out[f"map_at_{k}"] = ap_terms[:, kk - 1] / capped
    return out


def full_ranking_metrics(
    score: Callable[[np.ndarray], np.ndarray],
    masked: sp.csr_matrix,
    truth: sp.csr_matrix,
    ks: list[int],
    item_popularity: np.ndarray | None = None,
    batch_users: int = 2048,
    bar=None,
    per_user: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Mean metrics over users with at least one truth item; scoring in (users x items) blocks. `per_user`:
    a dict whose keys name metrics (e.g. "ndcg_at_10") to keep per evaluated user; filled in user order."""
    ks = sorted({int(k) for k in ks})
    n_items = truth.shape[1]
    kmax = min(max(ks), n_items)
    n_relevant_all = np.diff(truth.indptr)
    users = np.flatnonzero(n_relevant_all > 0)
    totals = {f"{m}_at_{k}": 0.0 for m in METRICS for k in ks}
    recommended = {k: np.zeros(n_items, dtype=bool) for k in ks}
    pop_sum = dict.fromkeys(ks, 0.0)
    kept: dict[str, list[np.ndarray]] = {}
    listed_count = dict.fromkeys(ks, 0)
    for batch, top in top_k_blocks(score, users, n_items, kmax, masked, batch_users):
        hits = membership(top, truth[batch])
        for name, values in ranking_metrics_from_hits(hits, n_relevant_all[batch], ks).items():
            totals[name] += float(values.sum())
            if per_user is not None and name in per_user:
                kept.setdefault(name, []).append(values)
        for k in ks:
            listed = top[:, :k][top[:, :k] >= 0]
            recommended[k][listed] = True
            listed_count[k] += len(listed)
            if item_popularity is not None:
                pop_sum[k] += float(item_popularity[listed].sum())
        if bar is not None:
            bar.advance(len(batch))
    if per_user is not None:
        for name in per_user:
            per_user[name] = np.concatenate(kept[name]) if name in kept else np.empty(0)
    n = max(len(users), 1)
    out = {name: total / n for name, total in totals.items()}
    for k in ks:
        out[f"coverage_at_{k}"] = float(recommended[k].mean())
        if item_popularity is not None:
            out[f"mean_popularity_at_{k}"] = pop_sum[k] / max(listed_count[k], 1)
    out["users_evaluated"] = float(len(users))
    return out
