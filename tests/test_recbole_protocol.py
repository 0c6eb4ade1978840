"""RecBole-GNN's Last.fm 2K protocol: `experiment=recbole_lastfm`, the lastfm_* search spaces, and
scripts/recbole_lastfm.sh (tune, 3 seeds, table via scripts/protocol_table.py)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, SHARED_DATA, run_airush

LASTFM = SHARED_DATA / "lastfm-hetrec2k"
needs_lastfm = pytest.mark.skipif(not LASTFM.is_dir(), reason=f"Last.fm HetRec 2K not found at {LASTFM}")
SCRIPT = REPO / "scripts" / "recbole_lastfm.sh"
TABLE = REPO / "scripts" / "protocol_table.py"
MODELS = ["pop", "itemknn", "content", "als", "bpr", "twotower", "ease"]
SPACES = sorted(p.stem for p in (REPO / "conf" / "hparams_search").glob("lastfm_*.yaml"))


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("airush.conf", version_base="1.3"):
            return compose("config", overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def _assert_protocol(cfg) -> None:
    assert cfg.task.name == "music"
    assert cfg.data._target_ == "airush.music.data.lastfm.LastFMHetRec"
    assert cfg.features.scheme == "binary"  # RecBole loads [user_id, artist_id] only
    split = cfg.task.split
    assert split.method == "random"
    assert dict(split.ratios) == {"train": 0.8, "valid": 0.1, "test": 0.1}
    assert split.min_user_interactions == 3
    assert list(cfg.task.ks) == [10]
    assert cfg.task.primary_metric == "ndcg_at_10"  # valid_ndcg_at_10 picks hyper-parameters


@pytest.mark.parametrize("model", MODELS)
def test_experiment_pins_the_protocol_over_the_task_defaults(model):
    # the default task is abuse and task=music would pick synthetic data and log plays: the experiment wins
    cfg = _compose(["experiment=recbole_lastfm", f"model={model}"])
    _assert_protocol(cfg)
    assert cfg.hydra.runtime.choices.model == model
    assert cfg.hydra.runtime.choices.data == "lastfm"


def test_command_line_still_wins_over_the_experiment():
    cfg = _compose(["experiment=recbole_lastfm", "task.ks=[10,20]", "seed=3"])
    assert list(cfg.task.ks) == [10, 20] and cfg.seed == 3


@pytest.mark.parametrize("space", SPACES)
def test_lastfm_search_spaces_tune_under_the_protocol(space):
    cfg = _compose([f"hparams_search={space}"])
    _assert_protocol(cfg)
    model = space.removeprefix("lastfm_")
    assert cfg.hydra.runtime.choices.model == model
    assert cfg.hydra.sweeper._target_.endswith("AirushOptunaSweeper")
    params = dict(cfg.hydra.sweeper.params)
    assert params and all(k.startswith("model.") for k in params)
    for size in ("factors", "dim"):  # RecBole-GNN's table fixes embedding_size 64
        if size in cfg.model:
            assert cfg.model[size] == 64 and f"model.{size}" not in params


def test_every_tunable_model_of_the_script_has_a_space():
    assert {f"lastfm_{m}" for m in MODELS if m != "pop"} == set(SPACES)


def _recbole_holdout(n: int) -> tuple[int, int, int]:
    """RecBole 1.x Dataset._calcu_split_ids for [0.8, 0.1, 0.1]: floor per held-out part, then at least one
    each while more than one row would stay in train."""
    ratios = [0.8, 0.1, 0.1]
    cnt = [int(r * n) for r in ratios]
    cnt[0] = n - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * n < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return tuple(cnt)


@needs_lastfm
def test_split_sizes_match_recbole_but_for_the_documented_users():
    """The difference conf/experiment/recbole_lastfm.yaml states: 16 users hold out one more item in valid and
    test (round vs floor), and the one user with 2 artists only trains."""
    from airush.music.data.lastfm import LastFMHetRec
    from airush.music.split import split_interactions

    cfg = _compose(["experiment=recbole_lastfm"])
    plays = LastFMHetRec(str(LASTFM)).load()
    parts = split_interactions(plays.interactions, dict(cfg.task.split), seed=1)
    n_users = plays.n_users
    ours = np.stack([np.bincount(parts[s]["user"], minlength=n_users) for s in ("train", "valid", "test")], 1)
    total = ours.sum(axis=1)
    recbole = np.array([_recbole_holdout(int(n)) for n in total])
    differ = np.flatnonzero((ours != recbole).any(axis=1))
    assert sorted(set(total[differ].tolist())) == [2, 15, 18, 27, 28, 35, 36, 37, 38, 46, 48, 49]
    assert len(differ) == 17
    assert (ours[:, 2].sum(), recbole[:, 2].sum()) == (9285, 9270)
    assert ((ours[:, 1] > 0) == (ours[:, 2] > 0)).all()  # a user is tested only with a valid item too
    # the split is random within each user: seed 2 holds out other items, the same number of them
    again = split_interactions(plays.interactions, dict(cfg.task.split), seed=2)
    assert not pd.concat([parts["test"], again["test"]]).duplicated(["user", "item"], keep=False).all()
    assert len(again["test"]) == len(parts["test"])


def _script(*args: str, env: dict | None = None, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_script_is_valid_bash_and_has_help():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    result = _script("--help")
    assert result.returncode == 0
    assert "usage: scripts/recbole_lastfm.sh" in result.stdout and "--skip-tuning" in result.stdout
    bad = _script("--models", "pop lgbm", "--dry-run")
    assert bad.returncode == 2 and "unknown model 'lgbm'" in bad.stderr


def _commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def test_dry_run_prints_tuning_then_three_seeds_per_model(tmp_path):
    result = _script("--dry-run", "--out", str(tmp_path / "out"), "--data-root", "/data/lastfm")
    assert result.returncode == 0, result.stderr
    commands = _commands(result.stdout)
    tuned = {c[2].removeprefix("hparams_search=lastfm_"): c for c in commands if "-m" in c and "seed=0" in c}
    final = {c[4].removeprefix("model="): c for c in commands if "seed=1,2,3" in c}
    assert set(tuned) == set(MODELS) - {"pop"} and set(final) == set(MODELS)
    for model, command in tuned.items():
        assert {"hydra.sweeper.seed=0", "hydra.sweeper.n_jobs=1", "data.root=/data/lastfm"} <= set(command)
        assert f"hydra.sweep.dir={tmp_path}/out/tune/{model}" in command
        assert any(re.fullmatch(r"hydra\.sweeper\.n_trials=\d+", a) for a in command)
    for model, command in final.items():
        assert command[1:5] == ["-m", "experiment=recbole_lastfm", "task=music", f"model={model}"]
        assert f"hydra.sweep.dir={tmp_path}/out/final/{model}" in command
        assert command[-1] == "mlflow.experiment=recbole_lastfm"
    assert commands[-1][1].endswith("protocol_table.py") and len(commands[-1]) == 2 + len(MODELS) + 2
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


@pytest.mark.slow
def test_pinned_best_params_compose(tmp_path):
    """--skip-tuning runs the pinned params: each final command must be a valid config (checked with --cfg)."""
    result = _script("--dry-run", "--skip-tuning", "--out", str(tmp_path), "--data-root", str(LASTFM))
    assert result.returncode == 0, result.stderr
    finals = [c for c in _commands(result.stdout) if "seed=1,2,3" in c]
    assert [c[4].removeprefix("model=") for c in finals] == MODELS  # every model has pinned params
    for command in finals:
        args = [a if a != "seed=1,2,3" else "seed=1" for a in command[2:]]
        composed = run_airush(["--cfg", "job", *args], cwd=tmp_path)
        assert composed.returncode == 0, (args, composed.stderr)
        for override in args:
            if override.startswith("model."):
                key, value = override.removeprefix("model.").split("=", 1)
                assert re.search(rf"^  {key}: {re.escape(value)}$", composed.stdout, re.M), override


@pytest.mark.slow
def test_table_names_a_model_without_runs(tmp_path, tracking_uri):
    (tmp_path / "final" / "ease").mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, str(TABLE), str(tmp_path / "final" / "ease"), "--tracking-uri", tracking_uri],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "| airush ease | no finished run" in result.stdout
    lightgcn = "| LightGCN (published) | learning_rate=0.001 n_layers=3 | **0.1972** | 0.2064 | 1 |"
    assert lightgcn in result.stdout  # the best NDCG@10 in the table is bold


@pytest.mark.slow
@needs_lastfm
def test_script_runs_pop_over_three_seeds_and_writes_the_table(tmp_path, tracking_uri):
    """The whole script for the cheapest model: 3 seeds through the installed CLI, runs read back from MLflow."""
    import mlflow

    out = tmp_path / "out"
    result = _script(
        "--skip-tuning", "--models", "pop", "--out", str(out), "--data-root", str(LASTFM),
        env={"MLFLOW_TRACKING_URI": tracking_uri}, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert (out / "table.md").is_file(), (result.stdout[-3000:], result.stderr[-3000:])
    table = (out / "table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| airush pop |"))
    ndcg, spread = map(float, re.search(r"\| (0\.\d{4}) ± (0\.\d{4}) \|", row).groups())
    assert 0.05 < ndcg < 0.08 and spread < 0.01  # popularity: ~0.065 on this protocol
    assert "3 (seeds 1,2,3)" in row and "| BPR (published) |" in table

    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("recbole_lastfm")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("seed")]
    assert sorted(r.data.tags["seed"] for r in runs) == ["1", "2", "3"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params["features.scheme"] == "binary"
        assert run.data.metrics["users_evaluated"] == 1883
        assert 0.05 < run.data.metrics["recall_at_10"] < 0.1
        assert "ndcg_at_20" not in run.data.metrics  # K = 10 only
    values = sorted(r.data.metrics["ndcg_at_10"] for r in runs)
    assert f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}" in row


def test_the_scripts_trial_budgets_are_the_search_spaces_own():
    """TRIALS in the script passes n_trials explicitly; it must say what each hparams_search yaml says."""
    import yaml

    budgets = dict(
        re.findall(r"\[(\w+)\]=(\d+)", re.search(r"declare -A TRIALS=\((.*)\)", SCRIPT.read_text())[1])
    )
    conf = REPO / "conf" / "hparams_search"
    for model, trials in budgets.items():
        space = yaml.safe_load((conf / f"lastfm_{model}.yaml").read_text())
        assert space["hydra"]["sweeper"]["n_trials"] == int(trials), model
    assert set(budgets) == set(MODELS) - {"pop"}
