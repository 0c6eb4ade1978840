"""Sweeps as NSML users run them: failures on record, resume, parallel launchers on one sqlite store, Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import AIRUSH, SMALL, run_airush

MUSIC = ["task=music", *SMALL["music"]]


def _runs(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("airush.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("airush.sweep") != "parent"]
    return client, parents, children


@pytest.mark.slow
def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path, tracking_uri):
    # factors=-1 makes the ALS solver itself raise, inside the tracked run
    result = run_airush(["-m", *MUSIC, "model=als", "model.factors=8,-1"], tmp_path, tracking_uri)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("airush: error: 1 sweep job(s) failed: #1 (")
    assert "model.factors=-1" in last and "negative dimensions" in last
    client, parents, children = _runs(tracking_uri)
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    by_status = {r.info.status: r for r in children}
    assert sorted(by_status) == ["FAILED", "FINISHED"]
    failed = by_status["FAILED"]
    assert failed.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    traceback = Path(
        client.download_artifacts(failed.info.run_id, "traceback.txt", str(tmp_path))
    ).read_text()
    assert "Traceback" in traceback and "ValueError" in traceback
    assert parents[0].data.tags["best.run_id"] == by_status["FINISHED"].info.run_id
    table = Path(client.download_artifacts(parents[0].info.run_id, "sweep_children.csv", str(tmp_path)))
    assert sorted(line.split(",")[1] for line in table.read_text().splitlines()[1:]) == ["FAILED", "FINISHED"]


@pytest.mark.slow
def test_rerunning_a_sweep_reuses_finished_jobs_unless_told_not_to(tmp_path, tracking_uri):
    args = ["-m", *MUSIC, "model=pop,ease"]
    assert run_airush(args, tmp_path, tracking_uri).returncode == 0
    _, _, first = _runs(tracking_uri)
    second = run_airush(args, tmp_path, tracking_uri)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("reused") == 2
    _, parents, children = _runs(tracking_uri)
    assert len(children) == 2 and {r.info.run_id for r in children} == {r.info.run_id for r in first}
    assert all(p.info.status == "FINISHED" for p in parents) and len(parents) == 2
    assert parents[0].data.tags["best.run_id"] in {r.info.run_id for r in first}

    third = run_airush([*args, "resume=false"], tmp_path, tracking_uri)
    assert third.returncode == 0 and "reused" not in third.stdout
    _, _, children = _runs(tracking_uri)
    assert len(children) == 4


@pytest.mark.slow
@pytest.mark.parametrize("repeat", range(3))
def test_eight_parallel_jobs_share_one_new_sqlite_store(repeat, tmp_path, tracking_uri):
    seeds = ",".join(str(s) for s in range(1, 9))
    result = run_airush(
        ["-m", *MUSIC, "model=pop", f"seed={seeds}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=8"],
        tmp_path,
        tracking_uri,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "locked" not in result.stderr
    _, parents, children = _runs(tracking_uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(r.data.params["seed"]) for r in children) == list(range(1, 9))
    assert all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    sweep_dirs = list((tmp_path / "outputs" / "multiruns").glob("*/*"))
    assert len(sweep_dirs) == 1 and sorted(p.name for p in sweep_dirs[0].glob("[0-9]*")) == [
        str(i) for i in range(8)
    ]


@pytest.mark.slow
def test_submitit_local_launcher_runs_the_sweep(tmp_path, tracking_uri):
    result = run_airush(
        ["-m", *MUSIC, "model=pop,ease", "hydra/launcher=submitit_local"], tmp_path, tracking_uri, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _, parents, children = _runs(tracking_uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["airush.model"] for r in children) == ["ease", "pop"]


def test_unreachable_tracking_server_is_one_line_before_any_work(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for args in ([*MUSIC, "model=pop"], ["-m", *MUSIC, "model=pop,ease"]):
        result = run_airush(args, tmp_path, f"http://127.0.0.1:{port}", timeout=120)
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and f"cannot reach MLflow tracking server http://127.0.0.1:{port}" in lines[0]
        assert "train" not in result.stdout  # no stage started


@pytest.mark.slow
def test_ctrl_c_marks_the_run_killed(tmp_path, tracking_uri):
    import os

    from mlflow.tracking import MlflowClient

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {
        "MLFLOW_TRACKING_URI": tracking_uri
    }
    big = ["task=music", "model=als", "model.iterations=10000", "data.n_users=2000", "data.n_items=2000"]
    # as in a terminal: SIGINT at its default, even when this suite was started with it ignored (a shell's
    # background job: bash sets SIG_IGN and Python then never raises KeyboardInterrupt)
    proc = subprocess.Popen(
        [AIRUSH, *big], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 180
    try:
        # config_resolved.yaml is written inside the tracked run: the store is migrated and the run exists
        while not list(tmp_path.glob("outputs/runs/*/*/config_resolved.yaml")):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"the run never started: {proc.poll()}")
            time.sleep(0.5)
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "airush: interrupted"
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "KILLED"
