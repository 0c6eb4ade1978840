"""model=seq: event sequences (hand-computed values, windows, batches), the CNN (batch-independent scores,
determinism, save/load, DDP ranks agreeing), and the CLI on CPU, with gloo ranks and with impossible GPUs."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from airush.abuse.sequences import (
    CONTINUOUS,
    N_BUTTON_CODES,
    N_EVENT_CODES,
    SessionSequences,
    crop_starts,
    eval_windows,
    length_batches,
    padded_batch,
    session_sequences,
)
from airush.compute.devices import DevicePlan

from conftest import SMALL, run_airush

C = {name: i for i, name in enumerate(CONTINUOUS)}
MOVE, KEY_DOWN, KEY_UP, BUTTON_DOWN, BUTTON_UP = 2, 0, 1, 3, 4  # EVENT_KINDS indices


def events_frame(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["session_id", "t_ms", "event", "key", "x", "y", "button"])
    frame["event"] = frame["event"].astype("category")
    frame["button"] = frame["button"].astype("category")
    return frame


NAN = float("nan")
HAND = events_frame(
    [
        # session 3: a straight move right, a 90-degree turn, a click, a key press
        (3, 0.0, "move", -1, 100, 100, "none"),
        (3, 16.0, "move", -1, 110, 100, "none"),
        (3, 32.0, "move", -1, 120, 100, "none"),
        (3, 50.0, "move", -1, 120, 130, "none"),
        (3, 60.0, "button_down", -1, 120, 130, "left"),
        (3, 170.0, "button_up", -1, 120, 130, "left"),
        (3, 200.0, "key_down", 65, NAN, NAN, "none"),
        (3, 280.0, "key_up", 65, NAN, NAN, "none"),
        # session 9: one key press only
        (9, 0.0, "key_down", 32, NAN, NAN, "none"),
        (9, 95.0, "key_up", 32, NAN, NAN, "none"),
        # session 11 is not asked for: ignored
        (11, 0.0, "move", -1, 1, 1, "none"),
    ]
)


def test_hand_computed_sequence_values():
    seq = session_sequences(HAND, np.array([3, 5, 9]))  # session 5 has no events

    np.testing.assert_array_equal(seq.offsets, [0, 8, 8, 10])
    np.testing.assert_array_equal(seq.lengths, [8, 0, 2])
    np.testing.assert_array_equal(seq.event, [MOVE] * 4 + [BUTTON_DOWN, BUTTON_UP, KEY_DOWN, KEY_UP, 0, 1])
    np.testing.assert_array_equal(seq.button, [0, 0, 0, 0, 1, 1, 0, 0, 0, 0])  # 1 = left
    v = seq.values.astype(np.float64)
    np.testing.assert_allclose(v[:8, C["dt_log"]], np.log1p([0, 16, 16, 18, 10, 110, 30, 80]), rtol=1e-6)
    # the mouse's own gaps; keys count from the previous key event (none before the first)
    np.testing.assert_allclose(
        v[:8, C["dt_device_log"]], np.log1p([0, 16, 16, 18, 10, 110, 0, 80]), rtol=1e-6
    )
    # change of the device's gap: 16 -> 16 is 0 (a timer), 16 -> 18 is 2, 18 -> 10 is 8, 10 -> 110 is 100
    np.testing.assert_allclose(v[:8, C["ddt_log"]], np.log1p([0, 0, 0, 2, 8, 100, 0, 0]), rtol=1e-6)
    np.testing.assert_allclose(v[:8, C["dx_slog"]], np.log1p([0, 10, 10, 0, 0, 0, 0, 0]), rtol=1e-6)
    np.testing.assert_allclose(v[:8, C["dy_slog"]], np.log1p([0, 0, 0, 30, 0, 0, 0, 0]), rtol=1e-6)
    np.testing.assert_allclose(
        v[:8, C["speed_log"]], np.log1p([0, 10 / 16, 10 / 16, 30 / 18, 0, 0, 0, 0]), rtol=1e-6
    )
    np.testing.assert_allclose(v[:8, C["turn"]], [0, 0, 0, np.pi / 2, 0, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(v[:8, C["hold_log"]], np.log1p([0, 0, 0, 0, 0, 110, 0, 80]), rtol=1e-6)
    np.testing.assert_allclose(v[8:, C["hold_log"]], np.log1p([0, 95]), rtol=1e-6)
    assert np.isfinite(seq.values).all()


def test_device_filter_keeps_only_that_devices_events_and_measures_gaps_between_them():
    keys = session_sequences(HAND, np.array([3, 9]), mouse=False)
    np.testing.assert_array_equal(keys.lengths, [2, 2])
    np.testing.assert_allclose(keys.values[:2, C["dt_log"]], np.log1p([0, 80]), rtol=1e-6)
    mouse = session_sequences(HAND, np.array([3, 9]), keyboard=False)
    np.testing.assert_array_equal(mouse.lengths, [6, 0])
    assert not np.isin(mouse.event, [KEY_DOWN, KEY_UP]).any()


def test_category_order_and_values_outside_the_schema():
    shuffled = HAND.copy()
    shuffled["event"] = shuffled["event"].cat.reorder_categories(
        sorted(shuffled["event"].cat.categories)[::-1]
    )
    np.testing.assert_array_equal(
        session_sequences(shuffled, np.array([3, 9])).event, session_sequences(HAND, np.array([3, 9])).event
    )
    odd = HAND.astype({"event": str, "button": str})
    odd.loc[0, "event"], odd.loc[1, "button"] = "pen", "thumb"
    seq = session_sequences(odd, np.array([3]))
    assert seq.event[0] == N_EVENT_CODES - 1 and seq.button[1] == N_BUTTON_CODES - 1  # the spare codes


def synthetic_log(
    seed: int = 0, n_users: int = 30, bot_kinds=("macro", "teleport", "linear", "humanizer", "replay")
):
    from airush.abuse.data.synthetic import SyntheticSessions

    # every session logs both devices: these tests train on a few hundred sessions and check learning
    # mechanics, not how a detector copes with mouse-only or keyboard-only logs
    generator = SyntheticSessions(
        n_users=n_users,
        sessions_per_user=4,
        bot_share=0.2,
        mouse_actions=(3, 8),
        bot_kinds=list(bot_kinds),
        recorded_devices={"both": 1.0},
    )
    return generator.load(seed=seed)


def test_synthetic_sequences_are_finite_deterministic_and_take_equals_rebuilding():
    log = synthetic_log()
    ids = log.sessions["session_id"].to_numpy()
    seq = session_sequences(log.events, ids)
    assert seq.values.shape == (len(log.events), len(CONTINUOUS)) and seq.values.dtype == np.float32
    assert np.isfinite(seq.values).all()
    again = session_sequences(log.events, ids)
    np.testing.assert_array_equal(seq.values, again.values)

    rows = np.array([7, 2, 40, 3])
    taken = seq.take(rows)
    for i, row in enumerate(rows):
        one = session_sequences(log.events[log.events["session_id"] == ids[row]], ids[row : row + 1])
        np.testing.assert_array_equal(taken.values[taken.offsets[i] : taken.offsets[i + 1]], one.values)
        np.testing.assert_array_equal(taken.event[taken.offsets[i] : taken.offsets[i + 1]], one.event)
    np.testing.assert_array_equal(taken.session_ids, ids[rows])


def test_save_load_memory_maps_the_same_arrays(tmp_path: Path):
    seq = session_sequences(HAND, np.array([3, 5, 9]))
    seq.save(tmp_path, "train")
    loaded = SessionSequences.load(tmp_path, "train")
    assert isinstance(loaded.values, np.memmap)
    for name in ("values", "event", "button", "offsets", "session_ids"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(seq, name))


def test_windows_crops_padding_and_batches():
    lengths = np.array([0, 1, 5, 512, 513, 1400])
    session, start, length = eval_windows(lengths, 512)
    np.testing.assert_array_equal(np.bincount(session), [1, 1, 1, 1, 2, 3])
    for s, n in enumerate(lengths):  # every event of every session is in some window, no window overruns
        covered = np.zeros(n, bool)
        for a, b in zip(start[session == s], length[session == s], strict=True):
            assert a + b <= max(n, 0)
            covered[a : a + b] = True
        assert covered.all()
    np.testing.assert_array_equal(start[session == 5], [0, 444, 888])  # evenly spaced, first to last event

    crops = crop_starts(lengths, 512, np.random.default_rng(1))
    assert (crops >= 0).all() and (crops + np.minimum(lengths, 512) <= lengths).all()
    np.testing.assert_array_equal(crops, crop_starts(lengths, 512, np.random.default_rng(1)))

    seq = session_sequences(HAND, np.array([3, 9]))
    values, event, button, mask = padded_batch(seq, np.array([1, 0]), np.array([0, 2]), np.array([2, 5]))
    assert values.shape == (2, 5, len(CONTINUOUS)) and mask.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    np.testing.assert_array_equal(values[0, :2], seq.values[8:10])
    np.testing.assert_array_equal(values[1], seq.values[2:7])
    assert not values[0, 2:].any() and not event[0, 2:].any() and not button[0, 2:].any()

    order = np.random.default_rng(0).permutation(100)
    batches = length_batches(order, np.arange(100) % 17, 8, np.random.default_rng(0), pool=4)
    assert len(batches) == 13 and sorted(np.concatenate(batches).tolist()) == list(range(100))


# --- the model ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_splits():
    from airush.abuse.split import user_disjoint_split

    # replays (another person's session played back) are left out: no per-session model can see them
    log = synthetic_log(seed=3, n_users=150, bot_kinds=("macro", "teleport", "linear", "humanizer"))
    seq = session_sequences(log.events, log.sessions["session_id"].to_numpy())
    parts = user_disjoint_split(log.sessions, {"train": 0.6, "valid": 0.2, "test": 0.2}, seed=0)
    y = log.sessions["label"].to_numpy()
    return {k: (seq.take(rows), y[rows]) for k, rows in parts.items()}


def small_model(**overrides):
    from airush.abuse.models.seq import SequenceDetector

    settings = {"max_events": 256, "batch_size": 16, "max_epochs": 3, "patience": 10, "seed": 5}
    return SequenceDetector(**(settings | overrides))


def fit(model, splits, **kwargs):
    (X, y), (Xv, yv) = splits["train"], splits["valid"]
    return model.fit(X, y, Xv, yv, **kwargs)


def test_fit_is_deterministic_reloads_exactly_and_scores_do_not_depend_on_the_batch(small_splits, tmp_path):
    from airush.abuse.models.seq import SequenceDetector

    first = fit(small_model(), small_splits)
    second = fit(small_model(), small_splits)
    X_test = small_splits["test"][0]
    scores = first.predict_proba(X_test)
    assert scores.shape == (len(X_test),) and ((scores > 0) & (scores < 1)).all()
    np.testing.assert_array_equal(scores, second.predict_proba(X_test))
    assert first.history_ == second.history_
    assert set(first.history_) == {"train_loss", "valid_loss", "valid_auc"}
    assert sorted(first.history_["train_loss"]) == [1, 2, 3]

    # alone, in reverse order or among others: a session's score is the same (padding never leaks in)
    alone = np.array([first.predict_proba(X_test.take([i]))[0] for i in range(len(X_test))])
    np.testing.assert_allclose(alone, scores, rtol=1e-5, atol=1e-7)
    reverse = np.arange(len(X_test))[::-1]
    np.testing.assert_allclose(
        first.predict_proba(X_test.take(reverse)), scores[reverse], rtol=1e-5, atol=1e-7
    )

    first.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["meta.json", "model.pt"]
    loaded = SequenceDetector.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(X_test), scores)
    importance = loaded.feature_importance()
    assert set(importance.index) == {*CONTINUOUS, "event_kind", "button"}
    assert importance.sum() == pytest.approx(1.0) and (importance >= 0).all()


@pytest.mark.slow
def test_training_learns_to_separate_bots_from_people(small_splits):
    from sklearn.metrics import roc_auc_score

    model = fit(small_model(max_epochs=6), small_splits)
    X_test, y_test = small_splits["test"]
    losses = model.history_["train_loss"]
    assert losses[6] < losses[1] / 2
    assert roc_auc_score(y_test, model.predict_proba(X_test)) > 0.95


@pytest.mark.slow
def test_two_gloo_ranks_train_the_sequence_model_and_agree(small_splits):
    model = fit(small_model(max_epochs=4), small_splits, devices=DevicePlan("cpu", 2, "gloo", None))
    assert len(model.rank_checksums_) == 2 and model.rank_checksums_[0] == model.rank_checksums_[1]
    # both ranks stepped every epoch on their half: ceil(ceil(n / 2) / batch) steps per epoch each
    n = len(small_splits["train"][0])
    per_epoch = math.ceil(math.ceil(n / 2) / model.batch_size)
    assert model.rank_steps_ == [4 * per_epoch, 4 * per_epoch]
    assert model.history_["train_loss"][4] < model.history_["train_loss"][1] / 2
    assert np.isfinite(model.predict_proba(small_splits["test"][0])).all()


def test_bf16_autocast_trains_on_cpu(small_splits):
    """The mixed-precision path (autocast, as on CUDA) runs end to end; CPU supports bf16 autocast."""
    model = fit(small_model(max_epochs=2), small_splits, devices=DevicePlan("cpu", 1, None, "bfloat16"))
    assert all(np.isfinite(v) for curve in model.history_.values() for v in curve.values())
    assert np.isfinite(model.predict_proba(small_splits["test"][0])).all()


def test_bad_settings_and_account_scope_are_one_line_config_errors(compose_cfg):
    from airush.abuse import task
    from airush.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model\.kernel_size must be odd"):
        small_model(kernel_size=4).check_params()
    with pytest.raises(ConfigError, match=r"model\.max_events must be >= 1"):
        small_model(max_events=0).check_params()
    cfg = compose_cfg(["model=seq", "data=balabit", "data.root=/nowhere", "task.scope=account"])
    with pytest.raises(ConfigError, match=r"^task\.scope=account cuts sessions into mouse actions"):
        task.model_inputs(cfg)


def test_features_choice_selects_the_events_the_sequences_hold(compose_cfg):
    from airush.abuse import task
    from airush.console import Stages

    with Stages() as stages:
        prepared = task.prepare(compose_cfg(["model=seq", "features=mouse", *SMALL["abuse"]]), stages)
    assert isinstance(prepared.features, SessionSequences)
    assert not np.isin(prepared.features.event, [KEY_DOWN, KEY_UP]).any()
    assert prepared.stats["sequence_events"] == int(
        (~prepared.log.events["event"].isin(["key_down", "key_up"])).sum()
    )


# --- the CLI --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gpus=2"], "gpus=2 requested but this machine has 0 CUDA device(s)"),
        (
            ["trainer.accelerator=cuda"],
            "trainer.accelerator=cuda with 1 device(s) requested but this machine",
        ),
        (["trainer.precision=fp16"], "trainer.precision=fp16 needs CUDA; on CPU use fp32 or bf16"),
    ],
)
def test_impossible_devices_exit_2_with_one_line_and_no_run(args, message, tmp_path, tracking_uri):
    result = run_airush(["task=abuse", "model=seq", *args], tmp_path, tracking_uri)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("airush: error: ") and message in line
    if (tmp_path / "mlflow.db").exists():  # refused before any MLflow run was opened
        client = mlflow.MlflowClient(tracking_uri)
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.slow
def test_cli_ddp_run_on_two_gloo_ranks_is_one_run_dir_and_one_mlflow_run(tmp_path, tracking_uri):
    args = ["task=abuse", "model=seq", "trainer.accelerator=cpu", "trainer.devices=2", *SMALL["abuse"]]
    result = run_airush(args, tmp_path, tracking_uri, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    run_dirs = list((tmp_path / "outputs" / "runs").glob("*/*"))
    assert len(run_dirs) == 1, run_dirs  # the ranks did not run Hydra again
    assert not (tmp_path / "outputs" / "multiruns").exists()
    client = mlflow.MlflowClient(tracking_uri)
    (found,) = client.search_runs([client.get_experiment_by_name("abuse").experiment_id])
    assert found.info.status == "FINISHED"
    metrics, params = found.data.metrics, found.data.params
    assert 0.5 < metrics["roc_auc"] <= 1.0
    from airush.abuse.data.bots import KINDS

    kinds = {name.removeprefix("recall_") for name in metrics if name.startswith("recall_")} - {"at_1pct_fpr"}
    assert kinds and kinds <= set(KINDS)  # a recall per bot kind in the test split
    assert params["trainer.devices"] == "2" and params["model._target_"].endswith("SequenceDetector")
    curve = client.get_metric_history(found.info.run_id, "valid_auc")
    epochs = len(client.get_metric_history(found.info.run_id, "train_loss"))
    assert epochs >= 1 and [m.step for m in curve] == list(range(1, epochs + 1))
