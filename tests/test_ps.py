"""`airush ps`, `airush logs` and `airush stop` on a real run of the installed `airush`, and on runs whose
process is gone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from airush.errors import UserError
from airush.records import ps, stop
from airush.tracking import store
from test_leaderboard import empty_store, record  # noqa: F401  (fixtures)

from conftest import AIRUSH, SMALL, run_airush

LONG_RUN = ["task=music", "model=bpr", "model.iterations=1000000", *SMALL["music"]]  # hours of epochs


@pytest.fixture
def store_uri(tmp_path, empty_store) -> str:  # noqa: F811
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def running_rows(uri: str, cwd: Path) -> list[dict]:
    done = run_airush(["ps", "--format", "json"], cwd, uri)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_ps_logs_and_stop_a_real_run(tmp_path, store_uri):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_TRACKING_URI"] = store_uri
    job = subprocess.Popen(
        [AIRUSH, *LONG_RUN],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        rows: list[dict] = []
        while (
            time.monotonic() < deadline and job.poll() is None
        ):  # until it trains and has said so in its log
            rows = running_rows(store_uri, tmp_path)
            if rows and (rows[0]["last_line"] or "").startswith("train: "):
                break
            time.sleep(1)
        assert job.poll() is None, job.stderr.read()
        (row,) = rows
        assert (row["task"], row["model"], row["state"], row["pid"]) == (
            "music",
            "bpr",
            "alive",
            str(job.pid),
        )
        assert row["last_line"].startswith("train: ") and row["age_s"] >= 0
        run_id = row["run_id"]
        table = run_airush(["ps"], tmp_path, store_uri).stdout
        assert run_id[:8] in table and "alive" in table and str(job.pid) in table

        log = run_airush(["logs", run_id[:8]], tmp_path, store_uri)
        assert log.returncode == 0 and "train: 0/1000000" in log.stdout and "model: bpr" in log.stdout
        follow = subprocess.Popen(
            [AIRUSH, "logs", "-f", run_id],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(2)
        assert follow.poll() is None  # still following: the run goes on

        stopped = run_airush(
            ["stop", run_id[:8], "--timeout", "240"], tmp_path, store_uri
        )  # a loaded machine
        assert stopped.returncode == 0, stopped.stderr
        assert (
            stopped.stdout.strip()
            == f"airush: run {run_id} ended KILLED (pid {job.pid} on {row['host']}: stopped by SIGTERM)"
        )
        assert job.wait(timeout=60) == 143  # airush's own answer to SIGTERM: the run recorded KILLED
        out, err = follow.communicate(timeout=30)
        assert follow.returncode == 0 and f"run {run_id} ended KILLED" in err.decode()
        assert b"train: 0/1000000" in out
    finally:
        for process in [job, *([follow] if "follow" in locals() else [])]:
            if process.poll() is None:
                process.kill()
    with pytest.raises(ProcessLookupError):
        os.kill(job.pid, 0)
    assert store.client_for(store_uri).get_run(run_id).info.status == "KILLED"
    assert running_rows(store_uri, tmp_path) == []

    again = run_airush(["stop", run_id], tmp_path, store_uri)
    assert (
        again.returncode == 2
        and again.stderr.strip() == f"airush: error: run {run_id} is not running: it ended KILLED"
    )
    run_dir = Path(store.client_for(store_uri).get_run(run_id).data.tags["airush.run_dir"])
    shutil.rmtree(run_dir)  # the log is then read from the copy logged when the run ended
    copy = run_airush(["logs", run_id], tmp_path, store_uri)
    assert copy.returncode == 0 and "train: 0/1000000" in copy.stdout


def test_stop_records_a_run_whose_process_is_gone_killed(store_uri, capsys, monkeypatch):
    gone = subprocess.Popen(["true"])
    gone.wait()
    run_id = record(store_uri, "music", "pop", 1, {}, status="RUNNING", tags={"airush.pid": str(gone.pid)})
    assert [r["state"] for r in json.loads(ps_json(store_uri, capsys))] == ["dead"]
    assert stop.main([run_id[:8], "--tracking-uri", store_uri]) == 0
    assert "its process was already gone" in capsys.readouterr().out
    run = store.client_for(store_uri).get_run(run_id)
    assert (run.info.status, run.data.tags["airush.dead"]) == ("KILLED", "true")


def test_a_run_whose_process_is_a_zombie_is_dead(store_uri, capsys):
    """A process that exited but was not yet waited for by its parent still has a /proc entry (state Z):
    its run has ended, so ps says dead, not alive."""
    zombie = subprocess.Popen(["true"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.05)
    try:
        run_id = record(
            store_uri, "music", "pop", 1, {}, status="RUNNING", tags={"airush.pid": str(zombie.pid)}
        )
        assert [r["state"] for r in json.loads(ps_json(store_uri, capsys))] == ["dead"]
        assert stop.main([run_id[:8], "--tracking-uri", store_uri]) == 0
        assert "its process was already gone" in capsys.readouterr().out
    finally:
        zombie.wait()


def ps_json(uri: str, capsys) -> str:
    assert ps.main(["--format", "json", "--tracking-uri", uri]) == 0
    return capsys.readouterr().out


def test_a_run_on_another_host_is_not_signalled(store_uri, capsys):
    run_id = record(store_uri, "music", "pop", 1, {}, status="RUNNING", tags={"airush.host": "elsewhere"})
    assert [r["state"] for r in json.loads(ps_json(store_uri, capsys))] == ["other host"]
    with pytest.raises(UserError, match=f"run {run_id} runs on host elsewhere .*stop it there"):
        stop.main([run_id, "--tracking-uri", store_uri])
    assert store.client_for(store_uri).get_run(run_id).info.status == "RUNNING"


@pytest.mark.parametrize(
    "args, message",
    [
        (["logs", "zzzz"], "'zzzz' is not a run id"),
        (["stop", "abc"], "too short"),
        (["logs", "0123456789abcdef"], "no MLflow run whose id starts with '0123456789abcdef'"),
        (["stop"], "the following arguments are required: RUN_ID"),
    ],
)
def test_mistakes_are_one_line(store_uri, tmp_path, args, message):
    done = run_airush(args, tmp_path, store_uri)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr


def test_no_running_runs(store_uri, tmp_path):
    record(store_uri, "music", "pop", 1, {"ndcg_at_10": 0.1})
    done = run_airush(["ps"], tmp_path, store_uri)
    assert done.returncode == 0 and done.stdout.strip() == "no running airush runs"


def test_last_line_drops_the_log_prefix(tmp_path):
    log = tmp_path / "airush.log"
    log.write_text("[2026-01-01 10:00:00,000][airush.run][INFO] - train: 3/10 (5.0 s)\n\n")
    assert ps.last_line(log) == "train: 3/10 (5.0 s)"
    assert ps.last_line(None) is None
    assert [ps.age_text(s) for s in (5, 65, 3725)] == ["0m05s", "1m05s", "1h02m"]
