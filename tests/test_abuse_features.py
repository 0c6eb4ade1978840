"""The vectorised session features equal a per-session pandas reference (to 1e-9), on synthetic people
and bots and on real Balabit mouse data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airush.abuse.action_features import ActionFeatures
from airush.abuse.data.synthetic import SyntheticSessions
from airush.abuse.features import SessionFeatures
from reference.features_reference import reference_features

from conftest import SHARED_DATA


def assert_same_features(events: pd.DataFrame, session_ids: np.ndarray, keyboard=True, mouse=True):
    fast = SessionFeatures(keyboard, mouse, counts=True, copies=False).transform(events, session_ids)
    slow = reference_features(events, session_ids, keyboard, mouse)
    assert list(fast.columns) == list(slow.columns)
    for column in fast.columns:
        np.testing.assert_allclose(
            fast[column].to_numpy(),
            slow[column].to_numpy(),
            rtol=1e-9,
            atol=1e-9,
            equal_nan=True,
            err_msg=column,
        )


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_features_match_reference_on_synthetic_sessions(seed):
    log = SyntheticSessions(n_users=20, sessions_per_user=3, bot_share=0.3, mouse_actions=(2, 6)).load(
        seed=seed
    )
    assert_same_features(log.events, log.sessions["session_id"].to_numpy())


def test_feature_subsets_match_reference():
    log = SyntheticSessions(n_users=8, sessions_per_user=2, bot_share=0.3, mouse_actions=(2, 4)).load(seed=3)
    ids = log.sessions["session_id"].to_numpy()
    assert_same_features(log.events, ids, keyboard=True, mouse=False)
    assert_same_features(log.events, ids, keyboard=False, mouse=True)


def test_chunked_extraction_equals_one_pass(monkeypatch):
    import airush.abuse.features as features

    log = SyntheticSessions(n_users=10, sessions_per_user=3, mouse_actions=(2, 5)).load(seed=4)
    ids = log.sessions["session_id"].to_numpy()
    whole = SessionFeatures().transform(log.events, ids)
    whole_actions = ActionFeatures().transform(log.events, ids)
    monkeypatch.setattr(features, "CHUNK_EVENTS", 500)
    assert SessionFeatures().n_chunks(log.events, ids) > 5
    pd.testing.assert_frame_equal(SessionFeatures().transform(log.events, ids), whole)
    assert ActionFeatures().n_chunks(log.events, ids) > 5
    pd.testing.assert_frame_equal(ActionFeatures().transform(log.events, ids), whole_actions)


@pytest.mark.skipif(not (SHARED_DATA / "balabit").is_dir(), reason="Balabit data not found")
def test_features_match_reference_on_balabit_sessions(tmp_path):
    from airush.abuse.data.balabit import BalabitMouse

    log = BalabitMouse(str(SHARED_DATA / "balabit"), users=[7], max_test_sessions=15).load()
    test = log.sessions[log.sessions["part"] == "test"]["session_id"].to_numpy()
    events = log.events[log.events["session_id"].isin(test)].reset_index(drop=True)
    assert_same_features(events, test, keyboard=False, mouse=True)


def mouse_events(rows: list[tuple]) -> pd.DataFrame:
    """Events from (session, t_ms, event, x, y, button) tuples, in the schema of airush.abuse.data."""
    from airush.abuse.data import BUTTONS, EVENT_KINDS

    frame = pd.DataFrame(rows, columns=["session_id", "t_ms", "event", "x", "y", "button"])
    return frame.assign(
        session_id=frame["session_id"].astype(np.int64),
        t_ms=frame["t_ms"].astype(np.float64),
        event=pd.Categorical(frame["event"], categories=EVENT_KINDS),
        key=np.full(len(frame), -1, np.int16),
        x=frame["x"].astype(np.float32),
        y=frame["y"].astype(np.float32),
        button=pd.Categorical(frame["button"], categories=BUTTONS),
    )[["session_id", "t_ms", "event", "key", "x", "y", "button"]]


# Session 1: MM (pause > 10 s) | PC | MM ending before the drag's press | DD | PC without moves
# Session 2: a right click is movement, not a click: one MM.
HANDMADE = [
    (1, 0, "move", 0, 0, "none"), (1, 16, "move", 3, 4, "none"), (1, 32, "move", 6, 8, "none"),
    (1, 48, "move", 9, 12, "none"),
    (1, 20_000, "move", 9, 12, "none"), (1, 20_016, "move", 19, 12, "none"),
    (1, 20_100, "button_down", 19, 12, "left"), (1, 20_200, "button_up", 19, 12, "left"),
    (1, 20_300, "move", 20, 12, "none"), (1, 20_316, "move", 30, 12, "none"),
    (1, 20_400, "button_down", 30, 12, "left"), (1, 20_416, "drag", 40, 12, "none"),
    (1, 20_432, "drag", 50, 12, "none"), (1, 20_500, "button_up", 50, 12, "left"),
    (1, 20_600, "wheel", 50, 12, "none"),
    (1, 20_700, "button_down", 50, 12, "left"), (1, 20_800, "button_up", 50, 12, "left"),
    (2, 0, "move", 0, 0, "none"), (2, 10, "button_down", 0, 0, "right"),
    (2, 20, "button_up", 0, 0, "right"), (2, 30, "move", 0, 10, "none"),
]  # fmt: skip


def test_mouse_actions_are_segmented_as_published():
    from airush.abuse.features import event_codes
    from airush.abuse.mouse_actions import ACTION_TYPES, action_shape, segment_actions

    events = mouse_events(HANDMADE)
    group = events["session_id"].to_numpy() - 1
    t, x, y = (events[c].to_numpy(np.float64) for c in ("t_ms", "x", "y"))
    actions = segment_actions(group, event_codes(events["event"]), events["button"].cat.codes.to_numpy(), t)
    assert [ACTION_TYPES[k] for k in actions.kind] == ["mm", "pc", "mm", "dd", "pc", "mm"]
    assert actions.session.tolist() == [0, 0, 0, 0, 0, 1]
    assert actions.size.tolist() == [4, 4, 2, 4, 2, 4]  # the wheel event is not an action row
    shape = action_shape(actions, t, x, y)
    np.testing.assert_allclose(shape["distance"], [15, 10, 10, 20, 0, 10])
    np.testing.assert_allclose(shape["duration"], [48, 200, 16, 100, 100, 30])
    np.testing.assert_allclose(shape["straightness"][:4], [1, 1, 1, 1])
    assert np.isnan(shape["straightness"][4])  # no movement: undefined
    np.testing.assert_allclose(shape["speed"], [15 / 48, 0.05, 10 / 16, 0.2, 0, 1 / 3])

    features = SessionFeatures(keyboard=False).transform(events, np.array([1, 2]))
    first = features.loc[1]
    assert first["mouse_mm_share"] == pytest.approx(2 / 5)
    assert first["mouse_pc_share"] == pytest.approx(2 / 5)
    assert first["mouse_dd_share"] == pytest.approx(1 / 5)
    assert first["mouse_mm_distance_p50"] == 15  # the 2-row MM action is too short to measure
    assert first["mouse_pc_duration_p50"] == 200
    assert first["mouse_dd_speed_p50"] == pytest.approx(0.2)
    assert features.loc[2, "mouse_mm_share"] == 1.0 and features.loc[2, "mouse_pc_share"] == 0.0
    assert_same_features(events, np.array([1, 2]), keyboard=False, mouse=True)


def test_feature_set_sizes():
    log = SyntheticSessions(n_users=4, sessions_per_user=2, mouse_actions=(2, 3)).load(seed=0)
    ids = log.sessions["session_id"].to_numpy()
    sizes = {
        (kb, mouse, counts): SessionFeatures(kb, mouse, counts=counts).transform(log.events, ids).shape[1]
        for kb, mouse in ((True, True), (True, False), (False, True))
        for counts in (False, True)
    }
    # counts: duration_s, key_presses and key_pauses (keyboard), mouse_moves and mouse_clicks (mouse); with
    # mouse, copies adds click_copied_share and mouse_copied_share
    assert sizes == {
        (True, True, False): 68,
        (True, False, False): 20,
        (False, True, False): 49,
        (True, True, True): 73,
        (True, False, True): 23,
        (False, True, True): 52,
    }


def test_action_dynamics_by_hand():
    from airush.abuse.action_features import action_dynamics
    from airush.abuse.features import event_codes
    from airush.abuse.mouse_actions import segment_actions

    events = mouse_events(HANDMADE)
    group = events["session_id"].to_numpy() - 1
    code, button = event_codes(events["event"]), events["button"].cat.codes.to_numpy()
    t, x, y = (events[c].to_numpy(np.float64) for c in ("t_ms", "x", "y"))
    got = pd.DataFrame(action_dynamics(segment_actions(group, code, button, t), code, button, t, x, y))
    mm, pc, dd, right = got.iloc[0], got.iloc[1], got.iloc[3], got.iloc[5]
    assert (mm["action_mm"], pc["action_pc"], dd["action_dd"]) == (1.0, 1.0, 1.0)
    assert (mm["action_dir_cos"], mm["action_dir_sin"]) == pytest.approx((0.6, 0.8))  # chord (9, 12) px
    assert mm["action_v_mean"] == pytest.approx(5 / 16) and mm["action_a_max"] == 0.0
    # PC: 10 px in 16 ms, then still for 84 ms until the press, held 100 ms
    assert pc["action_v_max"] == pytest.approx(10 / 16)
    assert pc["action_a_min"] == pytest.approx(-10 / 16 / 50)  # speed drop over the mean of 16 and 84 ms
    assert (pc["action_click_hold"], pc["action_click_pause"]) == (100.0, 84.0)
    assert pc["action_peak_speed_time"] == 16.0 and pc["action_peak_speed_share"] == pytest.approx(16 / 200)
    assert dd["action_click_hold"] == 100.0 and np.isnan(dd["action_click_pause"])
    # right click in between: speed 0, 0, then 10 px in 10 ms; speeds rise only after the first step
    assert right["action_accel_phase"] == 0.0 and right["action_a_max"] == pytest.approx(0.1)
    assert right["action_largest_deviation"] == 0.0 and right["action_turn_total"] == 0.0

    # a bent path: (0,0) -> (10,0) -> (10,10): a 90 degree left turn, 5 px off the chord
    bent = mouse_events(
        [(1, 0, "move", 0, 0, "none"), (1, 10, "move", 10, 0, "none"), (1, 20, "move", 10, 10, "none"),
         (1, 30, "move", 10, 10, "none"), (1, 40, "move", 10, 10, "none")]
    )  # fmt: skip
    row = ActionFeatures().transform(bent, np.array([1])).iloc[0]
    assert row["action_turn_net"] == pytest.approx(np.pi / 2) and row["action_sharp_turns"] == 1
    assert row["action_largest_deviation"] == pytest.approx(np.sqrt(50))
    assert row["action_curvature_mean"] == pytest.approx(np.pi / 2 / 10)
    assert row["action_omega_mean"] == pytest.approx(np.pi / 2 / 10)
    assert row["action_straightness"] == pytest.approx(np.sqrt(200) / 20)
    # per unit: the mean of its actions
    both = ActionFeatures().transform(events, np.array([1, 2]))
    np.testing.assert_allclose(both.loc[1, "action_distance"], got["action_distance"].iloc[:5].mean())
    assert both.loc[2, "action_mm"] == 1.0


def test_path_repeat_share_by_hand():
    """A path of 6 distinct positions played twice: the second pass repeats every one of its 4-position runs
    (3 of the 9 runs straddle the loop's seam and are new); a person's path of distinct positions repeats
    none; positions equal on the 1/8 px grid count as the same; a NaN position leaves the sequence."""
    from airush.abuse.repeats import path_repeat_share

    loop = np.array([(0, 0), (3, 1), (7, 4), (12, 9), (20, 11), (26, 18)], dtype=float)
    twice = np.r_[loop, loop]
    group = np.zeros(len(twice), np.int64)
    share = path_repeat_share(group, 1, twice[:, 0], twice[:, 1])
    assert share[0] == pytest.approx(3 / 9)
    distinct = np.cumsum(np.ones((12, 2)), axis=0)
    assert path_repeat_share(group, 1, distinct[:, 0], distinct[:, 1])[0] == 0.0
    nudged = twice + np.r_[np.zeros((6, 2)), np.full((6, 2), 0.01)]  # under 1/16 px: same grid point
    assert path_repeat_share(group, 1, nudged[:, 0], nudged[:, 1])[0] == pytest.approx(3 / 9)
    with_nan = np.r_[loop, [(np.nan, np.nan)], loop]
    one = np.zeros(len(with_nan), np.int64)
    assert path_repeat_share(one, 1, with_nan[:, 0], with_nan[:, 1])[0] == pytest.approx(3 / 9)
    # two sessions: runs never span them, and a session with fewer than 4 moves has no share
    group2 = np.r_[np.zeros(12, np.int64), np.ones(3, np.int64)]
    xy = np.r_[twice, loop[:3]]
    shares = path_repeat_share(group2, 2, xy[:, 0], xy[:, 1])
    assert shares[0] == pytest.approx(3 / 9) and np.isnan(shares[1])
