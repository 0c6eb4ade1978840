"""Session-feature throughput: the vectorised extractor vs the per-session pandas reference.

    python scripts/bench_features.py [--sizes 1e6 1e7] [--reference-events 2e5]

Prints events/s and peak memory (tracemalloc: Python + NumPy allocations) for the vectorised extractor at
each size, the reference's events/s on a slice (it runs at a steady rate per event, and would take hours on
10 M), the speed ratio, and checks both agree to 1e-9 on that slice. Goals: >= 20x the reference and
>= 3 M events/s per core; memory stays bounded because sessions go in chunks of CHUNK_EVENTS events.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from airush.abuse.data.synthetic import SyntheticSessions
from airush.abuse.features import CHUNK_EVENTS, SessionFeatures
from airush.abuse.features_reference import reference_features


def synthetic_log(n_events: float, seed: int = 0):
    """Enough synthetic sessions for about n_events events (~700 events per session by default)."""
    users = max(1, int(n_events / 2400))
    return SyntheticSessions(n_users=users, sessions_per_user=4, bot_share=0.05).load(seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7])
    parser.add_argument("--reference-events", type=float, default=2e5)
    args = parser.parse_args()

    ref_log = synthetic_log(args.reference_events, seed=1)
    ids = ref_log.sessions["session_id"].to_numpy()
    start = time.perf_counter()
    slow = reference_features(ref_log.events, ids)
    ref_rate = ref_log.n_events / (time.perf_counter() - start)
    fast = SessionFeatures().transform(ref_log.events, ids)
    np.testing.assert_allclose(
        fast.to_numpy(), slow[fast.columns].to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True
    )
    print(
        f"reference (per-session pandas): {ref_rate:,.0f} events/s on {ref_log.n_events:,} events; equal to 1e-9"
    )
    print(f"chunk size {CHUNK_EVENTS:,} events\n")
    print(
        f"{'events':>12} {'sessions':>9} {'seconds':>8} {'events/s':>12} {'ratio vs ref':>13} {'peak MB':>8}"
    )
    for size in args.sizes:
        log = synthetic_log(size)
        ids = log.sessions["session_id"].to_numpy()
        tracemalloc.start()
        start = time.perf_counter()
        SessionFeatures().transform(log.events, ids)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        rate = log.n_events / seconds
        print(
            f"{log.n_events:>12,} {len(ids):>9,} {seconds:>8.2f} {rate:>12,.0f} {rate / ref_rate:>12.0f}x {peak:>8.0f}"
        )


if __name__ == "__main__":
    main()
