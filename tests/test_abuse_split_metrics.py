"""User-disjoint session split and detection metrics, against scikit-learn and plain Python references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from airush.abuse.data.synthetic import SyntheticSessions
from airush.abuse.metrics import best_f1_threshold, detection_metrics, recall_by_kind
from airush.abuse.split import user_disjoint_split

FRACTIONS = {"train": 0.7, "valid": 0.15, "test": 0.15}


@pytest.fixture(scope="module")
def sessions() -> pd.DataFrame:
    return SyntheticSessions(n_users=60, sessions_per_user=4, bot_share=0.1).load(seed=1).sessions


def check_split(frame: pd.DataFrame, parts: dict[str, np.ndarray]) -> None:
    assert list(parts) == list(FRACTIONS)
    positions = np.concatenate(list(parts.values()))
    # every row exactly once, as row positions (not index labels)
    assert sorted(positions.tolist()) == list(range(len(frame)))
    users = {name: set(frame["user_id"].iloc[rows]) for name, rows in parts.items()}
    names = list(users)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not users[a] & users[b], (a, b)


def positive_users(frame: pd.DataFrame, rows: np.ndarray) -> set:
    part = frame.iloc[rows]
    return set(part.loc[part["label"] == 1, "user_id"])


def test_split_of_synthetic_sessions(sessions):
    parts = user_disjoint_split(sessions, FRACTIONS, seed=0)
    check_split(sessions, parts)
    n_positive = sessions.groupby("user_id")["label"].max().sum()
    assert n_positive >= 3
    for name, rows in parts.items():
        assert positive_users(sessions, rows), name
    # user shares follow the fractions (users assigned whole: within a couple of users per split)
    n_users = sessions["user_id"].nunique()
    for name, rows in parts.items():
        n = sessions["user_id"].iloc[rows].nunique()
        assert abs(n - FRACTIONS[name] * n_users) <= 2, (name, n)


def test_split_deterministic_per_seed(sessions):
    a = user_disjoint_split(sessions, FRACTIONS, seed=3)
    b = user_disjoint_split(sessions, FRACTIONS, seed=3)
    c = user_disjoint_split(sessions, FRACTIONS, seed=4)
    for name in FRACTIONS:
        np.testing.assert_array_equal(a[name], b[name])
    assert any(not np.array_equal(a[name], c[name]) for name in FRACTIONS)


def synthetic_frame(n_users: int, n_positive: int, seed: int, ids=None) -> pd.DataFrame:
    """3 sessions per user; positive users have one bot session among them; shuffled rows, odd index."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n_users) * 3 + 11 if ids is None else np.asarray(ids)
    user = np.repeat(ids, 3)
    label = np.zeros(len(user), dtype=np.int8)
    for u in rng.choice(ids, n_positive, replace=False):
        label[np.flatnonzero(user == u)[int(rng.integers(0, 3))]] = 1
    kinds = np.array(["macro", "teleport", "linear"])
    kind = np.where(label == 1, kinds[rng.integers(0, 3, len(user))], "human")
    frame = pd.DataFrame({"session_id": np.arange(len(user)), "user_id": user, "label": label, "kind": kind})
    frame = frame.sample(frac=1.0, random_state=seed)
    frame.index = 1000 - 2 * np.arange(len(frame))
    return frame


@pytest.mark.parametrize("n_positive", [5, 6, 8, 13])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_positives_in_every_split(n_positive, seed):
    frame = synthetic_frame(40, n_positive, seed)
    parts = user_disjoint_split(frame, FRACTIONS, seed=seed)
    check_split(frame, parts)
    for name, rows in parts.items():
        assert positive_users(frame, rows), (name, n_positive)


@pytest.mark.parametrize("n_positive", [3, 4])
def test_split_positives_in_every_split_with_few_positive_accounts(n_positive):
    frame = synthetic_frame(40, n_positive, 0)
    parts = user_disjoint_split(frame, FRACTIONS, seed=0)
    check_split(frame, parts)
    for name, rows in parts.items():
        assert positive_users(frame, rows), (name, n_positive)


def test_split_with_string_user_ids_and_no_kind_column():
    ids = [f"acct-{i:03d}" for i in range(30)]
    frame = synthetic_frame(30, 7, 5, ids=ids).drop(columns="kind")
    parts = user_disjoint_split(frame, FRACTIONS, seed=5)
    check_split(frame, parts)
    for rows in parts.values():
        assert positive_users(frame, rows)


def test_split_normalises_fractions_and_allows_two_parts():
    frame = synthetic_frame(30, 6, 9)
    parts = user_disjoint_split(frame, {"fit": 3.0, "holdout": 1.0}, seed=9)
    assert list(parts) == ["fit", "holdout"]
    positions = np.concatenate(list(parts.values()))
    assert sorted(positions.tolist()) == list(range(len(frame)))
    users = [set(frame["user_id"].iloc[r]) for r in parts.values()]
    assert not users[0] & users[1]
    assert abs(len(users[1]) - 30 / 4) <= 2


# ----------------------------------------------------------------------------------------------------------
# detection metrics


def scored(seed: int, n: int = 300, rounded: bool = False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    scores = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    if rounded:
        scores = np.round(scores, 1)  # many ties
    return y, scores


@pytest.mark.parametrize("rounded", [False, True])
@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.5000001, 0.8])
def test_detection_metrics_match_sklearn(rounded, threshold):
    y, scores = scored(0, rounded=rounded)
    got = detection_metrics(y, scores, threshold)
    pred = (scores >= threshold).astype(int)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert got["pr_auc"] == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    assert got["f1"] == pytest.approx(f1_score(y, pred, zero_division=0), abs=1e-12)
    assert got["precision"] == pytest.approx(precision_score(y, pred, zero_division=0), abs=1e-12)
    assert got["recall"] == pytest.approx(recall_score(y, pred, zero_division=0), abs=1e-12)
    assert got["threshold"] == threshold
    # F1 by hand: scores exactly at the threshold count as positive
    tp = int(((scores >= threshold) & (y == 1)).sum())
    fp = int(((scores >= threshold) & (y == 0)).sum())
    fn = int(((scores < threshold) & (y == 1)).sum())
    assert got["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn) if tp else 0.0, abs=1e-12)


def test_detection_metrics_threshold_is_inclusive():
    y = np.array([0, 1, 1, 0])
    scores = np.array([0.2, 0.5, 0.9, 0.5])
    got = detection_metrics(y, scores, 0.5)
    assert got["precision"] == pytest.approx(2 / 3)
    assert got["recall"] == 1.0


def test_detection_metrics_single_class():
    got = detection_metrics(np.zeros(10, int), np.linspace(0, 1, 10), 0.5)
    assert np.isnan(got["roc_auc"]) and np.isnan(got["pr_auc"])
    assert got["f1"] == got["precision"] == got["recall"] == 0.0
    got = detection_metrics(np.ones(10, int), np.linspace(0, 1, 10), 0.5)
    assert np.isnan(got["roc_auc"]) and np.isnan(got["pr_auc"])
    assert got["recall"] == pytest.approx(0.5)


def f1_at(y, scores, t) -> float:
    return f1_score(y, (scores >= t).astype(int), zero_division=0)


@pytest.mark.parametrize("rounded", [False, True])
@pytest.mark.parametrize("seed", [1, 2])
def test_best_f1_threshold_beats_every_grid_threshold(seed, rounded):
    y, scores = scored(seed, rounded=rounded)
    best = best_f1_threshold(y, scores)
    best_f1 = f1_at(y, scores, best)
    grid = np.linspace(scores.min() - 0.01, scores.max() + 0.01, 200)
    assert all(best_f1 >= f1_at(y, scores, t) - 1e-12 for t in grid)
    # and it is the optimum over all distinct scores (every achievable prediction set)
    optimum = max(f1_at(y, scores, t) for t in np.unique(scores))
    assert best_f1 == pytest.approx(optimum, abs=1e-12)
    assert best in set(scores.tolist())


def test_best_f1_threshold_separable_and_degenerate():
    y = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
    t = best_f1_threshold(y, scores)
    assert 0.3 < t <= 0.7
    assert f1_at(y, scores, t) == 1.0
    assert best_f1_threshold(np.zeros(5, int), scores) == 0.5


def test_recall_by_kind_matches_groupby():
    rng = np.random.default_rng(4)
    n = 400
    kinds = rng.choice(["human", "macro", "teleport", "linear", "replay"], n, p=[0.8, 0.05, 0.05, 0.05, 0.05])
    y = (kinds != "human").astype(int)
    y_pred = (rng.random(n) < np.where(y == 1, 0.7, 0.1)).astype(int)
    got = recall_by_kind(kinds, y, y_pred)
    frame = pd.DataFrame({"kind": kinds, "pred": y_pred})
    expected = frame[frame["kind"] != "human"].groupby("kind")["pred"].mean()
    assert got == pytest.approx({f"recall_{k}": v for k, v in expected.items()}, abs=1e-12)
    assert "recall_human" not in got
    # kinds without positive sessions get no entry
    assert "recall_linear" not in recall_by_kind(
        kinds[kinds != "linear"], y[kinds != "linear"], y_pred[kinds != "linear"]
    )


def test_recall_by_kind_on_synthetic_sessions(sessions):
    kinds = sessions["kind"].to_numpy()
    y = sessions["label"].to_numpy()
    rng = np.random.default_rng(0)
    y_pred = rng.integers(0, 2, len(y))
    got = recall_by_kind(kinds, y, y_pred)
    bot_kinds = sorted(set(kinds[y == 1]))
    assert list(got) == [f"recall_{k}" for k in bot_kinds]
    for k in bot_kinds:
        assert got[f"recall_{k}"] == pytest.approx(y_pred[kinds == k].sum() / (kinds == k).sum(), abs=1e-12)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 20, 101])
def test_deal_meets_quotas_exactly(n):
    from airush.abuse.split import deal, quotas

    weights = np.array([0.7, 0.15, 0.15])
    target = quotas(n, weights)
    assert target.sum() == n
    if n >= 3:
        assert (target >= 1).all()
    np.testing.assert_array_equal(np.bincount(deal(n, weights), minlength=3), target)
