"""How much each session feature hangs on the synthetic generator's recording environment, not on the person.

    .venv/bin/python scripts/abuse_feature_shift.py [--features all|mouse] [--resample-ms 20]
        [--n-users 400] [--bot-share 0.15] [--seed 0] [--top 15] [--out shift.csv]

For each environment dimension of conf/data/synthetic_abuse.yaml, data is generated under each level (every
level with its own seed: other people, other bots), features are built from conf/features/<features>.yaml
(with `resample_ms` passed to SessionFeatures), and for every feature the two-sample Kolmogorov-Smirnov
statistic (scipy.stats.ks_2samp) compares the humans of two levels, and separately the bots of two levels.
A feature people do not change with the logger, device or screen has a small KS; one that measures the
logger has a large one. Levels: logger browser / raw OS hook / remote desktop (each alone), device mouse /
touchpad, one fixed 1080p 60 Hz browser / every environment (`vary_environment`). The column `null` compares
two independent draws of the default (varied) data: the KS that sampling noise alone gives.

Printed: features sorted by their largest human KS over the dimensions (null excluded), the mean over
features of each column, and the same table for bots (in the humans' order). `--out` writes every feature's KS (humans and bots)
as CSV. NaN-only features (nothing to measure in either level) are left out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
LEVELS = {
    "browser": {"logger_shares": {"browser": 1.0}},
    "raw": {"logger_shares": {"raw": 1.0}},
    "remote": {"logger_shares": {"remote": 1.0}},
    "mouse": {"touchpad_share": 0.0},
    "touchpad": {"touchpad_share": 1.0},
    "fixed": {"vary_environment": False},
    "varied": {},
    "varied again": {},
}
# column name: (level, level) compared
PAIRS = {
    "browser vs raw": ("browser", "raw"),
    "browser vs remote": ("browser", "remote"),
    "raw vs remote": ("raw", "remote"),
    "mouse vs touchpad": ("mouse", "touchpad"),
    "fixed vs varied": ("fixed", "varied"),
    "null": ("varied", "varied again"),
}
SEED_STRIDE = 1000  # level k is drawn with seed + k * SEED_STRIDE


def level_features(level: int, settings: dict, args) -> tuple[pd.DataFrame, np.ndarray]:
    """Features of every session generated under `settings`, and each session's label (1 = bot)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    data = OmegaConf.load(CONF / "data" / "synthetic_abuse.yaml")
    generator = instantiate(data, n_users=args.n_users, bot_share=args.bot_share, **settings)
    log = generator.load(seed=args.seed + level * SEED_STRIDE)
    features = instantiate(OmegaConf.load(CONF / "features" / f"{args.features}.yaml"))
    if args.resample_ms is not None:
        features = _with_resampling(features, args.resample_ms)
    ids = log.sessions["session_id"].to_numpy()
    return features.transform(log.events, ids), log.sessions["label"].to_numpy()


def _with_resampling(features, resample_ms: float):
    """The same feature set with `resample_ms` set on every SessionFeatures in it."""
    from airush.abuse.features import CombinedFeatures, SessionFeatures

    if isinstance(features, SessionFeatures):
        features.resample_ms = resample_ms
    elif isinstance(features, CombinedFeatures):
        for part in features.parts:
            _with_resampling(part, resample_ms)
    else:
        raise SystemExit(f"--resample-ms: {type(features).__name__} has no resample_ms")
    return features


def ks_columns(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    """KS statistic per column between the finite values of `a` and of `b`; NaN where either has none."""
    from scipy.stats import ks_2samp

    out = {}
    for column in a.columns:
        x, y = a[column].to_numpy(np.float64), b[column].to_numpy(np.float64)
        x, y = x[np.isfinite(x)], y[np.isfinite(y)]
        out[column] = ks_2samp(x, y).statistic if len(x) and len(y) else np.nan
    return pd.Series(out, dtype=np.float64)


def shift_table(frames: dict[str, tuple[pd.DataFrame, np.ndarray]], label: int) -> pd.DataFrame:
    """One row per feature, one column per PAIRS entry: the KS between the sessions with `label` of the two
    levels; rows sorted by their largest KS over the dimensions (not `null`), NaN-only rows dropped."""

    def sessions(level: str) -> pd.DataFrame:
        X, y = frames[level]
        return X[y == label]

    table = pd.DataFrame({name: ks_columns(sessions(a), sessions(b)) for name, (a, b) in PAIRS.items()})
    table = table.dropna(how="all")
    dimensions = [c for c in table.columns if c != "null"]
    table.insert(0, "max", table[dimensions].max(axis=1))
    return table.sort_values("max", ascending=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="all", choices=["all", "mouse"])
    parser.add_argument("--resample-ms", type=float, default=None, help="SessionFeatures.resample_ms")
    parser.add_argument("--n-users", type=int, default=400)
    parser.add_argument("--bot-share", type=float, default=0.15, help="so each level has bots to compare")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=15, help="rows printed per table (all with --top 0)")
    parser.add_argument("--out", type=Path, default=None, help="a CSV of every feature's KS")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    frames = {}
    for k, (level, settings) in enumerate(LEVELS.items()):
        frames[level] = level_features(k, settings, args)
        print(f"{level}: {len(frames[level][1])} sessions ({time.perf_counter() - start:.0f} s)", flush=True)
    humans = shift_table(frames, 0)
    bots = shift_table(frames, 1)
    tables = {"humans": humans, "bots": bots.loc[[f for f in humans.index if f in bots.index]]}
    resample = "none" if args.resample_ms is None else f"{args.resample_ms:g} ms"
    for who, table in tables.items():
        shown = table.head(args.top) if args.top else table
        print(f"\nKS between levels, {who}, features={args.features}, resample={resample}, seed {args.seed}")
        print(pd.concat([shown, table.mean().to_frame("mean over features").T]).to_markdown(floatfmt=".3f"))
    if args.out:
        long = pd.concat(tables, names=["sessions", "feature"]).reset_index()
        long.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
