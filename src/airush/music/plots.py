"""Evaluation figures logged with every music run: accuracy over K, all items against cold-start items,
catalogue coverage against popularity of what is recommended, and the model's training curves. Drawn from
the run's own metrics with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import re
from pathlib import Path

from airush.figures import pyplot, save

ACCURACY = ("ndcg", "recall", "precision", "hit", "mrr", "map")
AT_K = re.compile(r"(?P<name>[a-z_]+?)_at_(?P<k>\d+)$")


def metrics_over_k(metrics: dict[str, float], prefix: str = "") -> dict[str, dict[int, float]]:
    """{name: {K: value}} of the `<prefix><name>_at_<K>` metrics (prefix "" = test, "cold_" = cold items)."""
    by_name: dict[str, dict[int, float]] = {}
    for key, value in metrics.items():
        if not key.startswith(prefix):
            continue
        match = AT_K.fullmatch(key[len(prefix) :])
        if match and not match["name"].startswith(("cold_", "valid_")):
            by_name.setdefault(match["name"], {})[int(match["k"])] = value
    return by_name


def save_evaluation_plots(
    metrics: dict[str, float], history: dict[str, dict[int, float]], out_dir: Path
) -> list[Path]:
    """Write metrics_over_k.png, cold_vs_all.png, coverage_popularity.png (and training_curves.png for a
    model with curves) into `out_dir`; a figure whose metrics the run lacks is left out."""
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    test, cold = metrics_over_k(metrics), metrics_over_k(metrics, "cold_")
    shown = [name for name in ACCURACY if name in test]
    if shown:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name in shown:
            ks = sorted(test[name])
            ax.plot(ks, [test[name][k] for k in ks], marker="o", label=name)
        ax.set(xlabel="K", ylabel="test value", title="accuracy over K (full ranking, test)", xscale="log")
        ax.legend()
        written.append(save(fig, out_dir / "metrics_over_k.png"))
    pairs = [name for name in ("ndcg", "recall") if name in test and name in cold]
    if pairs:
        fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4), squeeze=False)
        for ax, name in zip(axes[0], pairs, strict=True):
            ks = sorted(set(test[name]) & set(cold[name]))
            width = 0.4
            ax.bar(
                [i - width / 2 for i in range(len(ks))], [test[name][k] for k in ks], width, label="all items"
            )
            ax.bar(
                [i + width / 2 for i in range(len(ks))],
                [cold[name][k] for k in ks],
                width,
                label="cold items",
            )
            ax.set_xticks(range(len(ks)), [f"@{k}" for k in ks])
            ax.set(title=f"{name}: all vs cold-start items", ylabel="test value")
            ax.legend()
        written.append(save(fig, out_dir / "cold_vs_all.png"))
    if "coverage" in test and "mean_popularity" in test:
        ks = sorted(set(test["coverage"]) & set(test["mean_popularity"]))
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot([test["mean_popularity"][k] for k in ks], [test["coverage"][k] for k in ks], marker="o")
        for k in ks:
            ax.annotate(f"@{k}", (test["mean_popularity"][k], test["coverage"][k]))
        ax.set(
            xlabel="mean popularity of recommended items",
            ylabel="catalogue coverage",
            title="coverage against popularity",
        )
        written.append(save(fig, out_dir / "coverage_popularity.png"))
    curves = {name: curve for name, curve in history.items() if len(curve) > 1}
    if curves:
        fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4), squeeze=False)
        for ax, (name, curve) in zip(axes[0], sorted(curves.items()), strict=True):
            steps = sorted(curve)
            ax.plot(steps, [curve[s] for s in steps])
            ax.set(xlabel="iteration", title=name)
        written.append(save(fig, out_dir / "training_curves.png"))
    return written
