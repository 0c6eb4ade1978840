"""Idle statistics per session: how a session pauses between input events (`features=with_idle` adds them to
airush's session features through `airush.abuse.features.CombinedFeatures`).

People stop to read and think: their gaps between events are long-tailed, with pauses of every length. Scripts
either never pause or pause on a timer. Times in ms unless a name says `_s`; a session with fewer than two
events has no gaps, so its columns are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from airush.abuse.features import FeatureSet


@dataclass
class IdleFeatures(FeatureSet):
    pause_ms: float = 1000.0  # a longer gap between two events (any device) is a pause
    idle_ms: float = 10000.0  # a longer one means the user left the keyboard and mouse alone

    ranges: ClassVar[dict[str, str]] = {"pause_ms": "> 0", "idle_ms": "> 0"}

    def chunk_features(self, events: pd.DataFrame, unit_ids: np.ndarray) -> pd.DataFrame:
        session = events["session_id"].to_numpy()
        t = events["t_ms"].to_numpy(np.float64)
        same = session[1:] == session[:-1]  # events are sorted by session, then time
        gaps = pd.DataFrame({"session_id": session[1:][same], "gap": np.diff(t)[same]})
        gaps["paused"] = gaps["gap"] > self.pause_ms
        gaps["paused_ms"] = gaps["gap"].where(gaps["paused"], 0.0)
        gaps["idle"] = gaps["gap"] > self.idle_ms
        by = gaps.groupby("session_id", sort=True)
        total = by["gap"].sum()
        out = pd.DataFrame(
            {
                "idle_gap_median_ms": by["gap"].median(),
                "idle_gap_cv": by["gap"].std(ddof=0) / by["gap"].mean(),
                "idle_pauses": by["paused"].sum().astype(np.float64),
                "idle_pause_share": by["paused_ms"].sum() / total.where(total > 0),
                "idle_longest_s": by["gap"].max() / 1000.0,
                "idle_periods": by["idle"].sum().astype(np.float64),
            }
        )
        out = out.reindex(pd.Index(unit_ids, name="session_id"))
        minutes = (total / 60000.0).reindex(out.index)
        out["idle_pauses_per_min"] = out["idle_pauses"] / minutes.where(minutes > 0)
        return out
