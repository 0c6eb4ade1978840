"""The synthetic generator makes what its docstrings promise: seeded, every kind present, replays and
recorder playbacks that really copy another account's session, sessions recorded in varied settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

import airush.abuse.data.synthetic as synthetic
from airush.abuse.data.bots import KINDS
from airush.abuse.data.playback import REPLAY_JITTER_MS, REPLAY_STRETCH
from airush.abuse.data.synthetic import SyntheticSessions

from conftest import REPO


def test_same_seed_same_log_other_seed_other_log():
    make = SyntheticSessions(n_users=20, sessions_per_user=3, bot_share=0.3, mouse_actions=(2, 5)).load
    a, b, c = make(seed=1), make(seed=1), make(seed=2)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.sessions, b.sessions)
    assert not a.events.equals(c.events)


def test_the_yaml_mirrors_the_dataclass_and_builds():
    from hydra.utils import instantiate

    cfg = OmegaConf.load(REPO / "conf" / "data" / "synthetic_abuse.yaml")
    fields = set(SyntheticSessions.__dataclass_fields__) - {"ranges"}  # `ranges` is the class's rules
    assert set(cfg) - {"_target_"} == fields
    assert sorted(cfg.bot_kinds) == sorted(KINDS)
    assert isinstance(instantiate(cfg, n_users=5), SyntheticSessions)


@pytest.fixture(scope="module")
def every_kind():
    return SyntheticSessions(n_users=60, sessions_per_user=4, bot_share=0.5, mouse_actions=(3, 8)).load(
        seed=7
    )


def test_every_kind_makes_well_formed_sessions(every_kind):
    events, sessions = every_kind.events, every_kind.sessions
    assert set(sessions["kind"]) == {"human", *KINDS}
    assert list(events.columns) == ["session_id", "t_ms", "event", "key", "x", "y", "button"]
    sid, t = events["session_id"].to_numpy(), events["t_ms"].to_numpy()
    assert (np.diff(sid) >= 0).all()
    assert ((np.diff(t) >= 0) | (np.diff(sid) > 0)).all()  # time order within each session
    assert (events.groupby("session_id")["t_ms"].min() == 0).all()
    assert set(events["session_id"]) == set(sessions["session_id"])  # every session has events
    mouse = events["event"].isin(["move", "button_down", "button_up", "wheel"])
    assert events.loc[mouse, ["x", "y"]].notna().all().all()
    assert (events.loc[mouse, ["x", "y"]] >= 0).all().all()
    assert (events.loc[mouse, "x"] < 2560).all() and (events.loc[mouse, "y"] < 1440).all()
    keys = events["event"].isin(["key_down", "key_up"])
    assert (events.loc[keys, "key"] >= 0).all() and events.loc[keys, ["x", "y"]].isna().all().all()


def test_people_are_recorded_in_varied_settings_and_fixed_on_request(every_kind):
    def move_gaps(log):
        moves = log.events[log.events["event"] == "move"]
        people = log.sessions.loc[log.sessions["kind"] == "human", "session_id"]
        moves = moves[moves["session_id"].isin(people)]
        return moves.groupby("session_id")["t_ms"].apply(
            lambda t: np.median(np.diff(t)) if len(t) > 2 else np.nan
        )

    gaps = move_gaps(every_kind).dropna()
    assert (gaps <= 8).any() and (gaps >= 15).any()  # raw high-rate hooks and 60 Hz browsers both
    on_grid = (
        every_kind.events.assign(
            tick=lambda e: np.abs(e["t_ms"] / 15.625 - np.rint(e["t_ms"] / 15.625)) < 1e-6,
            fraction=lambda e: e["t_ms"] % 1 != 0,
        )
        .groupby("session_id")[["tick", "fraction"]]
        .mean()
    )
    assert (on_grid["tick"] == 1).any()  # a 15.625 ms Windows clock ...
    assert (on_grid["fraction"] > 0.5).any()  # ... and sub-millisecond browser clocks
    fixed = SyntheticSessions(
        n_users=20, sessions_per_user=2, bot_share=0.0, mouse_actions=(3, 6), vary_environment=False
    ).load(seed=1)
    assert (fixed.events["t_ms"] % 1 == 0).all()  # one 1 ms clock
    assert 14 <= move_gaps(fixed).median() <= 20  # one 60 Hz browser


def test_replays_and_recorder_playbacks_copy_another_accounts_person(monkeypatch):
    """Checked before the logger records them (recording coarsens every session, copies included)."""
    monkeypatch.setattr(synthetic, "record", lambda rng, events, env: events)
    log = SyntheticSessions(
        n_users=40, sessions_per_user=3, bot_share=0.3, bot_kinds=["replay", "recorder"], mouse_actions=(2, 5)
    ).load(seed=0)
    sessions = log.sessions.set_index("session_id")
    by_session = {sid: frame.reset_index(drop=True) for sid, frame in log.events.groupby("session_id")}
    humans = sessions.index[sessions["kind"] == "human"]
    replays = sessions.index[sessions["kind"] == "replay"]
    recorders = sessions.index[sessions["kind"] == "recorder"]
    assert len(replays) > 3 and len(recorders) > 3
    for replay in replays:
        # jitter may swap events less than 2·jitter apart, so compare events per kind in time order
        copy = by_session[replay].sort_values(["event", "t_ms"], kind="stable", ignore_index=True)
        matches = []
        for human in humans:
            original = by_session[human].sort_values(["event", "t_ms"], kind="stable", ignore_index=True)
            if len(original) != len(copy) or not (original["event"] == copy["event"]).all():
                continue
            t_orig, t_copy = original["t_ms"].to_numpy(), copy["t_ms"].to_numpy()
            near = np.diff(t_orig) < 2 * REPLAY_JITTER_MS  # events this close may trade places
            swappable = np.r_[False, near] | np.r_[near, False]
            same_keys = ((original["key"] == copy["key"]) | swappable).all()
            same_keys &= sorted(original["key"]) == sorted(copy["key"])
            same_xy = swappable | np.isclose(original["x"], copy["x"], equal_nan=True)
            same_xy &= swappable | np.isclose(original["y"], copy["y"], equal_nan=True)
            same_xy = same_xy.all()
            stretch = t_copy.max() / t_orig.max()
            close_in_time = np.abs(t_copy - t_orig * stretch).max() <= 4 * REPLAY_JITTER_MS
            if same_keys and same_xy and close_in_time and abs(stretch - 1) <= REPLAY_STRETCH + 1e-3:
                matches.append(human)
        assert matches, f"replay session {replay} copies no human session"
        assert any(sessions.loc[m, "user_id"] != sessions.loc[replay, "user_id"] for m in matches)
    for recorder in recorders:
        played = signature(by_session[recorder])
        found = False
        for human in humans:
            if sessions.loc[human, "user_id"] == sessions.loc[recorder, "user_id"]:
                continue
            original = signature(by_session[human])
            for loops in (1, 2, 3):  # the playback is a prefix of the session, looped 1-3 times
                if len(played) % loops == 0 and len(played) // loops <= len(original):
                    prefix = original[: len(played) // loops]
                    if played == prefix * loops:
                        found = True
        assert found, f"recorder session {recorder} plays back no other account's session"


def signature(frame: pd.DataFrame) -> list[tuple]:
    """(event, key, x, y) of each event, NaN positions as None so that equal rows compare equal."""
    xy = frame[["x", "y"]].astype(object).where(frame[["x", "y"]].notna(), None)
    return list(zip(frame["event"].astype(str), frame["key"], xy["x"], xy["y"], strict=True))


def test_a_playback_copies_a_person_of_another_account_even_beside_its_own_owner():
    """Sessions of one account sit side by side: a clash must be drawn again, not moved to the next person
    (who is often the same account's owner)."""
    from airush.abuse.data.playback import _donors

    kinds = np.array(["human", "replay", "human", "human", "recorder", "human"] * 50, dtype=object)
    users = np.repeat(np.arange(100), 3)
    sessions = pd.DataFrame({"kind": kinds, "user_id": users})
    copies = np.flatnonzero(kinds != "human")
    for seed in range(20):
        source = _donors(np.random.default_rng(seed), sessions, copies)
        assert (kinds[source] == "human").all()
        assert (users[source] != users[copies]).all()
        later = copies >= 4  # the first copy has no earlier person of another account to play back
        assert (source[later] < copies[later]).all()  # played back after it was recorded
