"""Peak memory of full_ranking_metrics up to 1M users x 100k items: bounded by the block size, not the users.

    python scripts/bench_eval_memory.py [--users 10000 100000 1000000] [--items 100000] [--factors 64]

Each size runs in a fresh process on a synthetic factor model: random float32 user and item factors, score =
their dot product, 20 masked (train) and 5 test items per user, metrics at K = 10, 20, 50 with coverage and
mean popularity. The table prints the process RSS before the call (Python, numpy and the inputs: factors and
the two CSR matrices, which grow with the users), the peak RSS during the call (Linux VmHWM, reset just
before it through /proc/self/clear_refs) and their difference: the evaluator's own working memory, which
must stay the same from 10k to 1M users (about workers x 16 MB score blocks plus per-chunk temporaries).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def fixed_items_per_user(n_users: int, n_items: int, per_user: int, stride: int, seed: int) -> sp.csr_matrix:
    """`per_user` distinct items per user (a random start, then steps of `stride`), as CSR."""
    start = np.random.default_rng(seed).integers(0, n_items, n_users, dtype=np.int64)
    indices = (start[:, None] + stride * np.arange(per_user)) % n_items
    indptr = np.arange(n_users + 1, dtype=np.int64) * per_user
    matrix = sp.csr_matrix((np.ones(indices.size, np.float32), indices.ravel(), indptr), (n_users, n_items))
    matrix.sum_duplicates()
    return matrix


def one(n_users: int, n_items: int, factors: int) -> dict:
    from airush.music.metrics import full_ranking_metrics

    rng = np.random.default_rng(0)
    user_factors = rng.standard_normal((n_users, factors), dtype=np.float32)
    item_factors = rng.standard_normal((n_items, factors), dtype=np.float32)
    masked = fixed_items_per_user(n_users, n_items, 20, 7919, 1)
    truth = fixed_items_per_user(n_users, n_items, 5, 104729, 2)
    popularity = rng.random(n_items)

    def score(users: np.ndarray) -> np.ndarray:
        return user_factors[users] @ item_factors.T

    before = rss_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    wall, cpu = time.perf_counter(), time.process_time()
    metrics = full_ranking_metrics(score, masked, truth, [10, 20, 50], popularity)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = rss_mb("VmHWM")
    return {"before": before, "peak": peak, "wall": wall, "cpu": cpu, "ndcg": metrics["ndcg_at_10"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.users[0], args.items, args.factors)))
        return

    print(
        f"{'users':>9} {'items':>7} {'RSS before MB':>13} {'peak MB':>8} {'evaluator MB':>12} "
        f"{'wall s':>7} {'cpu s':>7} {'Mscores/s':>9} {'ndcg@10':>8}"
    )
    for n_users in args.users:
        command = [sys.executable, __file__, "--one", "--users", str(n_users), "--items", str(args.items)]
        out = subprocess.run([*command, "--factors", str(args.factors)], capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{n_users:>9} {args.items:>7} {r['before']:>13.0f} {r['peak']:>8.0f} {r['peak'] - r['before']:>12.0f} "
            f"{r['wall']:>7.1f} {r['cpu']:>7.1f} {n_users * args.items / r['wall'] / 1e6:>9.0f} {r['ndcg']:>8.5f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
