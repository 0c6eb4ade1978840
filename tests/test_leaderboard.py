"""`airush leaderboard` and `airush compare` on real MLflow runs in a temporary sqlite store."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

import mlflow
import pytest

from airush.config.choices import option_config
from airush.errors import UserError
from airush.records import compare, leaderboard
from airush.tracking import run_record, store

from conftest import SMALL, run_airush


def record(
    uri: str,
    task: str,
    model: str,
    seed: int,
    metrics: dict[str, float],
    *,
    model_params: dict[str, object] | None = None,
    data: str | None = None,
    data_params: dict[str, object] | None = None,
    experiment: str | None = None,
    status: str = "FINISHED",
    tags: dict[str, str] | None = None,
) -> str:
    """One run recorded the way `run.py` records it: tags, the flattened config as params (with run-specific
    paths and data stats that vary by run), test metrics, then the final status."""
    data = data or f"synthetic_{task}"
    config = {
        "task": {"name": task},
        "model": {**option_config("model", model), **(model_params or {})},
        "data": {**option_config("data", data), "n_users": 300, **(data_params or {})},
        "seed": seed,
        "paths": {"run_dir": f"/tmp/runs/{time.time_ns()}"},
        "mlflow": {"tracking_uri": uri, "experiment": experiment or task},
    }
    params = run_record.flatten(config) | {"dataset.interactions": str(1000 + seed)}
    overrides = [f"task={task}", f"model={model}", f"seed={seed}"]
    overrides += [f"model.{k}={v}" for k, v in (model_params or {}).items()]
    overrides += [f"data.{k}={v}" for k, v in (data_params or {}).items()]
    client, experiment_id = store.open_experiment(uri, experiment or task, None)
    run_tags = {
        "airush.task": task,
        "airush.model": model,
        "airush.primary_metric": leaderboard.PRIMARY[task],
        "seed": str(seed),
        "git.commit": "abc123",
        "data.fingerprint": f"fp{seed}",
        "hydra.overrides": " ".join(overrides),
        "airush.host": socket.gethostname(),
        "airush.pid": str(os.getpid()),
        **(tags or {}),
    }
    run = client.create_run(experiment_id, run_name=f"{task}-{model}", tags=run_tags)
    tracked = run_record.TrackedRun(client, run.info.run_id, experiment_id, uri)
    tracked.log_params(params)
    tracked.log_metrics(metrics)
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def board(uri: str, capsys, *args: str) -> dict:
    assert leaderboard.main(["--tracking-uri", uri, "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """A migrated, empty sqlite store: creating one runs MLflow's migrations (seconds), copying it does not."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    store.client_for(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_uri(tmp_path, empty_store) -> str:
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def wide_console(monkeypatch):
    """Rich's shared console, recreated 200 columns wide so table cells do not fold under capsys."""
    import rich

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(rich, "_console", None)


@pytest.fixture(scope="module")
def music_runs(tmp_path_factory, empty_store):
    """(store, run ids) for als with 64 factors (3 seeds), als with 128 factors (2 seeds), pop (2 seeds), ease
    (1 seed), plus runs that must not rank: FAILED and KILLED runs with a higher score, a sweep parent, a
    RUNNING run. Read-only for the tests that use it."""
    path = tmp_path_factory.mktemp("music") / "mlflow.db"
    shutil.copy(empty_store, path)
    uri = f"sqlite:///{path}"
    scores = {
        ("als", 64): [0.10, 0.12, 0.14],
        ("als", 128): [0.20, 0.23],
        ("pop", None): [0.05, 0.07],
        ("ease", None): [0.30],
    }
    ids = {}
    for (model, factors), values in scores.items():
        params = {"factors": factors} if factors else None
        ids[model, factors] = [
            record(uri, "music", model, seed, {"ndcg_at_10": v, "recall_at_10": 2 * v}, model_params=params)
            for seed, v in enumerate(values, 1)
        ]
    record(uri, "music", "bpr", 1, {"ndcg_at_10": 0.9}, status="FAILED")
    record(uri, "music", "bpr", 2, {"ndcg_at_10": 0.9}, status="KILLED")
    record(uri, "music", "bpr", 3, {"ndcg_at_10": 0.9}, tags={"airush.sweep": "parent"})
    record(uri, "music", "itemknn", 1, {}, status="RUNNING")
    return uri, ids


def test_one_row_per_model_best_config_mean_std_over_seeds(music_runs, capsys):
    uri, ids = music_runs
    (table,) = board(uri, capsys)["tables"]
    assert table["task"] == "music" and table["metric"] == "ndcg_at_10" and table["higher_is_better"]
    rows = table["rows"]
    assert [(r["model"], r["n"]) for r in rows] == [("ease", 1), ("als", 2), ("pop", 2)]
    ease, als, pop = rows
    assert ease["mean"] == pytest.approx(0.30) and ease["std"] is None
    assert als["mean"] == pytest.approx(0.215) and als["std"] == pytest.approx(statistics.stdev([0.20, 0.23]))
    assert als["run_id"] == ids["als", 128][1]  # the best seed's run
    assert sorted(als["run_ids"]) == sorted(ids["als", 128])
    assert als["recall_at_10"] == pytest.approx(0.43)
    assert als["key_params"] == "factors=128"  # the model param that differs from conf/model/als.yaml
    assert pop["key_params"] == "" and pop["data"] == "synthetic_music"


def test_all_shows_every_config_and_top_limits(music_runs, capsys):
    uri, _ = music_runs
    rows = board(uri, capsys, "--all")["tables"][0]["rows"]
    assert [(r["model"], r["key_params"], r["n"]) for r in rows] == [
        ("ease", "", 1),
        ("als", "factors=128", 2),
        ("als", "", 3),
        ("pop", "", 2),
    ]
    assert rows[2]["std"] == pytest.approx(0.02)
    assert [r["rank"] for r in board(uri, capsys, "--all", "--top", "2")["tables"][0]["rows"]] == [
        1,
        2,
    ]


def test_failed_killed_parents_and_running_runs_are_not_ranked(music_runs, capsys):
    result = board(music_runs[0], capsys)
    assert "bpr" not in {r["model"] for r in result["tables"][0]["rows"]}
    assert "itemknn" not in {r["model"] for r in result["tables"][0]["rows"]}
    assert result["failed_or_killed"] == 2
    assert result["running"] == 1 and result["dead"] == []  # its pid is this live test process


def test_a_rerun_of_the_same_seed_replaces_the_earlier_run(tracking_uri):
    first = record(tracking_uri, "music", "pop", 1, {"ndcg_at_10": 0.5})
    second = record(tracking_uri, "music", "pop", 1, {"ndcg_at_10": 0.1})
    client = mlflow.MlflowClient(tracking_uri)
    runs = [client.get_run(first), client.get_run(second)]
    (group,) = leaderboard.group_runs(runs, "ndcg_at_10")
    assert [r.info.run_id for r in group.runs] == [second] and group.mean == pytest.approx(0.1)


def test_without_task_one_table_per_task_and_lower_is_better_for_eer(tracking_uri, capsys):
    record(tracking_uri, "music", "pop", 1, {"ndcg_at_10": 0.1})
    for seed, (auc, eer) in enumerate([(0.90, 0.20), (0.80, 0.10)], 1):
        params = {"num_leaves": 15 * seed}
        record(
            tracking_uri,
            "abuse",
            "lgbm",
            seed,
            {"roc_auc": auc, "eer": eer, "pr_auc": 0.5},
            model_params=params,
        )
    tables = board(tracking_uri, capsys, "--all")["tables"]
    assert [t["task"] for t in tables] == ["abuse", "music"]
    assert [r["mean"] for r in tables[0]["rows"]] == [0.90, 0.80]
    assert tables[0]["rows"][0]["eer"] == pytest.approx(0.20)
    (by_eer,) = board(tracking_uri, capsys, "--task", "abuse", "--metric", "eer", "--all")["tables"]
    assert not by_eer["higher_is_better"]
    assert [r["mean"] for r in by_eer["rows"]] == [0.10, 0.20]


def test_metric_directions():
    assert [leaderboard.direction(m) for m in ("ndcg_at_10", "roc_auc", "recall_macro")] == [1, 1, 1]
    assert [leaderboard.direction(m) for m in ("eer", "valid_binary_logloss", "train_loss")] == [-1, -1, -1]
    assert leaderboard.direction("recall_at_1pct_fpr") == 1
    assert [leaderboard.direction(m) for m in ("threshold", "users_evaluated", "cold_test_items")] == [
        0,
        0,
        0,
    ]


def test_filters_by_experiment_data_and_tag(tracking_uri, capsys):
    record(tracking_uri, "music", "pop", 1, {"ndcg_at_10": 0.1}, experiment="baseline")
    record(tracking_uri, "music", "ease", 1, {"ndcg_at_10": 0.3}, experiment="music")
    record(tracking_uri, "music", "als", 1, {"ndcg_at_10": 0.2}, data="lastfm", tags={"owner": "kim"})

    def models(*args: str) -> list[str]:
        return [r["model"] for t in board(tracking_uri, capsys, *args)["tables"] for r in t["rows"]]

    assert models() == ["als", "ease", "pop"]  # lastfm's table, then synthetic_music's
    assert models("--experiment", "baseline") == ["pop"]
    assert models("--experiment", "baseline", "music") == ["als", "ease", "pop"]
    assert models("--data", "lastfm") == ["als"]
    assert models("--data", "synthetic_music") == ["ease", "pop"]
    assert models("--tag", "owner=kim") == ["als"]
    assert models("--tag", "owner=lee") == []
    assert models("--task", "abuse") == []


def test_a_model_row_compares_like_with_like_one_table_per_data_setup(tracking_uri, capsys, wide_console):
    """Toy data (fewer users) scores higher: its runs must not rank against the default data's, nor lastfm's.
    Seeds still pool into one row per setup."""
    for seed in (1, 2):
        record(tracking_uri, "music", "pop", seed, {"ndcg_at_10": 0.05 + seed / 100})
        record(tracking_uri, "music", "als", seed, {"ndcg_at_10": 0.10}, data_params={"n_users": 50})
    record(tracking_uri, "music", "als", 1, {"ndcg_at_10": 0.04})
    record(tracking_uri, "music", "ease", 1, {"ndcg_at_10": 0.3}, data="lastfm")
    record(tracking_uri, "music", "pop", 1, {"ndcg_at_10": 0.02}, data_params={"n_users": 50, "n_items": 90})
    tables = board(tracking_uri, capsys)["tables"]
    shown = {(t["data"], t["data_params"]): [(r["model"], r["n"]) for r in t["rows"]] for t in tables}
    assert shown == {
        ("lastfm", ""): [("ease", 1)],
        ("synthetic_music", "data.n_users=300 data.n_items=4000"): [("pop", 2), ("als", 1)],
        ("synthetic_music", "data.n_users=50 data.n_items=4000"): [("als", 2)],
        ("synthetic_music", "data.n_users=50 data.n_items=90"): [("pop", 1)],
    }
    assert all(r["data_params"] == t["data_params"] for t in tables for r in t["rows"])
    assert "data.n_users" not in " ".join(r["key_params"] for t in tables for r in t["rows"])

    assert leaderboard.main(["--tracking-uri", tracking_uri]) == 0
    out = capsys.readouterr().out
    assert "music · lastfm · by ndcg_at_10 (higher is better)" in out
    title = "music · synthetic_music (data.n_users=300 data.n_items=4000) · by ndcg_at_10"
    assert title in out and out.index(title) < out.index("0.0650 ± 0.0071 (2)") < out.index("0.0400 (1)")

    assert leaderboard.main(["--tracking-uri", tracking_uri, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("task,rank,run_id,model,data,data_params,key_params,")
    assert sum(",synthetic_music,data.n_users=300 data.n_items=4000," in line for line in lines) == 2


def test_setup_params_are_the_data_and_the_split_not_seed_paths_or_reporting():
    setup_keys = [
        "data.n_users",
        "data.users",
        "task.split.method",
        "task.filter.min_user_items",
        "task.scope",
    ]
    assert all(leaderboard.is_setup_key(k) for k in setup_keys)
    other = ["seed", "data.root", "data.cache_dir", "task.ks", "task.recommend.top_n", "task.impostor_ratio"]
    assert not any(leaderboard.is_setup_key(k) for k in [*other, "dataset.users", "model.factors"])


def test_filters_that_match_nothing_say_which(tracking_uri, capsys, wide_console):
    def shown(*args: str) -> str:
        assert leaderboard.main(["--tracking-uri", tracking_uri, *args]) == 0
        return capsys.readouterr().out.strip()

    assert shown() == f"no airush runs in {tracking_uri} yet"
    record(tracking_uri, "music", "pop", 1, {"ndcg_at_10": 0.1})
    record(tracking_uri, "music", "als", 1, {"ndcg_at_10": 0.2}, data="lastfm", tags={"owner": "kim"})
    assert shown("--tag", "owner=lee") == "no runs match --tag owner=lee"
    assert (
        shown("--task", "abuse", "--tag", "owner=kim")
        == "no runs match --task abuse (tasks in this store: music)"
    )
    together = "no runs match --data synthetic_music and --tag owner=kim together (each matches some runs)"
    assert shown("--data", "synthetic_music", "--tag", "owner=kim") == together
    message = "no runs match --data nonsense; data sets in this store: lastfm, synthetic_music"
    with pytest.raises(UserError, match=f"^{message}$"):
        leaderboard.main(["--tracking-uri", tracking_uri, "--data", "nonsense", "--format", "json"])
    assert leaderboard.main(["--tracking-uri", tracking_uri, "--tag", "owner=lee", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["tables"] == []
    assert captured.err == "airush leaderboard: no runs match --tag owner=lee\n"


def test_long_floats_are_compact_in_the_table_only(tracking_uri, capsys, wide_console):
    params = {"regularization": 0.012345678901234567, "alpha": 2.5, "factors": 96}
    record(tracking_uri, "music", "als", 1, {"ndcg_at_10": 0.1}, model_params=params)
    assert leaderboard.main(["--tracking-uri", tracking_uri]) == 0
    assert "alpha=2.5 factors=96 regularization=0.01235 " in capsys.readouterr().out
    (row,) = board(tracking_uri, capsys)["tables"][0]["rows"]
    assert row["key_params"] == "alpha=2.5 factors=96 regularization=0.012345678901234567"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--experiment", "nope"], "no MLflow experiment 'nope'; experiments: "),
        (["--tag", "owner"], "--tag takes KEY=VALUE"),
        (["--metric", "ndcg_at_11"], "no finished run has metric 'ndcg_at_11'; recorded: ndcg_at_10"),
        (["--task", "video"], "airush leaderboard: argument --task: invalid choice: 'video'"),
    ],
)
def test_mistakes_are_one_line(tracking_uri, args, message):
    record(tracking_uri, "music", "pop", 1, {"ndcg_at_10": 0.1})
    with pytest.raises(UserError, match="^" + re.escape(message)) as err:
        leaderboard.main(["--tracking-uri", tracking_uri, *args])
    assert "\n" not in str(err.value)


def test_a_missing_store_is_refused_not_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert leaderboard.default_tracking_uri() == f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    with pytest.raises(UserError, match=r"no MLflow store at .*outputs/mlflow.db; run `airush` here first"):
        leaderboard.main([])
    assert not (tmp_path / "outputs").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert leaderboard.default_tracking_uri() == "sqlite:///elsewhere.db"


def test_a_sigkilled_job_leaves_a_running_run_reported_dead(tracking_uri, capsys, wide_console):
    job = subprocess.Popen(["sleep", "60"])
    started = record(tracking_uri, "music", "als", 1, {}, status="RUNNING", tags={"airush.pid": str(job.pid)})
    alive = record(tracking_uri, "music", "pop", 1, {}, status="RUNNING")  # this test process: alive
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    result = board(tracking_uri, capsys)
    assert result["running"] == 2
    assert [d["run_id"] for d in result["dead"]] == [started]
    assert result["dead"][0]["pid"] == str(job.pid) and result["dead"][0]["model"] == "als"
    assert alive not in {d["run_id"] for d in result["dead"]}

    assert leaderboard.main(["--tracking-uri", tracking_uri]) == 0
    assert "running: 2 (1 dead: process gone; --show-dead lists them)" in capsys.readouterr().out
    assert leaderboard.main(["--tracking-uri", tracking_uri, "--show-dead"]) == 0
    out = capsys.readouterr().out
    assert "dead runs" in out and started[:8] in out and str(job.pid) in out


def test_a_sweep_parent_left_running_by_a_killed_sweep_is_dead_in_leaderboard_and_compare(
    tracking_uri, capsys
):
    """Parents carry the launching process's host and pid (no task, model or params of their own)."""
    job = subprocess.Popen(["sleep", "60"])
    client, experiment_id = store.open_experiment(tracking_uri, "music", None)
    tags = {"airush.sweep": "parent", "airush.host": socket.gethostname(), "airush.pid": str(job.pid)}
    parent = client.create_run(experiment_id, run_name="sweep", tags=tags).info.run_id
    child = record(tracking_uri, "music", "pop", 1, {}, status="RUNNING", tags={"mlflow.parentRunId": parent})
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    result = board(tracking_uri, capsys)
    assert result["running"] == 2  # the child is this live test process
    assert [(d["run_id"], d["task"], d["model"]) for d in result["dead"]] == [
        (parent, "music", "sweep parent")
    ]
    assert board(tracking_uri, capsys, "--task", "abuse")["running"] == 0  # goes with its children's filters
    runs = [client.get_run(parent), client.get_run(child)]
    provenance = {name: values for name, values, _ in compare.provenance_rows(runs)}
    assert provenance["status"] == ["RUNNING (dead)", "RUNNING"]
    assert provenance["model"] == ["sweep parent", "pop"]


def test_table_and_csv_output(music_runs, capsys, wide_console):
    uri, ids = music_runs
    assert leaderboard.main(["--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "music · synthetic_music (data.n_users=300) · by ndcg_at_10 (higher is better)" in out
    assert "0.2150 ± 0.0212 (2)" in out and ids["als", 128][1][:8] in out
    assert out.index("ease") < out.index("als") < out.index("pop")
    assert "running: 1 · failed or killed: 2 (not ranked)" in out
    assert leaderboard.main(["--tracking-uri", uri, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = "task,rank,run_id,model,data,data_params,key_params,metric,mean,std,n,seeds,run_ids"
    assert lines[0].startswith(header)
    assert lines[2].startswith(
        f"music,2,{ids['als', 128][1]},als,synthetic_music,data.n_users=300,factors=128,ndcg_at_10,"
    )


def test_compare_params_provenance_and_metrics(tracking_uri):
    a = record(tracking_uri, "abuse", "lgbm", 1, {"roc_auc": 0.9, "eer": 0.2, "threshold": 0.5})
    b = record(tracking_uri, "abuse", "lgbm", 2, {"roc_auc": 0.8, "eer": 0.1, "threshold": 0.4, "f1": 0.7},
               model_params={"num_leaves": 63})  # fmt: skip
    client = mlflow.MlflowClient(tracking_uri)
    runs = [client.get_run(a), client.get_run(b)]
    params = dict(compare.differing_params(runs))
    assert params == {"dataset.interactions": ["1001", "1002"], "model.num_leaves": ["31", "63"]}
    every = dict(compare.differing_params(runs, show_all=True))
    assert "model.learning_rate" in every and not any(k.startswith(("paths.", "mlflow.")) for k in every)
    metrics = {name: (values, best) for name, values, best in compare.metric_rows(runs)}
    assert metrics["roc_auc"] == ([0.9, 0.8], {0})
    assert metrics["eer"] == ([0.2, 0.1], {1})  # lower is better
    assert metrics["threshold"][1] == set() and metrics["f1"] == ([None, 0.7], set())
    provenance = {name: (values, differs) for name, values, differs in compare.provenance_rows(runs)}
    assert provenance["git.commit"] == (["abc123", "abc123"], False)
    assert provenance["data.fingerprint"] == (["fp1", "fp2"], True)
    assert provenance["status"] == (["FINISHED", "FINISHED"], False)
    assert provenance["seed"] == (["1", "2"], True)  # here, not again among the params


def test_compare_resolves_prefixes_and_refuses_unknown_ids(tracking_uri, capsys, wide_console):
    a = record(tracking_uri, "music", "pop", 1, {"ndcg_at_10": 0.1})
    b = record(tracking_uri, "music", "ease", 1, {"ndcg_at_10": 0.3})
    assert compare.main(["--tracking-uri", tracking_uri, a[:8], b]) == 0
    out = capsys.readouterr().out
    assert "model._target_" in out and "ndcg_at_10" in out and "paths.run_dir" not in out
    with pytest.raises(UserError, match=r"^no MLflow run whose id starts with 'ffff0'$"):
        compare.main(["--tracking-uri", tracking_uri, a, "ffff0"])
    with pytest.raises(UserError, match=r"^'4564-94' is not a run id: run ids are hexadecimal \(0-9, a-f\)$"):
        compare.main(["--tracking-uri", tracking_uri, a, "4564-94"])
    with pytest.raises(
        UserError, match=r"^run id 'abc' is too short: give the full id or a prefix of at least"
    ):
        compare.main(["--tracking-uri", tracking_uri, a, "abc"])
    with pytest.raises(UserError, match=rf"^no MLflow run '{'0' * 32}' in this store$"):
        compare.main(["--tracking-uri", tracking_uri, a, "0" * 32])
    with pytest.raises(UserError, match="give two or more run ids"):
        compare.main(["--tracking-uri", tracking_uri, a])


@pytest.mark.slow
def test_cli_sweep_then_leaderboard_and_compare(tmp_path, tracking_uri):
    sweep = ["-m", "task=music", "model=pop,ease", "seed=1,2", *SMALL["music"]]
    result = run_airush(sweep, cwd=tmp_path, tracking_uri=tracking_uri)
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri)
    children = [
        r
        for r in client.search_runs([client.get_experiment_by_name("music").experiment_id])
        if r.data.tags.get("airush.sweep") != "parent"
    ]
    scores = {
        model: [r.data.metrics["ndcg_at_10"] for r in children if r.data.tags["airush.model"] == model]
        for model in ("pop", "ease")
    }
    assert all(len(v) == 2 for v in scores.values())
    ranked = sorted(scores, key=lambda m: -statistics.fmean(scores[m]))

    shown = run_airush(["leaderboard", "--tracking-uri", tracking_uri], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    cells = [f"{statistics.fmean(scores[m]):.4f} ± {statistics.stdev(scores[m]):.4f} (2)" for m in ranked]
    assert all(cell in shown.stdout for cell in cells), shown.stdout
    assert shown.stdout.index(cells[0]) < shown.stdout.index(cells[1])

    as_json = run_airush(["leaderboard", "--format", "json"], cwd=tmp_path, tracking_uri=tracking_uri)
    (table,) = json.loads(as_json.stdout)["tables"]
    assert [r["model"] for r in table["rows"]] == ranked
    for row in table["rows"]:
        assert row["mean"] == pytest.approx(statistics.fmean(scores[row["model"]]))
    ids = [row["run_id"] for row in table["rows"]]

    toy = ["task=music", "model=ease", "seed=1", "data.n_users=200", *SMALL["music"][1:]]
    assert run_airush(toy, cwd=tmp_path, tracking_uri=tracking_uri).returncode == 0
    as_json = run_airush(["leaderboard", "--format", "json"], cwd=tmp_path, tracking_uri=tracking_uri)
    tables = {t["data_params"]: t["rows"] for t in json.loads(as_json.stdout)["tables"]}
    small, smaller = (f"data.n_users={n} data.n_items=400 data.n_artists=40" for n in (300, 200))
    assert set(tables) == {small, smaller}  # what sets them off conf/data/synthetic_music.yaml
    assert [r["model"] for r in tables[small]] == ranked  # the run on other data ranks on its own
    assert [(r["model"], r["n"]) for r in tables[smaller]] == [("ease", 1)]

    compared = run_airush(["compare", ids[0][:8], ids[1], "--tracking-uri", tracking_uri], cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert "model._target_" in compared.stdout and "ndcg_at_10" in compared.stdout
    assert "recall_at_10" in compared.stdout and "data.fingerprint" in compared.stdout
    unknown = run_airush(["compare", ids[0], "deadbeef"], cwd=tmp_path, tracking_uri=tracking_uri)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "airush: error: no MLflow run whose id starts with 'deadbeef'"


def test_find_run_takes_a_full_id_or_a_unique_prefix(tracking_uri):
    from mlflow.tracking import MlflowClient

    from airush.records.runs import find_run

    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("e")
    ids = [client.create_run(experiment_id).info.run_id for _ in range(40)]
    run_id = ids[0]
    assert find_run(client, run_id).info.run_id == run_id
    unique = next(run_id[:n] for n in range(4, 32) if sum(i.startswith(run_id[:n]) for i in ids) == 1)
    assert find_run(client, unique).info.run_id == run_id
    assert find_run(client, "nope") is None and find_run(client, "0" * 32) is None


def test_a_reproduction_and_a_tuned_run_rank_with_the_config_they_computed(tmp_path, capsys):
    """`+reproduce=run` and `hparams_search=...` choose values, which show as params: a reproduction joins
    its original's row (the same config and seed: it stands for that seed), and neither option is shown as a
    key parameter."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    metrics = {"ndcg_at_10": 0.2, "users_evaluated": 100.0}
    original = record(uri, "music", "als", 1, metrics, model_params={"factors": 128})
    reproduction = record(
        uri,
        "music",
        "als",
        1,
        metrics,
        model_params={"factors": 128},
        tags={"hydra.overrides": "task=music model=als seed=1 model.factors=128 +reproduce=run"},
    )
    record(
        uri,
        "music",
        "als",
        2,
        metrics,
        model_params={"factors": 128},
        tags={"hydra.overrides": "hparams_search=music_als model.factors=128 seed=2"},
    )
    (row,) = board(uri, capsys)["tables"][0]["rows"]
    assert row["key_params"] == "factors=128" and row["n"] == 2  # one run per seed: the latest
    assert reproduction in row["run_ids"] and original not in row["run_ids"]
