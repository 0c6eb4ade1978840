"""Played-back sessions (airush.abuse.copies): the copied shares against a plain per-session reference, the
order that makes the copy (not its source) the suspect, generated replays and recorder playbacks found, real
people never reaching the copy rule, and the rule in scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airush.abuse import copies
from airush.abuse.copies import COPIED_COLUMNS, copied_features, with_copy_rule
from airush.abuse.data import EVENT_KINDS
from airush.abuse.features import EVENT_CODE, SessionFeatures, event_codes

from conftest import SHARED_DATA

CLICK, MOVES = EVENT_CODE["button_down"], (EVENT_CODE["move"], EVENT_CODE["drag"])


def reference_shares(events: pd.DataFrame, ids: np.ndarray) -> dict[str, np.ndarray]:
    """The same shares, session by session with tuples of cells in a set (no hashing, no sorting)."""
    out = {name: np.full(len(ids), np.nan) for name in COPIED_COLUMNS}
    seen = {name: set() for name in COPIED_COLUMNS}
    for i, sid in enumerate(ids):  # ids ascending: every earlier session's runs are in `seen`
        session = events[events["session_id"] == sid]
        for name, kinds, cell, size in (
            ("click_copied_share", ["button_down"], copies.CELL_PX, copies.CLICK_GRAM),
            ("mouse_copied_share", ["move", "drag"], 1.0, copies.MOVE_GRAM),
        ):
            rows = session[session["event"].astype(str).isin(kinds)]
            rows = rows[np.isfinite(rows["x"]) & np.isfinite(rows["y"])]
            x, y = rows["x"].to_numpy(float), rows["y"].to_numpy(float)
            cells = list(zip(np.floor(x / cell), np.floor(y / cell), strict=True))
            runs = []
            for k in range(len(cells) - size + 1):
                if name == "click_copied_share":
                    ok = all(
                        np.hypot(x[j + 1] - x[j], y[j + 1] - y[j]) > copies.MIN_CLICK_STEP_PX
                        for j in range(k, k + size - 1)
                    )
                else:  # runs sampled by where they start
                    ok = all(cells[j + 1] != cells[j] for j in range(k, k + size - 1))
                    ok = ok and (cells[k][0] + cells[k][1]) % copies.MOVE_SAMPLE == 0
                if ok:
                    runs.append(tuple(cells[k : k + size]))
            if runs:
                share = np.mean([run in seen[name] for run in runs])
                out[name][i] = 0.0 if share < copies.CHANCE_SHARE else share
            seen[name].update(runs)
    return out


def generated(seed: int, **settings):
    from airush.abuse.data.synthetic import SyntheticSessions

    return SyntheticSessions(**({"n_users": 40, "sessions_per_user": 4} | settings)).load(seed=seed)


def shares_of(log) -> pd.DataFrame:
    ids = np.sort(log.sessions["session_id"].to_numpy())
    e = log.events
    got = copied_features(
        e["session_id"].to_numpy(),
        event_codes(e["event"]),
        e["x"].to_numpy(float),
        e["y"].to_numpy(float),
        ids,
        CLICK,
        MOVES,
    )
    return pd.DataFrame(got, index=ids)


@pytest.mark.parametrize("seed", [0, 1])
def test_copied_shares_match_a_per_session_reference(seed):
    log = generated(seed, n_users=25, bot_share=0.3, bot_kinds=["replay", "recorder", "linear"])
    got = shares_of(log)
    want = reference_shares(log.events, got.index.to_numpy())
    for name in COPIED_COLUMNS:
        np.testing.assert_allclose(
            got[name].to_numpy(), want[name], rtol=0, atol=1e-12, equal_nan=True, err_msg=name
        )
    assert (got["click_copied_share"] > 0).any() and (got["mouse_copied_share"] > 0).any()  # not all zeros


def handmade(first: int, second: int) -> pd.DataFrame:
    """Two sessions making the same five distant clicks along the same curved pointer path (40 moves to
    each click): `first`'s ids order them."""
    targets = np.array([[100.0, 80.0], [400.0, 230.0], [700.0, 380.0], [250.0, 155.0], [900.0, 480.0]])
    rows = []
    for sid in (first, second):
        at = np.array([10.0, 10.0])
        for i, target in enumerate(targets):
            u = np.linspace(0, 1, 41)[1:]
            path = at + np.outer(u, target - at) + np.outer(np.sin(np.pi * u) * 60, [1.0, -1.0])
            for j, (x, y) in enumerate(np.rint(path)):
                rows.append((sid, 1000.0 * i + 10 * j, "move", x, y))
            rows.append((sid, 1000.0 * i + 500, "button_down", *target))
            at = target
    frame = pd.DataFrame(rows, columns=["session_id", "t_ms", "event", "x", "y"])
    frame["event"] = pd.Categorical(frame["event"], EVENT_KINDS)
    return frame.sort_values(["session_id", "t_ms"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("ids", [(3, 8), (8, 3), (1000, 7)])
def test_the_later_session_is_the_copy(ids):
    """Whichever id is larger began later: it copies, the other was copied and is as clean as any person."""
    events = handmade(*ids)
    source, copy = min(ids), max(ids)
    got = shares_of(type("Log", (), {"events": events, "sessions": pd.DataFrame({"session_id": list(ids)})}))
    assert got.loc[copy].tolist() == [1.0, 1.0]
    assert got.loc[source].tolist() == [0.0, 0.0]


def test_too_few_clicks_or_moves_is_nan_and_chance_matches_read_zero():
    events = handmade(1, 2)
    two_clicks = events[(events["event"] != "button_down") | (events["t_ms"] < 1600)]
    got = shares_of(type("Log", (), {"events": two_clicks, "sessions": pd.DataFrame({"session_id": [1, 2]})}))
    assert np.isnan(got["click_copied_share"]).all()  # two clicks: no triple
    assert got.loc[2, "mouse_copied_share"] == 1.0  # the pointer path still gives the copy away
    # one copied triple among 25: below CHANCE_SHARE, what people reach by chance
    rng = np.random.default_rng(0)
    rows = [(1, t, "button_down", x, y) for t, (x, y) in enumerate(rng.uniform(0, 1000, (27, 2)))]
    rows += [(2, t, "button_down", x, y) for t, (_, _, _, x, y) in enumerate(rows[:3])]
    rows += [(2, 3 + t, "button_down", x, y) for t, (x, y) in enumerate(rng.uniform(0, 1000, (24, 2)))]
    frame = pd.DataFrame(rows, columns=["session_id", "t_ms", "event", "x", "y"])
    frame["event"] = pd.Categorical(frame["event"], EVENT_KINDS)
    got = shares_of(type("Log", (), {"events": frame, "sessions": pd.DataFrame({"session_id": [1, 2]})}))
    assert copies.CHANCE_SHARE > 1 / 25 and got.loc[2, "click_copied_share"] == 0.0


def test_generated_playbacks_are_found_and_generated_people_are_not():
    log = generated(3, n_users=120, bot_share=0.2, bot_kinds=["replay", "recorder"])
    got = shares_of(log).reindex(log.sessions["session_id"].to_numpy())
    copied = got.fillna(0.0).max(axis=1).to_numpy()
    kind = log.sessions["kind"].to_numpy()
    assert (copied[kind == "human"] == 0).all()
    assert np.mean(copied[kind == "replay"] >= 0.1) > 0.85
    assert np.mean(copied[kind == "recorder"] >= 0.1) > 0.6  # a short loop of a few clicks can escape


def test_the_copy_rule_raises_copies_only():
    X = pd.DataFrame(
        {"click_copied_share": [0.0, 0.6, np.nan, 0.05], "mouse_copied_share": [0.0, 0.2, 0.3, np.nan]}
    )
    scores = np.array([0.2, 0.1, 0.9, 0.01])
    np.testing.assert_array_equal(with_copy_rule(scores, X, 0.1), [0.2, 0.6, 0.9, 0.01])
    np.testing.assert_array_equal(with_copy_rule(scores, X, None), scores)
    np.testing.assert_array_equal(with_copy_rule(scores, X.drop(columns="mouse_copied_share"), 0.1), scores)


def test_session_features_compare_sessions_across_chunks(monkeypatch):
    """The per-session statistics go chunk by chunk; the copied shares see every session passed at once."""
    import airush.abuse.features as features

    log = generated(5, n_users=30, bot_share=0.3, bot_kinds=["replay"])
    ids = log.sessions["session_id"].to_numpy()
    whole = SessionFeatures().transform(log.events, ids)
    monkeypatch.setattr(features, "CHUNK_EVENTS", 300)
    pd.testing.assert_frame_equal(SessionFeatures().transform(log.events, ids), whole)
    assert (whole.loc[log.sessions["kind"].to_numpy() == "replay", "click_copied_share"] > 0.5).any()
    assert list(whole.columns[-2:]) == list(COPIED_COLUMNS)
    assert not set(COPIED_COLUMNS) & set(SessionFeatures(copies=False).transform(log.events, ids).columns)


@pytest.mark.skipif(not (SHARED_DATA / "balabit").is_dir(), reason="Balabit data not present")
def test_real_people_on_balabit_stay_far_below_the_copy_rule(tmp_path):
    """881 hour-long sessions of 10 people: none shares CHANCE_SHARE of its clicks or pointer runs with an
    earlier one (measured: at most 0.043 and 0.016), so the shares read 0 and the rule never fires."""
    from airush.abuse.data.balabit import BalabitMouse

    log = BalabitMouse(root=str(SHARED_DATA / "balabit"), cache_dir=str(tmp_path)).load()
    got = shares_of(log)
    assert len(got) == 881
    assert (got.fillna(0.0).to_numpy() == 0).all()


@pytest.mark.parametrize("value", ["0.1", 0, 1.5, True, [0.1]])
def test_a_copy_share_read_from_a_model_file_is_checked(tmp_path, value):
    from airush.abuse.serving import SessionEventScores
    from airush.errors import UserError

    features = {"_target_": "airush.abuse.features.SessionFeatures"}
    assert (
        SessionEventScores.from_info(None, tmp_path, {"features": features, "copy_share": 0.1}).copy_share
        == 0.1
    )
    with pytest.raises(UserError, match=r"copy_share in airush_model\.json is not in"):
        SessionEventScores.from_info(None, tmp_path, {"features": features, "copy_share": value})
