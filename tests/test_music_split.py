"""Per-user random holdout of play logs, and the seeded synthetic play generator it usually splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airush.errors import ConfigError
from airush.music.data.synthetic import SyntheticPlays
from airush.music.split import per_user_random_split

FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}
COLUMNS = ["user", "item", "plays", "timestamp"]


@pytest.fixture(scope="module")
def plays() -> pd.DataFrame:
    return SyntheticPlays(n_users=200, n_items=500, n_artists=50).load(seed=3).interactions


def by_hand() -> pd.DataFrame:
    """Users with 1..30 rows, non-contiguous ids, rows shuffled, a non-default index."""
    rng = np.random.default_rng(0)
    sizes = {
        3: 1,
        4: 2,
        10: 3,
        11: 4,
        12: 5,
        40: 9,
        41: 10,
        42: 14,
        43: 15,
        44: 16,
        45: 24,
        46: 25,
        47: 26,
        99: 30,
    }
    rows = [
        (u, int(item), float(rng.integers(1, 9)), int(rng.integers(0, 10**6)))
        for u, n in sizes.items()
        for item in rng.choice(1000, n, replace=False)
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS).sample(frac=1.0, random_state=1)
    frame.index = frame.index * 7 + 100
    return frame


def rows_of(frame: pd.DataFrame) -> list[tuple]:
    return sorted(map(tuple, frame[COLUMNS].itertuples(index=False, name=None)))


def expected_held(n: int, min_interactions: int) -> int:
    """Rows per held-out split (valid, test): round(n * 0.1), at least one; none below the threshold."""
    return max(1, round(n * 0.1)) if n >= min_interactions else 0


def check_split(frame: pd.DataFrame, parts: dict[str, pd.DataFrame], min_interactions: int) -> None:
    assert list(parts) == ["train", "valid", "test"]
    for part in parts.values():
        assert list(part.columns) == list(frame.columns)
        assert part.index.tolist() == list(range(len(part)))
    # an exact partition of the rows: none lost, none duplicated
    assert rows_of(pd.concat(parts.values())) == rows_of(frame)
    assert sum(len(p) for p in parts.values()) == len(frame)
    # (user, item) pairs never on two sides: nothing held out is visible in training
    pairs = {name: set(zip(p["user"], p["item"], strict=True)) for name, p in parts.items()}
    assert not pairs["train"] & pairs["valid"]
    assert not pairs["train"] & pairs["test"]
    assert not pairs["valid"] & pairs["test"]
    # per-user sizes
    total = frame.groupby("user").size()
    sizes = {name: p.groupby("user").size().reindex(total.index, fill_value=0) for name, p in parts.items()}
    for user, n in total.items():
        held = expected_held(int(n), min_interactions)
        assert sizes["valid"][user] == held, (user, n)
        assert sizes["test"][user] == held, (user, n)
        assert sizes["train"][user] == n - 2 * held, (user, n)
        if n >= min_interactions:
            assert sizes["valid"][user] >= 1 and sizes["test"][user] >= 1
        else:
            assert sizes["train"][user] == n


@pytest.mark.parametrize("min_interactions", [5, 20, 40])
def test_split_of_synthetic_plays(plays, min_interactions):
    parts = per_user_random_split(plays, FRACTIONS, seed=0, min_interactions=min_interactions)
    check_split(plays, parts, min_interactions)
    n = plays.groupby("user").size()
    if min_interactions > n.min():  # some users are below the threshold and stay whole in train
        below = set(n.index[n < min_interactions])
        assert below and not below & set(parts["test"]["user"]) and not below & set(parts["valid"]["user"])


@pytest.mark.parametrize("min_interactions", [3, 5, 16])
def test_split_by_hand(min_interactions):
    frame = by_hand()
    check_split(
        frame,
        per_user_random_split(frame, FRACTIONS, seed=11, min_interactions=min_interactions),
        min_interactions,
    )


def test_split_keeps_every_row_even_below_three_rows_per_user():
    # with min_interactions 1, users of 1 or 2 rows cannot give train/valid/test a row each; rows must
    # still be neither lost nor duplicated
    frame = by_hand()
    parts = per_user_random_split(frame, FRACTIONS, seed=5, min_interactions=1)
    assert rows_of(pd.concat(parts.values())) == rows_of(frame)


def test_split_rounding_per_user():
    # n * 0.1 = 0.5, 1.5, 2.5 and 3.5: counts follow round(n * 0.1) with at least one row
    sizes = {0: 5, 1: 15, 2: 25, 3: 35, 4: 16, 5: 14}
    frame = pd.DataFrame([(u, i, 1.0, i) for u, n in sizes.items() for i in range(n)], columns=COLUMNS)
    parts = per_user_random_split(frame, FRACTIONS, seed=0, min_interactions=5)
    got = parts["test"].groupby("user").size().to_dict()
    assert got == {u: max(1, round(n * 0.1)) for u, n in sizes.items()}
    assert got == {0: 1, 1: 2, 2: 2, 3: 4, 4: 2, 5: 1}  # 15 * 0.1 is 1.5000000000000002 in floating point


def test_split_is_deterministic_per_seed(plays):
    a = per_user_random_split(plays, FRACTIONS, seed=7, min_interactions=5)
    b = per_user_random_split(plays, FRACTIONS, seed=7, min_interactions=5)
    c = per_user_random_split(plays, FRACTIONS, seed=8, min_interactions=5)
    for name in FRACTIONS:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert rows_of(a["test"]) != rows_of(c["test"])
    assert rows_of(a["valid"]) != rows_of(c["valid"])
    assert len(a["test"]) == len(c["test"])  # sizes depend only on per-user counts


def test_split_does_not_depend_on_row_order_sizes_and_is_random_within_users(plays):
    # the held-out rows are not simply the last / first rows per user (e.g. by timestamp)
    parts = per_user_random_split(plays, FRACTIONS, seed=1, min_interactions=5)
    last = plays.groupby("user").tail(1)
    first = plays.groupby("user").head(1)
    in_test = set(zip(parts["test"]["user"], parts["test"]["item"], strict=True))
    share_last = np.mean([p in in_test for p in zip(last["user"], last["item"], strict=True)])
    share_first = np.mean([p in in_test for p in zip(first["user"], first["item"], strict=True)])
    assert share_last < 0.5 and share_first < 0.5
    # over many seeds every row of a user lands in test about equally often
    user = plays[plays["user"] == plays["user"].iloc[0]]
    counts = {item: 0 for item in user["item"]}
    for seed in range(200):
        test = per_user_random_split(user, FRACTIONS, seed=seed, min_interactions=5)["test"]
        for item in test["item"]:
            counts[item] += 1
    held = expected_held(len(user), 5)
    mean = 200 * held / len(user)
    assert min(counts.values()) > 0.3 * mean and max(counts.values()) < 2.0 * mean


def test_split_rejects_bad_fractions(plays):
    with pytest.raises(ConfigError):
        per_user_random_split(plays, {"train": 1.0}, seed=0, min_interactions=5)
    with pytest.raises(ConfigError):
        per_user_random_split(plays, {"train": 0.8, "test": -0.1}, seed=0, min_interactions=5)


# ----------------------------------------------------------------------------------------------------------
# synthetic play logs


def test_synthetic_plays_deterministic_per_seed(plays):
    again = SyntheticPlays(n_users=200, n_items=500, n_artists=50).load(seed=3)
    pd.testing.assert_frame_equal(plays, again.interactions)
    other = SyntheticPlays(n_users=200, n_items=500, n_artists=50).load(seed=4).interactions
    assert not plays[["user", "item"]].equals(other[["user", "item"]])


def test_synthetic_plays_shape(plays):
    assert list(plays.columns) == COLUMNS
    assert plays["user"].between(0, 199).all() and plays["item"].between(0, 499).all()
    assert not plays.duplicated(["user", "item"]).any()  # items picked without replacement per user
    assert (plays["plays"] >= 1).all() and (plays["plays"] == np.floor(plays["plays"])).all()
    assert plays.groupby("user").size().min() >= 5
    assert plays["user"].nunique() == 200


def top_decile_share(frame: pd.DataFrame, n_items: int) -> tuple[float, float]:
    counts = np.sort(np.bincount(frame["item"], minlength=n_items))[::-1]
    total = counts.sum()
    return counts[: n_items // 10].sum() / total, counts[n_items // 2 :].sum() / total


def test_synthetic_item_popularity_is_skewed(plays):
    top, bottom_half = top_decile_share(plays, 500)
    # uniform popularity would give 10% and 50%
    assert top > 0.2
    assert bottom_half < 0.4
    shares = [
        top_decile_share(
            SyntheticPlays(n_users=200, n_items=500, n_artists=50, popularity_exponent=e)
            .load(seed=3)
            .interactions,
            500,
        )[0]
        for e in (0.0, 2.0)
    ]
    assert shares[0] < top < shares[1]  # the popularity exponent controls the skew
    assert shares[1] > 0.3


# ------------------------------------------------------------------------------------------------------
# time-based splits: no future leakage


def _timed_interactions(seed=5):
    from airush.music.data.synthetic import SyntheticPlays

    return SyntheticPlays(n_users=150, n_items=300, n_artists=30).load(seed=seed).interactions


def test_leave_last_out_holds_out_each_users_latest_interactions():
    from airush.music.split import per_user_leave_last_out

    inter = _timed_interactions()
    parts = per_user_leave_last_out(inter, ["train", "valid", "test"], min_interactions=5)
    assert sum(len(p) for p in parts.values()) == len(inter)
    last_train = parts["train"].groupby("user")["timestamp"].max()
    valid_t = parts["valid"].set_index("user")["timestamp"]
    test_t = parts["test"].set_index("user")["timestamp"]
    assert parts["test"]["user"].is_unique and parts["valid"]["user"].is_unique
    assert (valid_t <= test_t.reindex(valid_t.index)).all()
    assert (last_train.reindex(valid_t.index) <= valid_t).all()  # nothing in train comes after valid
    small = inter.groupby("user").size()
    assert set(parts["test"]["user"]) == set(small.index[small >= 5])


def test_temporal_split_has_no_future_leakage():
    from airush.music.split import global_temporal_split

    inter = _timed_interactions()
    parts = global_temporal_split(inter, {"train": 0.8, "valid": 0.1, "test": 0.1})
    assert sum(len(p) for p in parts.values()) == len(inter)
    assert parts["train"]["timestamp"].max() < parts["valid"]["timestamp"].min()
    assert parts["valid"]["timestamp"].max() < parts["test"]["timestamp"].min()
    assert abs(len(parts["test"]) / len(inter) - 0.1) < 0.02


def test_time_splits_refuse_data_without_timestamps():
    from airush.errors import ConfigError
    from airush.music.split import split_interactions

    inter = _timed_interactions().assign(timestamp=-1)
    for method in ("leave_last_out", "temporal"):
        with pytest.raises(ConfigError, match=f"method={method} needs a timestamp"):
            split_interactions(
                inter, {"method": method, "ratios": {"train": 0.8, "valid": 0.1, "test": 0.1}}, 0
            )
    with pytest.raises(ConfigError, match="unknown; choose from: random, leave_last_out, temporal"):
        split_interactions(inter, {"method": "nope", "ratios": {"train": 1, "test": 1}}, 0)
