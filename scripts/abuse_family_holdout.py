"""Leave one bot family out: how a detector trained on airush's synthetic data scores a family it never saw.

    .venv/bin/python scripts/abuse_family_holdout.py [--seeds 0 1 2] [--bot-share 0.15]
        [--features all|mouse|keyboard] [--families linear humanizer ...] [--out table.csv]

Real automation is never exactly one of our bot families (issue 14), so what matters is whether what the
generator teaches carries over to a family it does not model. For each seed: generate the default synthetic
data (conf/data/synthetic_abuse.yaml; `--bot-share` raises the share of bot sessions so each family has
~40 sessions per seed to measure on), compute the session features once, and split accounts 70/15/15 as
the abuse task does. Then for each family k: train LightGBM (conf/model/lgbm.yaml) on the train and valid
splits without any session of k, set the threshold that flags 1% of the test split's people, and report
the share of k's sessions above it (all of k's sessions: none was trained on). `seen` is the same recall
for a detector trained on every family, on k's test-split sessions; `auc` is the held-out detector's
ROC-AUC of k's sessions against the test split's people. Printed: mean ± sample sd over seeds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

CONF = Path(__file__).resolve().parents[1] / "conf"


def build(group: str, name: str, **overrides):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(CONF / group / f"{name}.yaml")
    return instantiate(cfg, **overrides)


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if not len(pos) or not len(neg):
        return float("nan")
    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))


def one_seed(seed: int, bot_share: float, features: str, families: list[str] | None) -> list[dict]:
    from airush.abuse.split import user_disjoint_split

    data = build("data", "synthetic_abuse", bot_share=bot_share)
    log = data.load(seed=seed)
    sessions = log.sessions
    ids = sessions["session_id"].to_numpy()
    X = build("features", features).transform(log.events, ids)
    y = sessions["label"].to_numpy()
    kind = sessions["kind"].to_numpy()
    parts = user_disjoint_split(sessions, {"train": 0.7, "valid": 0.15, "test": 0.15}, seed=seed)
    tr, va, te = parts["train"], parts["valid"], parts["test"]
    test_people = te[y[te] == 0]

    def fit_and_score(exclude: str | None) -> np.ndarray:
        keep_tr = tr[kind[tr] != exclude] if exclude else tr
        keep_va = va[kind[va] != exclude] if exclude else va
        model = build("model", "lgbm", seed=seed)
        model.fit(X.iloc[keep_tr], y[keep_tr], X.iloc[keep_va], y[keep_va])
        return model.predict_proba(X)

    def recall_at_1pct(scores: np.ndarray, rows: np.ndarray) -> float:
        threshold = np.quantile(scores[test_people], 0.99)
        return float(np.mean(scores[rows] > threshold)) if len(rows) else float("nan")

    all_scores = fit_and_score(None)
    rows = []
    for family in families or sorted(set(kind) - {"human"}):
        scores = fit_and_score(family)
        held = np.flatnonzero(kind == family)
        seen = te[kind[te] == family]
        rows.append(
            {
                "seed": seed,
                "family": family,
                "n": len(held),
                "recall_held_out": recall_at_1pct(scores, held),
                "recall_seen": recall_at_1pct(all_scores, seen),
                "auc_held_out": auc(scores[held], scores[test_people]),
            }
        )
    return rows


def summary(table: pd.DataFrame) -> pd.DataFrame:
    def mean_sd(values: pd.Series) -> str:
        values = values.dropna()
        if not len(values):
            return "–"
        sd = values.std(ddof=1) if len(values) > 1 else 0.0
        return f"{values.mean():.2f} ± {sd:.2f}"

    grouped = table.groupby("family")
    return pd.DataFrame(
        {
            "sessions": grouped["n"].sum(),
            "recall@1%FPR held out": grouped["recall_held_out"].apply(mean_sd),
            "recall@1%FPR seen": grouped["recall_seen"].apply(mean_sd),
            "ROC-AUC held out": grouped["auc_held_out"].apply(mean_sd),
        }
    ).sort_values("recall@1%FPR held out")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--bot-share", type=float, default=0.15)
    parser.add_argument("--features", default="all", choices=["all", "mouse", "keyboard"])
    parser.add_argument("--families", nargs="+", default=None, help="default: every bot kind in the data")
    parser.add_argument("--out", type=Path, default=None, help="also write the per-seed rows as CSV")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = []
    for seed in args.seeds:
        rows += one_seed(seed, args.bot_share, args.features, args.families)
        print(f"seed {seed} done ({time.perf_counter() - start:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    print(
        f"\nleave-one-family-out, features={args.features}, bot_share={args.bot_share}, "
        f"seeds {' '.join(map(str, args.seeds))} ({time.perf_counter() - start:.0f} s)"
    )
    print(summary(table).to_markdown())


if __name__ == "__main__":
    main()
