"""Evaluation figures logged with every music run: accuracy over K, all items against cold-start items,
catalogue coverage against popularity of what is recommended, and the model's training curves. Drawn from
the run's own metrics with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

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
    metrics: dict[str, float],
    history: dict[str, dict[int, float]],
    out_dir: Path,
    per_user: dict[str, np.ndarray] | None = None,
) -> list[Path]:
    """Write metrics_over_k.png, cold_vs_all.png, coverage_popularity.png, training_curves.png (a model with
    curves) and <metric>_per_user.png (each `per_user` metric's spread over test users) into `out_dir`; a
    figure whose metrics the run lacks is left out."""
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
    for name, values in (per_user or {}).items():
        if len(values):
            written.append(per_user_histogram(plt, name, values, out_dir / f"{name}_per_user.png"))
    return written


def per_user_histogram(plt, name: str, values: np.ndarray, path: Path) -> Path:
    """How a metric spreads over test users: the mean hides users served nothing (the bar at 0)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(values, bins=np.linspace(0.0, 1.0, 21), color="tab:blue", edgecolor="white")
    mean, zero = float(values.mean()), float((values == 0).mean())
    ax.axvline(mean, color="tab:red", linestyle="--", label=f"mean {mean:.4f}")
    ax.set(
        xlabel=f"{name} of a user",
        ylabel="test users",
        title=f"{name} per user ({len(values)} users, {zero:.0%} at 0)",
    )
    ax.legend()
    return save(fig, path)
