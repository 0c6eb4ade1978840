"""Our full-ranking evaluator vs `implicit.evaluation.ranking_metrics_at_k` on the same ALS model and split.

    python scripts/bench_eval.py [--sizes 2000x4000 20000x20000]

implicit computes ndcg/map/precision/auc at one K; ours computes NDCG, Recall, Precision, Hit, MRR, MAP,
coverage and mean popularity at K = 10, 20, 50 in one pass. The overlapping metrics (NDCG@10 and MAP@10, same
definitions) must agree; the table prints both, the time ratio (ours / implicit, goal <= 1.0) and peak
memory of our evaluator.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import scipy.sparse as sp


def synthetic_split(n_users: int, n_items: int, seed: int = 0):
    from airush.music.data.synthetic import SyntheticPlays
    from airush.music.split import per_user_random_split

    plays = SyntheticPlays(n_users=n_users, n_items=n_items, n_artists=max(n_items // 10, 10)).load(seed=seed)
    parts = per_user_random_split(plays.interactions, {"train": 0.8, "test": 0.2}, seed, 5)

    def csr(frame):
        data = np.ones(len(frame), np.float32)
        return sp.csr_matrix((data, (frame["user"], frame["item"])), shape=(plays.n_users, plays.n_items))

    return csr(parts["train"]), csr(parts["test"])


def als_scorer(user_factors: np.ndarray, item_factors: np.ndarray):
    return lambda users: user_factors[users] @ item_factors.T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["2000x4000", "20000x20000"], help="users x items")
    parser.add_argument("--threads", type=int, default=1, help="threads for implicit's evaluator")
    args = parser.parse_args()

    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k
    from threadpoolctl import threadpool_limits

    from airush.music.metrics import full_ranking_metrics

    header = f"{'users x items':>15} {'ours s':>8} {'implicit s':>11} {'ratio':>7} {'ndcg ours':>10} {'ndcg impl':>10} {'map ours':>9} {'map impl':>9} {'peak MB':>8}"
    print(header)
    for size in args.sizes:
        n_users, n_items = (int(v) for v in size.split("x"))
        train, test = synthetic_split(n_users, n_items)
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(factors=64, iterations=10, random_state=0, num_threads=2)
            model.fit(train, show_progress=False)
        users_f, items_f = np.asarray(model.user_factors), np.asarray(model.item_factors)

        start = time.perf_counter()
        theirs = ranking_metrics_at_k(model, train, test, K=10, show_progress=False, num_threads=args.threads)
        t_implicit = time.perf_counter() - start

        tracemalloc.start()
        start = time.perf_counter()
        ours = full_ranking_metrics(als_scorer(users_f, items_f), train, test, [10, 20, 50])
        t_ours = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()

        print(
            f"{size:>15} {t_ours:>8.2f} {t_implicit:>11.2f} {t_ours / t_implicit:>7.2f} "
            f"{ours['ndcg_at_10']:>10.5f} {theirs['ndcg']:>10.5f} {ours['map_at_10']:>9.5f} {theirs['map']:>9.5f} "
            f"{peak:>8.0f}"
        )


if __name__ == "__main__":
    main()
