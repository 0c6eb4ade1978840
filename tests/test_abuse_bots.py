"""Each bot family moves the way its tool's code does (bots.py), checked on single movements."""

from __future__ import annotations

import numpy as np
import pytest

from airush.abuse.data.bots import (
    AHK_MIN_STEP_PX,
    PYAUTOGUI_MIN_SLEEP_MS,
    bot_keys,
    bot_moves,
    draw_tools,
)


def tools(n: int, **settings):
    out = draw_tools(np.random.default_rng(0), n, (0.2, 0.6))
    for name, value in settings.items():
        out[name] = np.full(n, value, dtype=out[name].dtype)
    return out


def move(style, p0, p3, width=40.0, **settings):
    p0, p3 = np.atleast_2d(np.asarray(p0, float)), np.atleast_2d(np.asarray(p3, float))
    n = len(p0)
    row, t, x, y, ms = bot_moves(
        np.random.default_rng(1), style, p0, p3, np.full(n, width), np.arange(n), tools(n, **settings)
    )
    return row, t, np.c_[x, y], ms


def test_puppeteer_steps_are_equal_steps_along_the_line():
    _, t, xy, ms = move("linear", [100, 100], [400, 250], steps=10.0, step_wait=0.0)
    steps = np.diff(np.r_[[[100, 100]], xy], axis=0)
    assert len(xy) == 10 and np.allclose(steps, [30, 15])
    assert (np.diff(t) > 0).all() and t[-1] == pytest.approx(ms[0])


def test_webdriver_moves_take_the_duration_whatever_the_distance():
    for far in (50, 1500):
        _, t, xy, _ = move("webdriver", [0, 0], [far, 0], wd_ms=250.0, wd_tick=10.0)
        assert len(xy) == 25 and t[-1] == pytest.approx(250, abs=1) and xy[-1, 0] == far


def test_pyautogui_takes_fewer_steps_to_sleep_at_least_minimum_sleep():
    _, t, xy, _ = move("tween", [0, 0], [300, 40], tw_random=False, tw_ms=600.0, tw_tween=0, timer=1.0)
    assert len(xy) == 12  # 300 steps of 2 ms would sleep less than 50 ms: int(600 / 50) steps instead
    assert (np.diff(np.r_[0, t]) >= PYAUTOGUI_MIN_SLEEP_MS).all()
    assert tuple(xy[-1]) == (300, 40)
    _, _, jump, _ = move("tween", [0, 0], [300, 40], tw_random=False, tw_ms=80.0)  # < MINIMUM_DURATION
    assert len(jump) == 1


def test_autohotkey_steps_each_axis_at_least_32_px_and_decelerates():
    _, t, xy, _ = move("ahk", [0, 0], [1000, 100], ahk_speed=2.0, ahk_input=False, ahk_delay=10.0, timer=1.0)
    steps = np.abs(np.diff(np.r_[[[0, 0]], xy], axis=0))
    assert tuple(xy[-1]) == (1000, 100)
    short = (steps > 0) & (steps < AHK_MIN_STEP_PX)
    assert (xy[short[:, 0], 0] == 1000).all() and (xy[short[:, 1], 1] == 100).all()  # only onto the target
    assert steps[0, 0] == 500 and steps[1, 0] == 250  # remaining / speed
    assert np.allclose(np.diff(t), 10, atol=1)
    _, _, jump, _ = move("ahk", [0, 0], [1000, 100], ahk_input=True)
    assert len(jump) == 1


def test_ghost_cursor_point_count_follows_its_fitts_formula_and_overshoots_far_targets():
    row, _, xy, _ = move(
        "humanizer", [[0, 0], [0, 0]], [[300, 0], [1200, 0]], gc_fixed=True, gc_move_speed=25.0
    )
    near = xy[row == 0]
    # speed = 25 / 25 = 1: ceil((log2(2·log2(0.8·L/100 + 1) + 1) + 25)·3) with L ~ chord
    expected = np.ceil((np.log2(2 * np.log2(0.8 * 300 * 1.05 / 40 + 1) + 1) + 25) * 3)
    assert len(near) == expected and np.allclose(near[-1], [300, 0])
    far = xy[row == 1]
    assert len(far) > expected  # a path past the target, then one back
    assert np.allclose(far[-1], [1200, 0])


def test_typing_tools():
    s = np.zeros(200, np.int64)
    dd, hold = bot_keys(np.random.default_rng(0), "linear", s, tools(1, type_delay=50.0, rt=1.0))
    assert np.all(hold >= 50) and np.all(dd >= 100)  # Puppeteer type(delay): hold delay, wait delay
    dd, hold = bot_keys(np.random.default_rng(0), "autotyper", s, tools(1, at_dd=120.0, at_dd_jitter=0.0))
    assert np.allclose(dd, 120)
    dd, _ = bot_keys(np.random.default_rng(0), "autotyper", s, tools(1, at_dd=120.0, at_dd_jitter=0.5))
    assert dd.min() >= 60 and dd.max() <= 180 and dd.std() > 10
