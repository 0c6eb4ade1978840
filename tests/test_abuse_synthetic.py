"""The synthetic generator makes what its docstring promises: seeded, and replay bots that really replay."""

from __future__ import annotations

import numpy as np
import pandas as pd

from airush.abuse.data.synthetic import REPLAY_JITTER_MS, REPLAY_STRETCH, SyntheticSessions


def test_same_seed_same_log_other_seed_other_log():
    make = SyntheticSessions(n_users=20, sessions_per_user=3, bot_share=0.3, mouse_actions=(2, 5)).load
    a, b, c = make(seed=1), make(seed=1), make(seed=2)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.sessions, b.sessions)
    assert not a.events.equals(c.events)


def test_replay_sessions_are_another_accounts_human_session_with_small_jitter():
    log = SyntheticSessions(
        n_users=30, sessions_per_user=3, bot_share=0.2, bot_kinds=["replay"], mouse_actions=(2, 5)
    ).load(seed=0)
    sessions = log.sessions.set_index("session_id")
    by_session = {sid: frame.reset_index(drop=True) for sid, frame in log.events.groupby("session_id")}
    humans = sessions.index[sessions["kind"] == "human"]
    replays = sessions.index[sessions["kind"] == "replay"]
    assert len(replays) > 3
    for replay in replays:
        # jitter may swap events less than 2·jitter apart, so compare events per kind in time order
        copy = by_session[replay].sort_values(["event", "t_ms"], kind="stable", ignore_index=True)
        matches = []
        for human in humans:
            original = by_session[human].sort_values(["event", "t_ms"], kind="stable", ignore_index=True)
            if len(original) != len(copy) or not (original["event"] == copy["event"]).all():
                continue
            same_keys = (original["key"] == copy["key"]).all()
            same_xy = np.allclose(original[["x", "y"]], copy[["x", "y"]], equal_nan=True)
            t_orig, t_copy = original["t_ms"].to_numpy(), copy["t_ms"].to_numpy()
            stretch = t_copy.max() / t_orig.max()
            close_in_time = np.abs(t_copy - t_orig * stretch).max() <= 4 * REPLAY_JITTER_MS
            if same_keys and same_xy and close_in_time and abs(stretch - 1) <= REPLAY_STRETCH + 1e-3:
                matches.append(human)
        assert matches, f"replay session {replay} copies no human session"
        assert any(sessions.loc[m, "user_id"] != sessions.loc[replay, "user_id"] for m in matches)
