"""Session-feature throughput: the vectorised extractor vs the per-session pandas reference.

    PYTHONPATH=tests python scripts/bench_features.py [--sizes 1e6 1e7 2e7] [--reference-events 2e5] [--repeat 2]

For each size: wall-clock events/s, events/s per core (events over process CPU seconds, which a shared
machine disturbs less than the wall clock), the ratio to the reference (CPU time against CPU time), and
peak memory (tracemalloc: Python + NumPy allocations made by the extractor, the input not counted).
Sessions go in chunks of CHUNK_EVENTS events, so the per-session features' memory stops growing once a
run spans more than one chunk; the copied shares (airush.abuse.copies) keep 16 bytes per click triple and
per sampled pointer run of the whole log, which is what still grows (slowly) with the size.
The reference runs on a slice (it runs at a steady rate per event and would take hours on 10 M); both
must agree to 1e-9 there. Goals: >= 20x the reference and >= 3 M events/s per core.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from functools import partial

import numpy as np

from airush.abuse.copies import COPIED_COLUMNS
from airush.abuse.data.synthetic import SyntheticSessions
from airush.abuse.features import CHUNK_EVENTS, SessionFeatures
from reference.features_reference import reference_features

EVENTS_PER_USER = 4300  # 4 sessions of ~1,075 keyboard + mouse events with the generator's defaults


def synthetic_log(n_events: float, seed: int = 0):
    """Synthetic sessions adding up to about n_events events."""
    users = max(1, round(n_events / EVENTS_PER_USER))
    return SyntheticSessions(n_users=users, sessions_per_user=4, bot_share=0.05).load(seed=seed)


def timed(fn, repeat: int) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds) over `repeat` runs."""
    wall, cpu = np.inf, np.inf
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7, 2e7])
    parser.add_argument("--reference-events", type=float, default=2e5)
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs per size")
    args = parser.parse_args()

    ref_log = synthetic_log(args.reference_events, seed=1)
    ids = ref_log.sessions["session_id"].to_numpy()
    slow = {}
    _, ref_cpu = timed(lambda: slow.update(frame=reference_features(ref_log.events, ids)), 1)
    ref_rate = ref_log.n_events / ref_cpu
    fast = SessionFeatures().transform(ref_log.events, ids)
    # the copied shares compare sessions with each other: tests/test_cross_session.py checks them against
    # their own reference; timings below include them
    shared = [c for c in fast.columns if c in slow["frame"].columns]
    assert len(shared) == fast.shape[1] - len(COPIED_COLUMNS)
    np.testing.assert_allclose(
        fast[shared].to_numpy(), slow["frame"][shared].to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True
    )
    print(
        f"reference (per-session pandas): {ref_rate:,.0f} events/s per core on {ref_log.n_events:,} "
        f"events, {fast.shape[1]} features; vectorised equal to 1e-9"
    )
    print(f"chunk size {CHUNK_EVENTS:,} events\n")
    print(
        f"{'events':>12} {'sessions':>9} {'wall s':>7} {'events/s':>11} {'CPU s':>7} {'per core':>11} "
        f"{'vs ref':>7} {'peak MB':>8}"
    )
    for size in args.sizes:
        log = synthetic_log(size)
        ids = log.sessions["session_id"].to_numpy()
        tracemalloc.start()
        SessionFeatures().transform(log.events, ids)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        wall, cpu = timed(partial(SessionFeatures().transform, log.events, ids), args.repeat)
        per_core = log.n_events / cpu
        print(
            f"{log.n_events:>12,} {len(ids):>9,} {wall:>7.2f} {log.n_events / wall:>11,.0f} {cpu:>7.2f} "
            f"{per_core:>11,.0f} {per_core / ref_rate:>6.0f}x {peak:>8.0f}"
        )


if __name__ == "__main__":
    main()
