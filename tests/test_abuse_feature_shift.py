"""Mouse kinematics on resampled strokes (SessionFeatures.resample_ms): checked on paths whose true speed and
curvature are known, whatever rate they are logged at; unchanged features when it is off; and the KS table
of scripts/abuse_feature_shift.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest

from airush.abuse.data.synthetic import SyntheticSessions
from airush.abuse.features import MOUSE_PAUSE_MS, SessionFeatures
from airush.abuse.resample import resample_strokes
from test_abuse_features import mouse_events

from conftest import REPO as ROOT

# the last commit whose features.py has no resampling: its output is what resample_ms=None must give
BEFORE_RESAMPLING = "0e32c22772fbe2cf2d8a26aa3084301447b1ec1d"
STEP_MS = 20.0


def features_before_resampling() -> types.ModuleType:
    try:
        source = subprocess.run(
            ["git", "show", f"{BEFORE_RESAMPLING}:src/airush/abuse/features.py"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"git history without commit {BEFORE_RESAMPLING[:8]}")
    module = types.ModuleType("features_before_resampling")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, "features_before_resampling.py", "exec"), module.__dict__)
    return module


def test_without_resampling_features_are_bit_identical_to_before():
    log = SyntheticSessions(n_users=12, sessions_per_user=3, bot_share=0.4, mouse_actions=(3, 8)).load(seed=5)
    ids = log.sessions["session_id"].to_numpy()
    before = features_before_resampling().SessionFeatures().transform(log.events, ids)
    now = SessionFeatures(resample_ms=None, counts=True).transform(log.events, ids)
    added = {"mouse_path_repeat_share", "mouse_clicks_per_min", "mouse_straight_share"}
    assert set(now.columns) - set(before.columns) == added | {"click_copied_share", "mouse_copied_share"}
    pd.testing.assert_frame_equal(now[before.columns], before, check_exact=True)
    resampled = SessionFeatures(resample_ms=STEP_MS, counts=True).transform(log.events, ids)
    assert list(resampled.columns) == list(now.columns)
    assert not np.allclose(resampled["mouse_speed_p50"], before["mouse_speed_p50"], equal_nan=True)


def logged(path, times: np.ndarray, pixel: bool) -> pd.DataFrame:
    """One session's move events at `times` (ms) along `path(t) -> (x, y)`, on the pixel grid if `pixel`."""
    x, y = path(times)
    if pixel:
        x, y = np.rint(x), np.rint(y)
    return mouse_events([(1, t, "move", xi, yi, "none") for t, xi, yi in zip(times, x, y, strict=True)])


def samplings(duration_ms: float) -> dict[str, np.ndarray]:
    irregular = np.cumsum(np.random.default_rng(0).uniform(1.0, 40.0, 4000))
    return {
        "1 ms": np.arange(0.0, duration_ms, 1.0),
        "8 ms": np.arange(0.0, duration_ms, 8.0),
        "16 ms": np.arange(0.0, duration_ms, 1000 / 60),
        "irregular": np.r_[0.0, irregular[irregular < duration_ms]],
    }


def session(events: pd.DataFrame, resample_ms) -> pd.Series:
    return SessionFeatures(keyboard=False, resample_ms=resample_ms).transform(events, np.array([1])).iloc[0]


def test_straight_move_at_constant_speed_gives_its_speed_at_any_rate():
    speed = 0.5  # px/ms, along (3, 4) / 5, logged on the pixel grid as loggers do
    line = lambda t: (100 + 0.6 * speed * t, 50 + 0.8 * speed * t)  # noqa: E731
    raw, resampled = {}, {}
    for name, times in samplings(2000.0).items():
        events = logged(line, times, pixel=True)
        raw[name], resampled[name] = session(events, None), session(events, STEP_MS)
    for name, row in resampled.items():
        # one grid point is off the true line by < 1 px, so one 20 ms step by < 2 px: < 0.1 px/ms
        assert abs(row["mouse_speed_p50"] - speed) < 0.03, name
        assert abs(row["mouse_speed_mean"] - speed) < 0.01, name
        assert row["mouse_turn_p50"] < 0.05, name
        assert row["mouse_straightness_p50"] > 0.999, name
    # as logged, the pixel grid makes the 1 ms steps 0 or 1 px: speeds, accelerations and turns of the
    # logger, not of the hand
    assert raw["1 ms"]["mouse_speed_p10"] < 0.2 < 0.45 < raw["16 ms"]["mouse_speed_p10"]
    assert raw["1 ms"]["mouse_accel_p50"] > 10 * raw["16 ms"]["mouse_accel_p50"]
    assert raw["1 ms"]["mouse_turn_mean"] > 0.3 > resampled["1 ms"]["mouse_turn_mean"]
    spread = lambda rows, f: np.ptp([row[f] for row in rows.values()])  # noqa: E731
    for feature in ("mouse_speed_p10", "mouse_speed_std", "mouse_accel_p50", "mouse_turn_mean"):
        assert spread(resampled, feature) < spread(raw, feature) / 3, feature


def test_circle_at_constant_angular_speed_gives_curvature_one_over_radius():
    r, omega = 200.0, 1.0 / 200.0  # px, rad/ms: 1 px/ms along the circle
    circle = lambda t: (500 + r * np.cos(omega * t), 400 + r * np.sin(omega * t))  # noqa: E731
    raw_turn = {}
    for name, times in samplings(1500.0).items():
        events = logged(circle, times, pixel=False)
        row = session(events, STEP_MS)
        np.testing.assert_allclose(row["mouse_curvature_mean"], 1 / r, rtol=5e-3, err_msg=name)
        # grid points between two logged events lie on their chord, inside the circle by r (1 - cos(w gap / 2))
        # (0.04 px at 16 ms): the turn of single steps varies by a few %, its mean does not
        np.testing.assert_allclose(row["mouse_turn_mean"], omega * STEP_MS, rtol=5e-3, err_msg=name)
        np.testing.assert_allclose(row["mouse_speed_p50"], r * omega, rtol=5e-3, err_msg=name)
        assert row["mouse_accel_p90"] < 1e-3, name
        raw_turn[name] = session(events, None)["mouse_turn_p50"]
    assert raw_turn["16 ms"] > 10 * raw_turn["1 ms"]  # as logged, the turn per event scales with the gap


def test_strokes_split_at_pauses_and_repeated_time_stamps_count_once():
    group = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    t = np.array([0.0, 10.0, 10.0, 30.0, 30.0 + MOUSE_PAUSE_MS + 1, 35.0 + MOUSE_PAUSE_MS, 0.0, 45.0])
    x = np.array([0.0, 1.0, 5.0, 7.0, 100.0, 101.0, 0.0, 90.0])
    path = resample_strokes(group, t, x, np.zeros_like(x), 10.0, MOUSE_PAUSE_MS)
    np.testing.assert_array_equal(path.stroke, [0, 0, 0, 0, 1, 2, 2, 2, 2, 2])
    np.testing.assert_array_equal(path.group, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(path.t, [0, 10, 20, 30, 0, 0, 10, 20, 30, 40])
    np.testing.assert_allclose(path.x, [0, 5, 6, 7, 100, 0, 20, 40, 60, 80])


def test_resampled_features_do_not_depend_on_chunking(monkeypatch):
    import airush.abuse.features as features

    log = SyntheticSessions(n_users=6, sessions_per_user=3, mouse_actions=(2, 5)).load(seed=2)
    ids = log.sessions["session_id"].to_numpy()
    whole = SessionFeatures(resample_ms=STEP_MS).transform(log.events, ids)
    monkeypatch.setattr(features, "CHUNK_EVENTS", 500)
    pd.testing.assert_frame_equal(SessionFeatures(resample_ms=STEP_MS).transform(log.events, ids), whole)


@pytest.mark.parametrize("resample_ms", [0.0, -5.0, MOUSE_PAUSE_MS])
def test_resample_interval_outside_a_stroke_is_refused(resample_ms):
    from airush.errors import ConfigError

    events = logged(lambda t: (t, t), np.arange(0.0, 100.0, 8.0), pixel=True)
    with pytest.raises(ConfigError, match="resample_ms"):
        SessionFeatures(resample_ms=resample_ms).transform(events, np.array([1]))


def shift_script():
    spec = importlib.util.spec_from_file_location(
        "abuse_feature_shift", ROOT / "scripts/abuse_feature_shift.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_shift_table_ranks_features_by_their_largest_ks():
    script = shift_script()
    rng = np.random.default_rng(0)
    frames = {}
    for level in script.LEVELS:
        shifted = 3.0 if level == "remote" else 0.0  # only f_logger moves, and only between loggers
        X = pd.DataFrame(
            {
                "f_logger": rng.normal(shifted, 1.0, 400),
                "f_stable": rng.normal(0.0, 1.0, 400),
                "f_empty": np.full(400, np.nan),
            }
        )
        frames[level] = (X, (np.arange(400) % 2).astype(np.int64))
    table = script.shift_table(frames, label=0)
    assert list(table.index) == ["f_logger", "f_stable"]  # NaN-only features are left out
    assert table.loc["f_logger", "browser vs remote"] > 0.8 > 0.2 > table.loc["f_logger", "browser vs raw"]
    assert table.loc["f_stable"].max() < 0.2
    assert table.loc["f_logger", "max"] == table.loc["f_logger"].drop(["max", "null"]).max()
