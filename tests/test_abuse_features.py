"""The vectorised session features equal a per-session pandas reference (to 1e-9), on synthetic people
and bots and on real Balabit mouse data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airush.abuse.data.synthetic import SyntheticSessions
from airush.abuse.features import SessionFeatures
from airush.abuse.features_reference import reference_features

from conftest import SHARED_DATA


def assert_same_features(events: pd.DataFrame, session_ids: np.ndarray, keyboard=True, mouse=True):
    fast = SessionFeatures(keyboard, mouse).transform(events, session_ids)
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


@pytest.mark.parametrize("seed", [0, 1])
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
    monkeypatch.setattr(features, "CHUNK_EVENTS", 500)
    assert SessionFeatures().n_chunks(log.events, ids) > 5
    pd.testing.assert_frame_equal(SessionFeatures().transform(log.events, ids), whole)


@pytest.mark.skipif(not (SHARED_DATA / "balabit").is_dir(), reason="Balabit data not found")
def test_features_match_reference_on_balabit_sessions(tmp_path):
    from airush.abuse.data.balabit import BalabitMouse

    log = BalabitMouse(str(SHARED_DATA / "balabit"), users=[7], max_test_sessions=15).load()
    test = log.sessions[log.sessions["part"] == "test"]["session_id"].to_numpy()
    events = log.events[log.events["session_id"].isin(test)].reset_index(drop=True)
    assert_same_features(events, test, keyboard=False, mouse=True)
