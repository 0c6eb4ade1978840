"""The event-log schema every abuse data source produces.

events (one row per input event, sorted by session_id then t_ms):
    session_id int64 · t_ms float64 (ms from session start) · event category (EVENT_KINDS)
    key int16 (virtual key code, -1 for mouse events) · x, y float32 (screen px, NaN for key events)
    button category (BUTTONS; "none" for moves and key events)
sessions (one row per session):
    session_id int64 (in the order sessions began: features that compare a session with earlier ones, such
    as `airush.abuse.copies`, read a larger id as later) · user_id int64 (the account) · label int8 (1 =
    bot/intruder) · kind str ("human" or a bot kind) · part str, optional: "train"/"test" where the data
    set fixes its own split (Balabit)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
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

    def iter_session_chunks(
        self,
        chunk_events: int = 2_000_000,
        buckets: int | None = None,
        check: Callable[[np.ndarray], None] | None = None,
        seed: int = 0,
    ) -> Iterator[pd.DataFrame]:
        """The events (schema above) of whole sessions, about `chunk_events` at a time, for scoring (labels
        are not read). `check(counts)` sees the events per EVENT_KINDS of the whole data before the first
        chunk is yielded. This default loads everything (fine for generated data); a source of large files
        streams them (`EventFiles`); `buckets` is for such sources."""
        events = self.load(seed=seed).events
        if check is not None:
            counts = np.bincount(events["event"].cat.codes.to_numpy(np.int64), minlength=len(EVENT_KINDS))
            check(counts)
        session = events["session_id"].to_numpy()  # sorted: each session's rows are contiguous
        bounds = np.r_[np.flatnonzero(np.r_[True, session[1:] != session[:-1]]), len(session)]
        lo = 0
        while lo < len(session):  # whole sessions, up to chunk_events rows (or one larger session)
            hi = bounds[np.searchsorted(bounds, lo + max(int(chunk_events), 1), side="right") - 1]
            if hi <= lo:
                hi = bounds[np.searchsorted(bounds, lo, side="right")]
            yield events.iloc[lo:hi]
            lo = hi
