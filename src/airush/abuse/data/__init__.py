"""The event-log schema every abuse data source produces.

events (one row per input event, sorted by session_id then t_ms):
    session_id int64 · t_ms float64 (ms from session start) · event category (EVENT_KINDS)
    key int16 (virtual key code, -1 for mouse events) · x, y float32 (screen px, NaN for key events)
    button category (BUTTONS; "none" for moves and key events)
sessions (one row per session):
    session_id int64 · user_id int64 (the account) · label int8 (1 = bot/intruder) · kind str ("human" or a bot kind)
    · part str, optional: "train"/"test" where the data set fixes its own split (Balabit)
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

EVENT_KINDS = ("key_down", "key_up", "move", "button_down", "button_up", "drag", "wheel")
KEY_EVENTS = ("key_down", "key_up")
BUTTONS = ("none", "left", "right", "middle", "x")  # x: extra (side) buttons
HUMAN = "human"


@dataclass
class EventLog:
    events: pd.DataFrame
    sessions: pd.DataFrame

    @property
    def n_events(self) -> int:
        return len(self.events)


class EventSource:
    """What `data=` builds for the abuse task: `load(seed, stages)` returns the sessions' `EventLog` in the
    schema above (`stages`: `airush.console.Stages` for progress, may be None). A user's own source
    subclasses this, or declares `task = "abuse"`; settings that are paths to its files may be declared in
    `inputs` (`airush.data.inputs`), so a missing one is refused before anything heavy loads."""

    task = "abuse"

    def load(self, seed: int = 0, stages=None) -> EventLog:
        raise NotImplementedError
