"""Validity checks before fitting: data or a split that cannot give a meaningful score is one line naming
what is missing and where (a UserError: exit 2), raised before any MLflow run exists, never a traceback from
LightGBM or scikit-learn, and never a NaN or a 0 recorded as a finished run and ranked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

from airush.abuse import task as abuse
from airush.abuse.data import EventLog
from airush.errors import ConfigError, DataError, UserError
from airush.music import task as music
from airush.music.data import Plays

from conftest import SMALL, assert_refused_before_any_run, run_airush

# --- abuse, scope=session: both classes in the data and in each of train, valid, test ------------------


def sessions_of(cfg) -> pd.DataFrame:
    return instantiate(cfg.data).load(seed=int(cfg.seed)).sessions


def split_sessions(sessions: pd.DataFrame, cfg):
    """`abuse.split` on these sessions, with one stand-in feature row per session (the checks read labels)."""
    features = pd.DataFrame({"f": np.arange(len(sessions), dtype=np.float64)})
    unit = sessions["session_id"].to_numpy()
    prepared = abuse.PreparedSessions(EventLog(pd.DataFrame(), sessions), features, unit, "", {})
    return abuse.split(prepared, cfg)


def test_data_without_bots_is_refused_naming_the_class_and_the_setting(compose_cfg):
    cfg = compose_cfg(["data.bot_share=0", "data.n_users=50"])
    with pytest.raises(DataError) as error:
        split_sessions(sessions_of(cfg), cfg)
    assert str(error.value) == (
        "the data has no bot session (label 1) among its 200 sessions: a detector needs both classes; "
        "raise data.bot_share or data.n_users"
    )


def test_a_single_session_is_refused(compose_cfg):
    cfg = compose_cfg(["data.n_users=1", "data.sessions_per_user=1"])
    with pytest.raises(DataError, match=r"^the data has no bot session \(label 1\) among its 1 session: "):
        split_sessions(sessions_of(cfg), cfg)


def test_user_files_where_every_session_is_a_bot_are_refused(compose_cfg):
    cfg = compose_cfg(["data=events", "data.events=events.csv", "data.sessions=sessions.csv"])
    sessions = sessions_of(compose_cfg(SMALL["abuse"])).assign(label=1, kind="macro")
    with pytest.raises(DataError) as error:
        split_sessions(sessions, cfg)
    assert str(error.value) == (
        "the data has no human session (label 0) among its 300 sessions: a detector needs both classes; "
        "add accounts with human sessions (label 0) to the data"
    )


@pytest.mark.parametrize("empty", ["train", "valid", "test"])
def test_a_split_with_a_zero_ratio_is_refused_naming_the_ratio(compose_cfg, empty):
    ratios = {"train": 0.7, "valid": 0.15, "test": 0.15} | {empty: 0}
    cfg = compose_cfg([f"task.split.ratios={{{', '.join(f'{k}: {v}' for k, v in ratios.items())}}}"])
    with pytest.raises(
        ConfigError, match=rf"^task\.split\.ratios\.{empty} is 0, so the {empty} split is empty"
    ):
        split_sessions(sessions_of(compose_cfg(SMALL["abuse"])), cfg)


def test_all_data_in_train_is_refused(compose_cfg):
    cfg = compose_cfg(["task.split.ratios={train: 1.0, valid: 0, test: 0}", "data.n_users=50"])
    with pytest.raises(ConfigError) as error:
        split_sessions(sessions_of(cfg), cfg)
    assert "\n" not in str(error.value)
    assert str(error.value).endswith("give it a share > 0, e.g. task.split.ratios.valid=0.15")


def test_a_split_without_bots_names_the_split_and_how_many_accounts_have_them(compose_cfg):
    cfg = compose_cfg(SMALL["abuse"])
    sessions = sessions_of(cfg)
    bot_accounts = sessions.loc[sessions["label"] == 1, "user_id"].unique()
    keep = np.isin(sessions["user_id"], bot_accounts[:2]) | (sessions["label"] == 0)
    sessions = sessions[keep].reset_index(drop=True)  # bots on 2 accounts: one split goes without
    with pytest.raises(DataError) as error:
        split_sessions(sessions, cfg)
    message = str(error.value)
    assert message.startswith(("the valid split has no bot session", "the test split has no bot session"))
    assert "(label 1; 0 of " in message
    assert message.endswith(
        "2 accounts have bot sessions and each account stays in one split; raise data.bot_share or data.n_users"
    )


def test_too_few_accounts_to_fill_every_split_is_refused(compose_cfg):
    cfg = compose_cfg(["data=events", "data.events=events.csv", "data.sessions=sessions.csv"])
    sessions = pd.DataFrame(
        {"session_id": [0, 1, 2, 3], "user_id": [0, 0, 1, 1], "label": [1, 0, 0, 0], "kind": "human"}
    )
    with pytest.raises(DataError) as error:
        split_sessions(sessions, cfg)
    assert str(error.value) == (
        "the valid split has no session: 2 accounts cannot fill train, valid and test (each account stays in "
        "one split); add accounts to the data"
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_synthetic_data_with_both_classes_still_splits(compose_cfg, seed):
    cfg = compose_cfg(["data.n_users=5", "data.sessions_per_user=4", "data.bot_share=0.3", f"seed={seed}"])
    splits = split_sessions(sessions_of(cfg), cfg)
    for name in ("train", "valid", "test"):
        assert set(splits.y[name]) == {0, 1}, name


def test_the_default_split_is_unchanged(compose_cfg):
    from airush.abuse.split import user_disjoint_split

    cfg = compose_cfg([])
    sessions = sessions_of(cfg)
    splits = split_sessions(sessions, cfg)
    parts = user_disjoint_split(sessions, dict(cfg.task.split.ratios), seed=int(cfg.seed))
    for name, rows in parts.items():
        np.testing.assert_array_equal(splits.session_id[name], sessions["session_id"].to_numpy()[rows])


# --- abuse, scope=account: every scored account has a model, test holds both classes -------------------


def account_prepared(sessions: pd.DataFrame, actions_per_session: int = 4) -> abuse.PreparedSessions:
    """Sessions with their own parts, each cut into `actions_per_session` stand-in mouse actions."""
    unit = np.repeat(sessions["session_id"].to_numpy(), actions_per_session)
    rng = np.random.default_rng(0)
    features = pd.DataFrame({"a": rng.normal(size=len(unit)), "b": rng.normal(size=len(unit))})
    return abuse.PreparedSessions(EventLog(pd.DataFrame(), sessions), features, unit, "", {})


def account_sessions(n_accounts: int, train_per_account: int, test_per_account: int) -> pd.DataFrame:
    rows = []
    for user in range(n_accounts):
        rows += [(user, "train", 0)] * train_per_account
        rows += [(user, "test", i % 2) for i in range(test_per_account)]  # owner, intruder, owner, ...
    frame = pd.DataFrame(rows, columns=["user_id", "part", "label"])
    frame["kind"] = np.where(frame["label"] == 1, "positive", "human")
    return frame.assign(session_id=np.arange(len(frame)))


def account_cfg(compose_cfg):
    return compose_cfg(["data=events", "data.events=e.csv", "data.sessions=s.csv", "task.scope=account"])


def test_accounts_with_one_session_each_are_refused_naming_the_untrained_accounts(compose_cfg):
    # each account's one session is either its training or its test session: test accounts have no model
    sessions = account_sessions(10, 1, 1)
    sessions = sessions[(sessions["user_id"] % 2 == 0) == (sessions["part"] == "train")]
    sessions = sessions.assign(label=np.where(sessions["user_id"] % 4 == 3, 1, 0))
    with pytest.raises(DataError) as error:
        abuse.split(account_prepared(sessions.reset_index(drop=True)), account_cfg(compose_cfg))
    message = str(error.value)
    assert message.startswith(
        "task.scope=account: 5 accounts scored in the test part have no mouse actions in the train part "
        "(1, 3, 5, ...); each account's sessions are scored by a model of its owner: give them part=train"
    )
    assert "\n" not in message


def test_account_scope_without_intruders_in_test_is_refused(compose_cfg):
    sessions = account_sessions(3, 2, 2).assign(label=0)
    with pytest.raises(DataError, match=r"^task\.scope=account: the test part has no intruder session"):
        abuse.split(account_prepared(sessions), account_cfg(compose_cfg))


def test_account_scope_with_one_training_account_is_refused(compose_cfg):
    sessions = account_sessions(3, 2, 2)
    sessions = sessions[(sessions["part"] == "test") | (sessions["user_id"] == 0)].reset_index(drop=True)
    with pytest.raises(
        DataError, match=r"^task\.scope=account: the train part has mouse actions of 1 account;"
    ):
        abuse.split(account_prepared(sessions), account_cfg(compose_cfg))


def test_account_scope_with_an_account_too_small_to_fit_is_refused(compose_cfg):
    sessions = account_sessions(3, 1, 2)
    with pytest.raises(DataError, match=r"^task\.scope=account: account 0's model would learn from 1 owner"):
        abuse.split(account_prepared(sessions, actions_per_session=1), account_cfg(compose_cfg))


def test_small_accounts_still_fit_whatever_the_random_holdout_draws():
    from airush.abuse.models.lgbm import LightGBMDetector
    from airush.abuse.verification import AccountVerifier

    account = np.repeat([1, 2, 3, 4], 2)  # 2 owner actions, 2 impostors: a 20% holdout often takes a class
    X = pd.DataFrame({"a": np.arange(8.0), "b": np.arange(8.0)[::-1]})
    template = LightGBMDetector(num_boost_round=5, early_stopping_rounds=2, num_threads=1)
    for seed in range(12):
        fitted = AccountVerifier(template, seed=seed).fit(X, account)
        assert sorted(fitted.models_) == [1, 2, 3, 4]


def test_a_checked_account_split_scores_every_test_session(compose_cfg):
    sessions = account_sessions(4, 2, 2)
    splits = abuse.split(account_prepared(sessions), account_cfg(compose_cfg))
    assert set(splits.y["test"]) == {0, 1}
    assert set(splits.account["test"]) <= set(splits.account["train"])


# --- music: enough users and items to evaluate ---------------------------------------------------------


def music_prepared(cfg) -> music.PreparedPlays:
    return music.prepare(cfg, None)


def plays_prepared(interactions: pd.DataFrame, n_users: int, n_items: int) -> music.PreparedPlays:
    plays = Plays(interactions, pd.DataFrame(index=range(n_items)), np.arange(n_users), np.arange(n_items))
    return music.PreparedPlays(plays, "", {}, None)


def test_one_user_is_refused_naming_the_split_and_the_minimum(compose_cfg):
    cfg = compose_cfg(["task=music", "data.n_users=1"])
    with pytest.raises(DataError) as error:
        music.split(music_prepared(cfg), cfg)
    assert str(error.value) == (
        "the valid split has 1 user to evaluate, fewer than task.min_eval_users=10: 1 of 1 users played 5 or "
        "more distinct items (task.split.min_user_interactions; fewer only train); raise data.n_users, lower "
        "task.split.min_user_interactions, or lower task.min_eval_users"
    )


def test_the_minimum_of_users_is_a_setting(compose_cfg):
    from airush.runner import build

    cfg = compose_cfg(["task=music", "data.n_users=3", "task.min_eval_users=1"])
    splits = music.split(music_prepared(cfg), cfg)
    assert (np.diff(splits.test.indptr) > 0).sum() >= 1
    with pytest.raises(ConfigError, match=r"^task\.min_eval_users must be >= 1, got 0"):
        build(compose_cfg(["task=music", "task.min_eval_users=0"]))


def test_all_plays_on_one_item_evaluate_nobody_and_are_refused(compose_cfg):
    cfg = compose_cfg(["task=music", "data=plays", "data.interactions=plays.csv"])
    n_users = 50
    interactions = pd.DataFrame(
        {"user": np.arange(n_users), "item": 0, "plays": 3.0, "timestamp": np.arange(n_users)}
    )
    with pytest.raises(DataError) as error:
        music.split(plays_prepared(interactions, n_users, 100), cfg)
    assert str(error.value).startswith(
        "the valid split has 0 users to evaluate, fewer than task.min_eval_users=10: 0 of 50 users played 5 "
        "or more distinct items"
    )
    assert "use data with more users, lower task.split.min_user_interactions" in str(error.value)


def test_a_catalogue_no_larger_than_k_is_refused(compose_cfg):
    cfg = compose_cfg(
        ["task=music", "data=plays", "data.interactions=plays.csv", "task.split.method=temporal"]
    )
    interactions = pd.DataFrame(
        {"user": np.arange(200), "item": 0, "plays": 1.0, "timestamp": np.arange(200)}
    )
    with pytest.raises(DataError) as error:
        music.split(plays_prepared(interactions, 200, 1), cfg)
    assert str(error.value) == (
        "the catalogue has 1 item, no more than the top 10 that ndcg_at_10 ranks: every list would hold "
        "every item; use data with more items, or a task.primary_metric with a smaller K"
    )


def test_a_temporal_split_with_too_few_users_says_so(compose_cfg):
    cfg = compose_cfg(["task=music", "data.n_users=8", "task.split.method=temporal"])
    with pytest.raises(DataError, match=r"^the valid split has \d user.? to evaluate, .*task\.split\.method"):
        music.split(music_prepared(cfg), cfg)


def test_a_split_without_valid_is_refused(compose_cfg):
    cfg = compose_cfg(["task=music", *SMALL["music"], "~task.split.ratios.valid"])
    with pytest.raises(ConfigError, match=r"^task\.split\.ratios needs train, valid and test; valid missing"):
        music.split(music_prepared(cfg), cfg)


def test_cold_start_metrics_over_too_few_users_are_flagged():
    cold = {"cold_test_items": 3.0, "cold_test_users": 4.0, "cold_ndcg_at_10": 0.5, "cold_recall_at_10": 1.0}
    assert music.few_cold_users_note(cold, 4) is None
    assert music.few_cold_users_note(cold, 5) == (
        "cold-start metrics are means over 4 test users, fewer than task.min_eval_users=5: recorded, never ranked"
    )
    assert music.few_cold_users_note({"cold_test_items": 0.0, "cold_test_interactions": 0.0}, 5) is None


# --- the leaderboard never ranks a metric over too few users -------------------------------------------


def test_leaderboard_leaves_out_music_runs_over_too_few_users(tracking_uri, capsys):
    from test_leaderboard import board, record

    kept = record(tracking_uri, "music", "als", 0, {"ndcg_at_10": 0.2, "users_evaluated": 300.0})
    record(tracking_uri, "music", "pop", 0, {"ndcg_at_10": 0.9, "users_evaluated": 1.0})
    record(tracking_uri, "music", "ease", 0, {"ndcg_at_10": 0.0, "users_evaluated": 0.0})
    record(tracking_uri, "music", "itemknn", 0, {"ndcg_at_10": 0.1})  # no count recorded: ranked as before
    cold = {"cold_ndcg_at_10": 0.5, "cold_test_users": 2.0}  # a run recorded before cold metrics were checked
    record(tracking_uri, "music", "bpr", 0, {"ndcg_at_10": 0.3, "users_evaluated": 300.0, **cold})
    rows = [row for table in board(tracking_uri, capsys)["tables"] for row in table["rows"]]
    assert [row["model"] for row in rows] == ["bpr", "als", "itemknn"]
    assert rows[1]["run_id"] == kept
    with pytest.raises(UserError) as error:
        board(tracking_uri, capsys, "--metric", "cold_ndcg_at_10")
    assert str(error.value) == (
        "no finished run has metric 'cold_ndcg_at_10' over enough users: runs reporting it over fewer than "
        "task.min_eval_users (1) are not ranked"
    )


# --- primary_metric is one the task reports ------------------------------------------------------------


@pytest.mark.parametrize("task", ["abuse", "music"])
def test_a_primary_metric_the_task_does_not_report_is_refused(compose_cfg, task):
    from airush.runner import build

    with pytest.raises(ConfigError, match=r"^task\.primary_metric 'accuracy' is not a metric the"):
        build(compose_cfg([f"task={task}", "task.primary_metric=accuracy"]))


# --- through the CLI: one line, exit 2, no MLflow run ----------------------------------------------------


@pytest.mark.slow
def test_cli_refuses_data_without_bots_before_any_run(tmp_path, tracking_uri):
    result = run_airush(["data.bot_share=0", "data.n_users=50"], tmp_path, tracking_uri)
    assert_refused_before_any_run(
        result, tracking_uri, "the data has no bot session (label 1)", "data.bot_share"
    )


@pytest.mark.slow
def test_cli_refuses_music_with_one_user_before_any_run(tmp_path, tracking_uri):
    result = run_airush(["task=music", "data.n_users=1"], tmp_path, tracking_uri)
    assert_refused_before_any_run(
        result, tracking_uri, "the valid split has 1 user to evaluate", "min_eval_users"
    )
