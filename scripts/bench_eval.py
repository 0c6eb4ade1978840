"""Our full-ranking evaluator vs `implicit.evaluation.ranking_metrics_at_k` on the same ALS model and split.

    python scripts/bench_eval.py [--sizes 2000x4000 10000x10000 20000x20000] [--repeats 5] [--selection]

What each side computes. implicit 0.7 (evaluation.pyx) takes the users with a test item in batches of 1000,
calls model.recommend(batch, train[batch], N=K) (per 100 users: one gemm, the user's train items set to
-FLT_MAX, a C++ heap top-K, on model.num_threads threads) and accumulates precision, MAP, NDCG and AUC at
one K = 10. Ours ranks the same users over the same items with the same train items masked and computes
NDCG, Recall, Precision, Hit, MRR and MAP at K = 10, 20, 50, plus coverage and mean popularity, from one
top-50 selection. NDCG@10 and MAP@10 are defined alike on both sides (MAP divides by min(K, |R|)), so the
table prints the larger of their two absolute differences: it must be ~0 (the two gemms round differently,
which can swap near-equal scores; a real disagreement is orders of magnitude larger).

implicit runs as its docs recommend (BLAS held to one thread, its own threads on every core); ours runs as
airush calls it (default BLAS threads). The two alternate run by run; times are medians over --repeats of
wall clock and of process CPU time (all threads), ratio = ours / implicit (goal: wall ratio <= 1.0). The
machine may be shared: the CPU ratio is the steadier number. "peak MB" is our evaluator's peak of traced
allocations (tracemalloc, numpy included) in one extra, untimed run.

--selection adds a table for the top-K step alone, on 16 MB blocks of random scores with 30 masked items
per row: CPU ns per score of `top_k_items` against np.argpartition of every row plus a sort of its top K
(the core of the previous evaluator, before its exact tie fix-ups).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np
import scipy.sparse as sp

KS = [10, 20, 50]


def synthetic_split(n_users: int, n_items: int, seed: int = 0):
    from airush.music.data.synthetic import SyntheticPlays
    from airush.music.split import per_user_random_split

    plays = SyntheticPlays(n_users=n_users, n_items=n_items, n_artists=max(n_items // 10, 10)).load(seed=seed)
    parts = per_user_random_split(plays.interactions, {"train": 0.8, "test": 0.2}, seed, 5)

    def csr(frame):
        data = np.ones(len(frame), np.float32)
        return sp.csr_matrix((data, (frame["user"], frame["item"])), shape=(plays.n_users, plays.n_items))

    return csr(parts["train"]), csr(parts["test"])


def timed(run) -> tuple[dict, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def row_argpartition(scores: np.ndarray, k: int, exclude: sp.csr_matrix) -> np.ndarray:
    """Top-k ids per row by np.argpartition of the whole row, then a sort of the k (ties unordered)."""
    neg = -scores
    neg[np.repeat(np.arange(len(scores)), np.diff(exclude.indptr)), exclude.indices] = np.inf
    part = np.argpartition(neg, k, axis=1)[:, :k]
    return np.take_along_axis(part, np.argsort(np.take_along_axis(neg, part, 1), 1), 1)


def selection_table(repeats: int) -> None:
    from functools import partial

    from airush.music.ranking import top_k_items

    print(f"{'items':>7} {'K':>3} {'ours ns/score':>13} {'argpartition ns/score':>21} {'ratio':>6}")
    rng = np.random.default_rng(0)
    for n_items in (4_000, 20_000, 100_000):
        n_users = (1 << 22) // n_items
        user_f = rng.standard_normal((n_users, 64), dtype=np.float32)
        scores = user_f @ rng.standard_normal((n_items, 64), dtype=np.float32).T
        exclude = sp.random(n_users, n_items, density=30 / n_items, format="csr", random_state=0)
        for k in (10, 50):
            cpu = {}
            for name, run in (("ours", top_k_items), ("argpartition", row_argpartition)):
                runs = [timed(partial(run, scores, k, exclude))[2] for _ in range(repeats)]
                cpu[name] = statistics.median(runs) / scores.size * 1e9
            print(
                f"{n_items:>7} {k:>3} {cpu['ours']:>13.2f} {cpu['argpartition']:>21.2f} "
                f"{cpu['ours'] / cpu['argpartition']:>6.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=["2000x4000", "10000x10000", "20000x20000"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--selection", action="store_true", help="also time the top-K step alone")
    args = parser.parse_args()

    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k
    from threadpoolctl import threadpool_limits

    from airush.music.metrics import full_ranking_metrics

    print(
        f"{'users x items':>13} {'ours s':>7} {'impl s':>7} {'wall ratio':>10} {'ours cpu':>8} {'impl cpu':>8} "
        f"{'cpu ratio':>9} {'ndcg@10':>8} {'map@10':>8} {'|diff|':>8} {'peak MB':>7}"
    )
    for size in args.sizes:
        n_users, n_items = (int(v) for v in size.split("x"))
        train, test = synthetic_split(n_users, n_items)
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(factors=64, iterations=10, random_state=0, num_threads=0)
            model.fit(train, show_progress=False)
        users_f, items_f = np.asarray(model.user_factors), np.asarray(model.item_factors)
        popularity = np.asarray((train > 0).sum(axis=0)).ravel() / n_users

        def score(users, users_f=users_f, items_f=items_f):
            return users_f[users] @ items_f.T

        def ours(train=train, test=test, popularity=popularity, score=score):
            return full_ranking_metrics(score, train, test, KS, popularity)

        def theirs(model=model, train=train, test=test):
            with threadpool_limits(1, "blas"):
                return ranking_metrics_at_k(model, train, test, K=10, show_progress=False)

        runs = {"ours": [], "theirs": []}
        for _ in range(args.repeats):
            for name, run in (("ours", ours), ("theirs", theirs)):
                runs[name].append(timed(run))
        mine, their = runs["ours"][0][0], runs["theirs"][0][0]
        diff = max(abs(mine["ndcg_at_10"] - their["ndcg"]), abs(mine["map_at_10"] - their["map"]))
        wall = {name: statistics.median(r[1] for r in rs) for name, rs in runs.items()}
        cpu = {name: statistics.median(r[2] for r in rs) for name, rs in runs.items()}

        tracemalloc.start()
        ours()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(
            f"{size:>13} {wall['ours']:>7.2f} {wall['theirs']:>7.2f} {wall['ours'] / wall['theirs']:>10.2f} "
            f"{cpu['ours']:>8.2f} {cpu['theirs']:>8.2f} {cpu['ours'] / cpu['theirs']:>9.2f} "
            f"{mine['ndcg_at_10']:>8.5f} {mine['map_at_10']:>8.5f} {diff:>8.1e} {peak:>7.0f}",
            flush=True,
        )
    if args.selection:
        selection_table(args.repeats)


if __name__ == "__main__":
    main()
