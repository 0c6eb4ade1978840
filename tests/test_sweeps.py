"""Sweeps as NSML users run them: failures on record, resume, parallel launchers on one sqlite store, Ctrl-C."""

from __future__ import annotations

import os
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
    # the jobs' own runs, not a later sweep's links to the runs it reused
    children = [
        r for r in runs if r.data.tags.get("airush.sweep") != "parent" and "airush.reuses" not in r.data.tags
    ]
    return client, parents, children


def _links(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    return [r for r in runs if "airush.reuses" in r.data.tags]


def _second_job_failed(args: list[str], tmp_path, tracking_uri) -> str:
    """A two-job music sweep whose second job fails: exit 1 and a last line naming it; returns that line."""
    result = run_airush(["-m", *MUSIC, *args], tmp_path, tracking_uri)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("airush: error: 1 sweep job(s) failed: #1 (")
    return last


@pytest.mark.slow
def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path, tracking_uri):
    # a catalogue above max_items makes EASE's fit raise, inside the tracked run (a bad value is refused
    # before the run by the typed config check, so the failure has to come from fitting)
    last = _second_job_failed(["model=ease", "model.max_items=30000,10"], tmp_path, tracking_uri)
    assert "model.max_items=10" in last and "ConfigError" in last
    client, parents, children = _runs(tracking_uri)
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    by_status = {r.info.status: r for r in children}
    assert sorted(by_status) == ["FAILED", "FINISHED"]
    failed = by_status["FAILED"]
    assert failed.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    traceback = Path(
        client.download_artifacts(failed.info.run_id, "traceback.txt", str(tmp_path))
    ).read_text()
    assert "Traceback" in traceback and "ConfigError" in traceback
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
    assert second.stdout.count("· reused") == 2  # each job's table title
    _, parents, children = _runs(tracking_uri)
    assert len(children) == 2 and {r.info.run_id for r in children} == {r.info.run_id for r in first}
    assert all(p.info.status == "FINISHED" for p in parents) and len(parents) == 2
    assert parents[0].data.tags["best.run_id"] in {r.info.run_id for r in first}
    # the second sweep's parent shows both jobs: links to the runs they reused, with their metrics
    second_parent = max(parents, key=lambda p: p.info.start_time)
    links = _links(tracking_uri)
    assert {r.data.tags["mlflow.parentRunId"] for r in links} == {second_parent.info.run_id}
    by_id = {r.info.run_id: r for r in first}
    assert sorted(r.data.tags["airush.reuses"] for r in links) == sorted(by_id)
    for link in links:
        assert link.info.status == "FINISHED"
        reused = by_id[link.data.tags["airush.reuses"]]
        assert link.data.metrics == reused.data.metrics
        # the UI's Dataset and Models columns: the reused run's dataset and logged model
        assert [d.dataset.digest for d in link.inputs.dataset_inputs] == [
            d.dataset.digest for d in reused.inputs.dataset_inputs
        ]
        assert [o.model_id for o in link.outputs.model_outputs] == [reused.data.tags["airush.model_id"]]
    assert second_parent.info.run_name == "sweep ×2: model=pop,ease"
    assert "2 jobs (2 reused)" in second.stdout

    third = run_airush([*args, "resume=false"], tmp_path, tracking_uri)
    assert third.returncode == 0 and "reused" not in third.stdout
    _, _, children = _runs(tracking_uri)
    assert len(children) == 4


@pytest.mark.slow
def test_eight_parallel_jobs_share_one_new_sqlite_store(tmp_path, new_tracking_uri):
    """Eight jobs open one store that does not exist yet. Once is enough: without the store lock, 8 processes
    creating one new sqlite store at once fail nearly every time (7-8 of 8 crashed on the schema migrations in
    each of 3 tries), so a broken lock cannot slip through a single sweep."""
    seeds = ",".join(str(s) for s in range(1, 9))
    result = run_airush(
        ["-m", *MUSIC, "model=pop", f"seed={seeds}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=8"],
        tmp_path,
        new_tracking_uri,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "locked" not in result.stderr
    _, parents, children = _runs(new_tracking_uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(r.data.params["seed"]) for r in children) == list(range(1, 9))
    assert all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    sweep_dirs = list((tmp_path / "outputs" / "multiruns").glob("*/*"))
    assert len(sweep_dirs) == 1 and sorted(p.name for p in sweep_dirs[0].glob("[0-9]*")) == [
        str(i) for i in range(8)
    ]


@pytest.mark.slow
def test_parallel_jobs_keep_their_output_in_their_own_logs(tmp_path, tracking_uri):
    """Three jobs at once: two lines each on the terminal, each job's tables and bars in its console.log, one
    summary at the end, three children under one parent."""
    args = ["-m", *MUSIC, "model=pop", "seed=1,2,3", "hydra/launcher=joblib", "hydra.launcher.n_jobs=3"]
    result = run_airush(args, tmp_path, tracking_uri, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    terminal = (result.stdout + result.stderr).splitlines()
    (sweep_dir,) = (tmp_path / "outputs" / "multiruns").glob("*/*")
    for num in range(3):
        assert sum(line.startswith(f"[job {num}] started: ") for line in terminal) == 1, terminal
        (end,) = [line for line in terminal if line.startswith(f"[job {num}] finished in ")]
        assert "valid ndcg_at_10 " in end and str(sweep_dir / str(num) / "console.log") in end
        own = (sweep_dir / str(num) / "console.log").read_text()
        assert "music · pop · test" in own and "seed=" in own and "evaluate" in own
    assert not [
        line for line in terminal if "music · pop · test" in line or "━" in line
    ]  # no job's table or bar
    assert sum(line.startswith("airush: sweep ") for line in terminal) == 1
    _, parents, children = _runs(tracking_uri)
    assert len(parents) == 1 and len(children) == 3
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}


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


BIG_ALS = ["task=music", "model=als", "model.iterations=10000", "data.n_users=2000", "data.n_items=2000"]


def _signal_when_running(args, sig, jobs: int, tmp_path, tracking_uri):
    """Start airush in its own process group, send `sig` to the group (as a terminal's Ctrl-C does) once `jobs`
    runs have begun; returns (exit code, stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {
        "MLFLOW_TRACKING_URI": tracking_uri
    }
    # SIGINT at its default, even when this suite was started with it ignored (a shell's background job:
    # bash sets SIG_IGN and Python then never raises KeyboardInterrupt)
    proc = subprocess.Popen(
        [AIRUSH, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 180
    try:
        # config_resolved.yaml is written inside the tracked run: the store is migrated and the run exists
        while len(list(tmp_path.glob("outputs/*runs/*/*/**/config_resolved.yaml"))) < jobs:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"the runs never started: {proc.poll()}")
            time.sleep(0.5)
        time.sleep(2.0)
        os.killpg(proc.pid, sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_ctrl_c_and_sigterm_mark_the_run_killed(sig, code, word, tmp_path, tracking_uri):
    from mlflow.tracking import MlflowClient

    returncode, stderr = _signal_when_running(BIG_ALS, sig, 1, tmp_path, tracking_uri)
    assert returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == f"airush: {word}"
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "KILLED"


@pytest.mark.slow
def test_ctrl_c_on_a_parallel_sweep_leaves_no_run_running(tmp_path, tracking_uri):
    args = ["-m", *BIG_ALS, "seed=1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    returncode, stderr = _signal_when_running(args, signal.SIGINT, 2, tmp_path, tracking_uri)
    assert returncode == 130 and "airush: interrupted" in stderr, stderr
    _, parents, children = _runs(tracking_uri)
    assert [r.info.status for r in parents + children] == ["KILLED"] * 3


@pytest.mark.slow
def test_a_job_failing_before_its_run_begins_gets_a_failed_run_of_its_own(tmp_path, tracking_uri):
    # lr=0.01: bpr has a learning rate (trains), pop has none (refused before its run would begin). The job
    # after a finished one must not be recorded under the finished job's run.
    last = _second_job_failed(["model=bpr,pop", "lr=0.01"], tmp_path, tracking_uri)
    assert "model=pop lr=0.01): ConfigError: lr=0.01 but model 'pop' has no learning rate" in last
    client, parents, children = _runs(tracking_uri)
    by_model = {r.data.tags.get("airush.model", "pop"): r for r in children}
    assert by_model["bpr"].info.status == "FINISHED" and by_model["pop"].info.status == "FAILED"
    failed = by_model["pop"]
    assert failed.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    assert "no learning rate" in failed.data.tags["airush.error"]
    text = Path(client.download_artifacts(failed.info.run_id, "traceback.txt", str(tmp_path))).read_text()
    assert "ConfigError" in text
    table = Path(client.download_artifacts(parents[0].info.run_id, "sweep_children.csv", str(tmp_path)))
    rows = [line.split(",")[:2] for line in table.read_text().splitlines()[1:]]
    assert sorted(rows) == sorted([[by_model["bpr"].info.run_id, "FINISHED"], [failed.info.run_id, "FAILED"]])


@pytest.mark.slow
def test_a_sweep_dir_used_again_gets_a_new_parent_and_no_stale_failures(tmp_path, tracking_uri):
    sweep_dir = tmp_path / "fixed"
    args = ["-m", *MUSIC, "model=als", f"hydra.sweep.dir={sweep_dir}"]
    first = run_airush([*args, "model.factors=-1"], tmp_path, tracking_uri)
    assert first.returncode == 1, first.stderr
    second = run_airush([*args, "model.factors=8"], tmp_path, tracking_uri)
    assert second.returncode == 0, second.stderr
    _, parents, children = _runs(tracking_uri)
    assert sorted(p.info.status for p in parents) == ["FAILED", "FINISHED"]
    finished = next(p for p in parents if p.info.status == "FINISHED")
    assert finished.data.tags["hydra.overrides"].endswith("model.factors=8")
    assert [r.info.status for r in children if r.data.tags["mlflow.parentRunId"] == finished.info.run_id] == [
        "FINISHED"
    ]
    assert (sweep_dir / "previous" / "0" / "jobs" / "0.json").exists()  # the first sweep's record, kept


@pytest.mark.slow
def test_resume_trains_again_when_the_data_changed(tmp_path, tracking_uri):
    plays = tmp_path / "plays.csv"
    rows = [(u, i, 1 + (u * i) % 5) for u in range(40) for i in range(30) if (u + i) % 3]
    plays.write_text("user,item,plays\n" + "".join(f"{u},{i},{n}\n" for u, i, n in rows))
    args = ["-m", "task=music", "data=plays", f"data.interactions={plays}", "model=pop,itemknn"]
    assert run_airush(args, tmp_path, tracking_uri).returncode == 0
    same = run_airush(args, tmp_path, tracking_uri)
    assert same.returncode == 0 and same.stdout.count("· reused") == 2, same.stderr
    plays.write_text("user,item,plays\n" + "".join(f"{u},{i},{n + 1}\n" for u, i, n in rows))
    changed = run_airush(args, tmp_path, tracking_uri)
    assert changed.returncode == 0, changed.stderr
    assert "reused" not in changed.stdout and changed.stderr.count("other data: training again") == 2
    _, _, children = _runs(tracking_uri)
    assert len(children) == 4


def _store_runs(tracking_uri: str, specs: list[dict]):
    """Runs created directly in a real sqlite store: (client, experiment id, [run ids])."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("e")
    ids = []
    for spec in specs:
        run = client.create_run(experiment_id, tags=spec.get("tags", {}))
        for key, value in spec.get("metrics", {}).items():
            client.log_metric(run.info.run_id, key, value)
        if spec.get("status"):
            client.set_terminated(run.info.run_id, spec["status"])
        ids.append(run.info.run_id)
    return client, experiment_id, ids


def test_the_best_child_is_chosen_on_valid_not_test(tracking_uri):
    from airush.tracking.sweeps import sweep_summary

    tags = {"airush.primary_metric": "ndcg_at_10"}
    client, _, ids = _store_runs(
        tracking_uri,
        [
            {"tags": tags, "metrics": {"ndcg_at_10": 0.30, "valid_ndcg_at_10": 0.20}, "status": "FINISHED"},
            {"tags": tags, "metrics": {"ndcg_at_10": 0.25, "valid_ndcg_at_10": 0.22}, "status": "FINISHED"},
        ],
    )
    summary = sweep_summary([client.get_run(i) for i in ids])
    assert summary["best"]["run_id"] == ids[1] and summary["best"]["valid_value"] == 0.22
    assert "params" in summary["best"]


def test_an_interrupted_sweep_ends_its_local_children_and_only_tags_remote_ones(tmp_path, tracking_uri):
    import json
    import socket

    from airush.tracking.sweeps import PARENTS_FILE, close_sweep

    here, there = {"airush.host": socket.gethostname()}, {"airush.host": "node-17"}
    client, experiment_id, (parent, done, local, remote) = _store_runs(
        tracking_uri, [{}, {"tags": here, "status": "FINISHED"}, {"tags": here}, {"tags": there}]
    )
    for child in (done, local, remote):
        client.set_tag(child, "mlflow.parentRunId", parent)
    (tmp_path / PARENTS_FILE).write_text(json.dumps({experiment_id: parent}))
    close_sweep(tracking_uri, tmp_path, interrupted=True)
    statuses = [client.get_run(i).info.status for i in (parent, done, local, remote)]
    assert statuses == ["KILLED", "FINISHED", "KILLED", "RUNNING"]  # a SLURM job may still be running
    assert client.get_run(remote).data.tags["airush.sweep_interrupted"] == "true"


def test_resume_ends_dead_running_runs_of_the_config_killed(tracking_uri):
    import socket
    import subprocess as sp

    from airush.tracking.run_record import close_dead_runs_with_config

    gone = sp.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    here = {"airush.host": socket.gethostname(), "airush.config_hash": "abc"}
    client, experiment_id, (dead, alive, other) = _store_runs(
        tracking_uri,
        [
            {"tags": {**here, "airush.pid": str(gone.pid)}},
            {"tags": {**here, "airush.pid": str(os.getpid())}},
            {"tags": {**here, "airush.config_hash": "xyz", "airush.pid": str(gone.pid)}},
        ],
    )
    assert close_dead_runs_with_config(client, experiment_id, "abc") == [dead]
    assert [client.get_run(i).info.status for i in (dead, alive, other)] == ["KILLED", "RUNNING", "RUNNING"]
    assert client.get_run(dead).data.tags["airush.dead"] == "true"


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"ndcg": 0.3, "valid_ndcg": 0.2}, 0.2),
        ({"ndcg": 0.3}, 0.3),  # a metric the task does not validate (per-account verifiers)
        ({"ndcg": 0.3, "valid_loss": 0.5}, 0.3),  # a training curve is not a valid score
        ({"ndcg": 0.3, "valid_ndcg": float("nan")}, None),  # valid had nothing to rank: never test's value
    ],
)
def test_selection_is_on_valid_and_never_falls_back_to_test_for_a_validated_run(metrics, expected):
    from airush.tracking.sweeps import selection_value

    assert selection_value(metrics, "ndcg") == expected


def test_a_test_score_never_outranks_valid_scores():
    from airush.tracking.sweeps import best_row

    rows = [
        {"run_id": "a", "selection": 0.9, "valid_value": None},  # test only
        {"run_id": "b", "selection": 0.4, "valid_value": 0.4},
        {"run_id": "c", "selection": 0.5, "valid_value": 0.5},
    ]
    assert best_row(rows)["run_id"] == "c"
    assert best_row(rows[:1])["run_id"] == "a" and best_row([]) is None
