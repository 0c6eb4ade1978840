"""People in the synthetic data move, click and type like the real people of the shared data sets
(humans.py is calibrated on them): medians within a tolerance. Skipped where the data is absent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airush.abuse.data.synthetic import SyntheticSessions

from conftest import SHARED_DATA

BALABIT = SHARED_DATA / "balabit"
AALTO = SHARED_DATA / "aalto-keystrokes-sample"


@pytest.fixture(scope="module")
def people():
    log = SyntheticSessions(n_users=80, sessions_per_user=3, bot_share=0.0, mouse_actions=(6, 24)).load(
        seed=5
    )
    return log.events


def mouse_medians(events: pd.DataFrame) -> dict[str, float]:
    """Median speed (px/ms) between consecutive moves < 300 ms apart, median click hold (ms), pauses
    (> 300 ms between mouse events) per minute. (Wheel timing is not compared: Balabit's
    desktops have no touchpads, which scroll in one small event per frame.)"""
    moves = events[events["event"].isin(["move", "drag"])]
    sid, t = moves["session_id"].to_numpy(), moves["t_ms"].to_numpy()
    x, y = moves["x"].to_numpy(float), moves["y"].to_numpy(float)
    same = sid[1:] == sid[:-1]
    dt, step = np.diff(t)[same], np.hypot(np.diff(x), np.diff(y))[same]
    ok = (dt > 0) & (dt < 300) & (step > 0)
    minutes = events.groupby("session_id")["t_ms"].max().sum() / 60_000
    press = events[events["event"].isin(["button_down", "button_up"])]
    kind, pt, ps = (
        press["event"].astype(str).to_numpy(),
        press["t_ms"].to_numpy(),
        press["session_id"].to_numpy(),
    )
    pair = (kind[:-1] == "button_down") & (kind[1:] == "button_up") & (ps[:-1] == ps[1:])
    return {
        "speed": float(np.median(step[ok] / dt[ok])),
        "click_hold": float(np.median((pt[1:] - pt[:-1])[pair])),
        "pauses_per_min": float((dt > 300).sum() / minutes),
    }


@pytest.mark.skipif(not BALABIT.is_dir(), reason="Balabit data not found (../shared/data/balabit)")
def test_pointing_clicks_and_pauses_look_like_balabit_people(people, tmp_path):
    from airush.abuse.data.balabit import BalabitMouse

    real = mouse_medians(BalabitMouse(str(BALABIT), cache_dir=str(tmp_path), users=[7, 9, 12]).load().events)
    ours = mouse_medians(people)
    for name, factor in {"speed": 2.0, "click_hold": 1.3, "pauses_per_min": 1.5}.items():
        assert real[name] / factor <= ours[name] <= real[name] * factor, (name, ours, real)


@pytest.mark.skipif(not AALTO.is_dir(), reason="Aalto keystroke sample not found (../shared/data)")
def test_typing_rhythm_looks_like_the_aalto_typists(people):
    frames = [
        pd.read_csv(f, sep="\t", quoting=3, on_bad_lines="skip", encoding_errors="ignore")
        for f in sorted(AALTO.iterdir())
    ]
    real = pd.concat(frames).sort_values(["PARTICIPANT_ID", "TEST_SECTION_ID", "PRESS_TIME"])
    hold = (real["RELEASE_TIME"] - real["PRESS_TIME"]).to_numpy()
    dd = real.groupby(["PARTICIPANT_ID", "TEST_SECTION_ID"])["PRESS_TIME"].diff().to_numpy()
    real_hold, real_dd = np.median(hold[(hold > 0) & (hold < 2000)]), np.nanmedian(dd[(dd > 0) & (dd < 2000)])

    keys = people[people["event"].isin(["key_down", "key_up"])]
    down = keys[keys["event"] == "key_down"]
    up = keys[keys["event"] == "key_up"]
    # each key's release is the next key_up of the same key in its session
    ours_hold = []
    for (sid, key), d in down.groupby(["session_id", "key"]):
        u = up[(up["session_id"] == sid) & (up["key"] == key)]["t_ms"].to_numpy()
        dt = d["t_ms"].to_numpy()
        nxt = np.searchsorted(u, dt, side="left")
        ok = nxt < len(u)
        ours_hold.append(u[nxt[ok]] - dt[ok])
    ours_hold = np.median(np.concatenate(ours_hold))
    dts = np.diff(down["t_ms"].to_numpy())[np.diff(down["session_id"].to_numpy()) == 0]
    ours_dd = np.median(dts[dts < 2000])
    assert real_hold / 1.3 <= ours_hold <= real_hold * 1.3, (ours_hold, real_hold)
    assert real_dd / 1.4 <= ours_dd <= real_dd * 1.4, (ours_dd, real_dd)
