"""Evaluation figures logged with every abuse run: ROC and PR curves, score histograms by class, feature
importance and the reliability diagram of calibrated probabilities. Drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from airush.figures import pyplot, save


def save_evaluation_plots(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, importance: pd.Series | None, out_dir: Path
) -> list[Path]:
    """Write roc.png, pr.png, score_histogram.png (and feature_importance.png) into `out_dir`."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if 0 < y_true.sum() < len(y_true):
        fpr, tpr, _ = roc_curve(y_true, scores)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(fpr, tpr, label=f"ROC-AUC {roc_auc_score(y_true, scores):.3f}")
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
        ax.set(xlabel="false positive rate", ylabel="true positive rate (recall)", title="ROC, test")
        ax.legend(loc="lower right")
        written.append(save(fig, out_dir / "roc.png"))

        precision, recall, _ = precision_recall_curve(y_true, scores)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(recall, precision, label=f"PR-AUC {average_precision_score(y_true, scores):.3f}")
        ax.axhline(y_true.mean(), ls="--", c="grey", lw=0.8, label=f"positive share {y_true.mean():.3f}")
        ax.set(xlabel="recall", ylabel="precision", title="precision-recall, test", ylim=(0, 1.02))
        ax.legend(loc="lower left")
        written.append(save(fig, out_dir / "pr.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41)
    for label, name in ((0, "human / owner"), (1, "bot / intruder")):
        if (y_true == label).any():  # a test set of one class (humans only) has no other to draw
            ax.hist(scores[y_true == label], bins=bins, alpha=0.6, density=True, label=name)
    ax.axvline(threshold, c="k", lw=1, label=f"threshold {threshold:.3f}")
    ax.set(xlabel="score", ylabel="density", title="test scores by class")
    ax.legend()
    written.append(save(fig, out_dir / "score_histogram.png"))

    if importance is not None and len(importance):
        top = importance.head(25)[::-1]
        fig, ax = plt.subplots(figsize=(6, 0.25 * len(top) + 1))
        ax.barh(top.index, top.to_numpy())
        xlabel = "total gain" if importance.name == "gain" else str(importance.name)
        ax.set(xlabel=xlabel, title="feature importance (top 25)")
        written.append(save(fig, out_dir / "feature_importance.png"))
    return written


def save_reliability_plot(calibrated: pd.DataFrame, raw: pd.DataFrame, path: Path) -> Path:
    """The reliability diagram: observed bot rate against mean P(bot) per probability bin, for the calibrated
    probability and the raw score (`airush.abuse.calibration.reliability_table`); the diagonal is perfect.
    Marker area follows the bin's sessions, so a point from three sessions does not look like one of 3,000."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8, label="perfectly calibrated")
    for table, name in ((raw, "raw score"), (calibrated, "calibrated probability")):
        size = 300 * table["sessions"] / max(int(calibrated["sessions"].sum()), 1) + 8
        ax.plot(table["mean_probability"], table["bot_rate"], lw=1, alpha=0.8)
        ax.scatter(table["mean_probability"], table["bot_rate"], s=size, alpha=0.6, label=name)
    ax.set(
        xlabel="mean predicted P(bot) in bin",
        ylabel="observed bot rate in bin",
        title="reliability, test",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left")
    return save(fig, path)


SPEED_SCALE = 2.0  # px/ms at the top of the mouse path's colour scale: the same colours in every picture


def save_session_picture(
    events: pd.DataFrame, top: pd.Series, title: str, path: Path, values: pd.Series | None = None
) -> Path:
    """One session at a glance, written to `path` (PNG): its mouse path coloured by speed (px/ms) with clicks
    marked, the inputs that drove its score (`top`: contributions to the log-odds of bot, as
    `airush.abuse.contributions` gives them; `values`: the inputs' values, shown beside their names), and
    its typing rhythm (hold and key-down gap per keystroke, ms; a flat line is a timer, a person scatters).
    `events`: the session's events in the abuse events schema, in time order. Panels sit at fixed places
    (room for long input names) rather than `tight_layout`, which would double the drawing time."""
    plt = pyplot()
    fig = plt.figure(figsize=(12, 7.5))
    _mouse_path(fig, fig.add_axes((0.075, 0.38, 0.38, 0.52)), events)
    _contributions(fig.add_axes((0.75, 0.43, 0.22, 0.47)), top, values)
    _typing_rhythm(fig.add_axes((0.075, 0.07, 0.895, 0.2)), events)
    fig.suptitle(title, fontsize=13, fontweight="bold", y=0.98)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _mouse_path(fig, ax, events: pd.DataFrame) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    kind = events["event"].astype(str).to_numpy()
    x, y = (events[c].to_numpy(np.float64) for c in ("x", "y"))
    t = events["t_ms"].to_numpy(np.float64)
    placed = ~np.isin(kind, ("key_down", "key_up")) & np.isfinite(x) & np.isfinite(y)
    x, y, t, kind = x[placed], y[placed], t[placed], kind[placed]
    ax.set(title="mouse path (screen px), coloured by speed", xlabel="x (px)", ylabel="y (px)")
    if len(x) == 0:
        ax.text(0.5, 0.5, "no mouse events", ha="center", va="center", transform=ax.transAxes, fontsize=12)
        ax.set(xticks=[], yticks=[])
        return
    speed = np.hypot(np.diff(x), np.diff(y)) / np.maximum(np.diff(t), 1.0)  # px/ms, time floored at 1 ms
    if len(speed):
        segments = np.stack([np.c_[x[:-1], y[:-1]], np.c_[x[1:], y[1:]]], axis=1)
        lines = LineCollection(segments, cmap="plasma", norm=Normalize(0, SPEED_SCALE), linewidths=1.8)
        lines.set_array(speed)
        ax.add_collection(lines)
        fig.colorbar(lines, ax=ax, label="speed (px/ms)", fraction=0.05, pad=0.02, extend="max")
    ax.scatter(x, y, s=3, c="0.45", alpha=0.5, zorder=1, label=f"{len(x)} samples")
    clicks = kind == "button_down"
    ax.scatter(
        x[clicks],
        y[clicks],
        s=90,
        facecolors="none",
        edgecolors="crimson",
        linewidths=1.8,
        zorder=3,
        label=f"{int(clicks.sum())} clicks",
    )
    ax.scatter(x[:1], y[:1], marker="^", s=80, c="green", zorder=4, label="start")
    ax.scatter(x[-1:], y[-1:], marker="s", s=60, c="black", zorder=4, label="end")
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    ax.invert_yaxis()  # screen y grows downwards
    ax.legend(loc="best", fontsize=8, framealpha=0.8)


def _contributions(ax, top: pd.Series, values: pd.Series | None) -> None:
    shown = top[::-1]
    labels = [str(n) if values is None else f"{n} = {values[n]:.3g}" for n in shown.index]
    colors = ["crimson" if v > 0 else "steelblue" for v in shown.to_numpy()]
    from matplotlib.ticker import MaxNLocator

    bars = ax.barh(labels, shown.to_numpy(), color=colors)
    ax.bar_label(bars, [f"{v:+.2g}" for v in shown.to_numpy()], padding=2, fontsize=8)
    ax.margins(x=0.15)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.axvline(0, c="k", lw=0.8)
    ax.set(
        title="why: top inputs", xlabel="contribution to log-odds\n(red: towards bot, blue: towards human)"
    )
    ax.tick_params(axis="y", labelsize=9)


def _typing_rhythm(ax, events: pd.DataFrame) -> None:
    from airush.compute.grouped import paired_next

    kind = events["event"].astype(str).to_numpy()
    t = events["t_ms"].to_numpy(np.float64)
    down = kind == "key_down"
    ax.set(title="typing rhythm", xlabel="keystroke", ylabel="ms (log)")
    if down.sum() == 0:
        ax.text(0.5, 0.5, "no typing", ha="center", va="center", transform=ax.transAxes, fontsize=12)
        ax.set(yticks=[])
        return
    up = kind == "key_up"
    key = events["key"].to_numpy(np.int64)
    press, release = paired_next(down, up, (np.zeros(len(t), np.int64), key), t)
    hold = pd.Series(t[release] - t[press], index=press).reindex(np.flatnonzero(down)).to_numpy()
    gap = np.diff(t[down])
    number = np.arange(1, down.sum() + 1)
    ax.set_title(f"typing rhythm: {int(down.sum())} keystrokes · gap {_spread(gap)} · hold {_spread(hold)}")
    ax.plot(
        number[1:], np.maximum(gap, 0.5), "o-", ms=3, lw=0.8, c="darkorange", label="gap from last key down"
    )
    ax.plot(number, np.maximum(hold, 0.5), "s", ms=3, c="teal", label="hold (down to up)")
    from matplotlib.ticker import LogLocator, NullLocator, StrMethodFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.legend(loc="upper right", fontsize=8)


def _spread(ms: np.ndarray) -> str:
    """ "median 98 ms, CV 0.41" (CV: std / mean; 0 on a timer)."""
    ms = ms[np.isfinite(ms)]
    if not len(ms):
        return "none"
    cv = ms.std() / ms.mean() if ms.mean() > 0 else 0.0
    return f"median {np.median(ms):.0f} ms, CV {cv:.2f}"
