"""Views of recorded runs read a local sqlite store with `sqlite3` (no MLflow import) and any other store with
MLflow's client: both readers print the same thing on the same store; tab completion answers subcommands and
Hydra's own answer, from a cache after the first TAB."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from airush.errors import UserError
from airush.records import compare, leaderboard, ps, reproduce
from airush.records.runs import reader_for
from airush.records.store_reader import KNOWN_SCHEMAS, READER_ENV, MlflowReader, SqliteReader
from airush.tracking import store
from test_leaderboard import empty_store, record, wide_console  # noqa: F401  (fixtures)

from conftest import AIRUSH


@pytest.fixture(scope="module")
def varied_store(tmp_path_factory, empty_store) -> tuple[str, dict[str, str]]:  # noqa: F811
    """A store with what the views must treat alike: seeds and configs of several models, two tasks and
    experiments, FAILED / KILLED / RUNNING runs (one dead), a sweep parent with a child, a NaN metric, a
    deleted run and a deleted experiment."""
    path = tmp_path_factory.mktemp("views") / "mlflow.db"
    shutil.copy(empty_store, path)
    uri = f"sqlite:///{path}"
    ids = {}
    for seed in (1, 2, 3):
        ids[f"als{seed}"] = record(
            uri, "music", "als", seed, {"ndcg_at_10": 0.1 + seed / 100, "recall_at_10": 0.3}
        )
        record(uri, "music", "als", seed, {"ndcg_at_10": 0.2 + seed / 50}, model_params={"factors": 128})
    ids["pop"] = record(uri, "music", "pop", 1, {"ndcg_at_10": 0.05, "recall_at_10": float("nan")})
    ids["lgbm"] = record(uri, "abuse", "lgbm", 1, {"roc_auc": 0.9, "pr_auc": 0.5, "eer": 0.1})
    record(uri, "abuse", "lgbm", 2, {"roc_auc": 0.8, "pr_auc": 0.4, "eer": 0.2}, experiment="abuse-2")
    record(uri, "music", "bpr", 1, {"ndcg_at_10": 0.9}, status="FAILED")
    record(uri, "music", "bpr", 2, {"ndcg_at_10": 0.9}, status="KILLED")
    parent = record(uri, "music", "bpr", 3, {"ndcg_at_10": 0.9}, tags={"airush.sweep": "parent"})
    record(uri, "music", "ease", 1, {"ndcg_at_10": 0.3}, tags={"mlflow.parentRunId": parent})
    ids["running"] = record(uri, "music", "itemknn", 1, {}, status="RUNNING")
    ids["dead"] = record(uri, "music", "itemknn", 2, {}, status="RUNNING", tags={"airush.pid": "4194303"})
    client = store.client_for(uri)
    deleted = record(uri, "music", "als", 9, {"ndcg_at_10": 0.99})
    client.delete_run(deleted)
    record(uri, "music", "als", 8, {"ndcg_at_10": 0.98}, experiment="gone")
    client.delete_experiment(client.get_experiment_by_name("gone").experiment_id)
    ids["deleted"] = deleted
    return uri, ids


def both_readers(monkeypatch, capsys, command, argv: list[str]) -> tuple[str, str]:
    """(stdout with the sqlite reader, stdout with MLflow's client) of `command.main(argv)`."""
    out = []
    for reader in ("", "mlflow"):
        monkeypatch.setenv(READER_ENV, reader)
        assert command.main(argv) == 0
        out.append(capsys.readouterr().out)
    return out[0], out[1]


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "json"],
        ["--format", "json", "--all", "--show-dead"],
        ["--format", "csv", "--all"],
        ["--format", "table", "--all", "--show-dead"],
        ["--format", "json", "--experiment", "abuse-2", "music"],
        ["--format", "json", "--tag", "seed=2", "--metric", "recall_at_10"],
    ],
)
def test_both_readers_print_the_same_leaderboard(varied_store, monkeypatch, capsys, wide_console, args):  # noqa: F811
    uri, _ = varied_store
    fast, mlflow = both_readers(monkeypatch, capsys, leaderboard, ["--tracking-uri", uri, *args])
    assert fast == mlflow
    assert fast.strip()


def test_both_readers_print_the_same_comparison(varied_store, monkeypatch, capsys, wide_console):  # noqa: F811
    uri, ids = varied_store
    for args in ([ids["als1"][:8], ids["pop"], ids["dead"]], [ids["als2"], ids["lgbm"], "--all"]):
        fast, mlflow = both_readers(monkeypatch, capsys, compare, ["--tracking-uri", uri, *args])
        assert fast == mlflow
        assert "RUNNING (dead)" in fast or "--all" in args


def test_both_readers_list_the_same_running_runs(varied_store, monkeypatch, capsys):
    uri, ids = varied_store
    fast, mlflow = both_readers(monkeypatch, capsys, ps, ["--tracking-uri", uri, "--format", "json"])
    rows = [
        [{k: v for k, v in row.items() if k != "age_s"} for row in json.loads(out)] for out in (fast, mlflow)
    ]
    assert rows[0] == rows[1]
    assert {r["run_id"]: r["state"] for r in rows[0]} == {ids["running"]: "alive", ids["dead"]: "dead"}


def test_both_readers_find_runs_alike(varied_store, monkeypatch):
    uri, ids = varied_store
    path = Path(uri.removeprefix("sqlite:///"))
    fast, slow = SqliteReader.open(path), MlflowReader(store.client_for(uri))
    assert fast.experiments() == slow.experiments()
    assert [r.info.run_id for r in fast.runs(fast.experiments())] == [
        r.info.run_id for r in slow.runs(slow.experiments())
    ]
    for run_id in (ids["pop"], ids["deleted"], ids["dead"]):  # a deleted run is still found by its id
        a, b = fast.get_run(run_id), slow.get_run(run_id)
        assert (a.info.status, a.info.lifecycle_stage, a.info.run_name) == (
            b.info.status,
            b.info.lifecycle_stage,
            b.info.run_name,
        )
        assert a.data.params == b.data.params and a.data.tags == b.data.tags
        assert json.dumps(a.data.metrics, sort_keys=True) == json.dumps(
            b.data.metrics, sort_keys=True
        )  # NaN too
    assert fast.get_run("zzzz") is None and slow.get_run("zzzz") is None
    for reader in ("", "mlflow"):
        monkeypatch.setenv(READER_ENV, reader)
        for ref, message in [("zzzz", "no run 'zzzz'"), ("deadbeef", "no run 'deadbeef'")]:
            with pytest.raises(UserError, match=message):
                reproduce.recorded_run(uri, ref)


def test_known_schema_is_what_the_installed_mlflow_creates(tmp_path):
    """A new MLflow changes the schema: this fails until KNOWN_SCHEMAS (and the reader) are checked against it."""
    path = tmp_path / "mlflow.db"
    store.client_for(f"sqlite:///{path}").search_experiments()
    with sqlite3.connect(path) as db:
        (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version in KNOWN_SCHEMAS


def test_an_unknown_schema_is_read_through_mlflow(varied_store, tmp_path, monkeypatch):
    uri, _ = varied_store
    path = tmp_path / "mlflow.db"
    shutil.copy(uri.removeprefix("sqlite:///"), path)
    monkeypatch.delenv(READER_ENV, raising=False)
    assert isinstance(reader_for(f"sqlite:///{path}"), SqliteReader)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = 'f00dfeedf00d'")
    assert SqliteReader.open(path) is None
    with pytest.raises(UserError, match="out-of-date database schema"):  # MLflow's own answer, one line
        reader_for(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM alembic_version")
    assert SqliteReader.open(path) is None


def test_a_missing_store_is_refused_not_created(tmp_path):
    with pytest.raises(UserError, match="no MLflow store at"):
        reader_for(f"sqlite:///{tmp_path / 'nope.db'}")
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.slow
def test_views_on_a_sqlite_store_never_import_mlflow(varied_store, tmp_path):
    """The installed `airush` answers leaderboard, compare, ps and an unknown reproduce without MLflow."""
    uri, ids = varied_store
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "COLUMNS": "200"}
    env.pop(READER_ENV, None)
    commands = [
        (["leaderboard"], 0),
        (["compare", ids["als1"][:8], ids["pop"][:8]], 0),
        (["ps"], 0),
        (["reproduce", "zzzz"], 2),
        (["logs", "zzzz"], 2),
    ]
    for args, code in commands:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", AIRUSH, *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert done.returncode == code, done.stderr[-2000:]
        imported = {
            line.split("|")[-1].strip() for line in done.stderr.splitlines() if "import time:" in line
        }
        assert not {m for m in imported if m.split(".")[0] == "mlflow"}, args
        assert "hydra" not in imported or args[0] == "leaderboard", (
            args
        )  # the leaderboard reads the yaml defaults
    assert "no run 'zzzz'" in done.stderr or "not a run id" in done.stderr


def complete(line: str, cache: Path, hydra_only: bool = False) -> list[str]:
    """The answer to a TAB on `line`: airush's, or Hydra's own (the query without airush's handling)."""
    env = {**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line)), "XDG_CACHE_HOME": str(cache)}
    argv = [AIRUSH, "-sc", "query=bash"]
    if hydra_only:
        code = "import sys; from airush.cli import hydra_main; sys.argv[1:] = ['-sc', 'query=bash']; hydra_main()"
        argv = [sys.executable, "-c", code]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_subcommands_complete(tmp_path):
    assert complete("airush lea", tmp_path) == ["leaderboard"]
    assert complete("airush leaderboard --", tmp_path) == []  # after a subcommand the shell completes files
    first = complete("airush ", tmp_path)
    assert {"ps", "logs", "stop", "compare", "model=", "task="} <= set(first)


@pytest.mark.slow
@pytest.mark.parametrize(
    "line",
    [
        "airush ",
        "airush ta",
        "airush model=",
        "airush model=a",
        "airush task=music model.fa",
        "airush +hyd",
        "airush hydra/la",
        "airush seed=",
        "airush seed=4",
        "airush -m model=",
    ],
)
def test_completion_is_hydras_answer_before_and_after_caching(line, tmp_path):
    from airush.cli import SUBCOMMANDS

    word = "" if line.endswith(" ") else line.split()[-1]
    first = len(line.split()) == 1 or (len(line.split()) == 2 and not line.endswith(" "))
    plain = first and "=" not in word and not word.startswith(("+", "~", "-"))
    commands = [c for c in SUBCOMMANDS if plain and c.startswith(word)]
    expected = sorted({*complete(line, tmp_path, hydra_only=True), *commands})
    assert complete(line, tmp_path) == expected  # cold: Hydra answers, the cache is filled
    assert list((tmp_path / "airush" / "completion").iterdir())
    assert complete(line, tmp_path) == expected  # warm


def test_option_defaults_are_what_hydra_reads():
    """The leaderboard reads airush's option yaml itself (Hydra's repository costs ~0.3 s): the same dicts."""
    from airush.config.choices import group_options, option_config
    from airush.records.runs import option_defaults

    for group in ("task", "data", "model", "features"):
        for option in group_options(group):
            assert option_defaults(group, option) == option_config(group, option), (group, option)
    assert option_defaults("model", "no_such_model") is None
