"""`hydra/launcher=ray` (src/hydra_plugins/airush_ray_launcher): a sweep sent to a real Ray cluster started
on 127.0.0.1, every job one MLflow run under the sweep's parent in the submitter's store."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import SMALL, free_port, run_airush

MUSIC = ["task=music", *SMALL["music"]]
GPU_PER_JOB = "hydra.launcher.num_gpus=1"
RAY = Path(sys.executable).parent / "ray"
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None or not RAY.exists(),
    reason='ray is not installed: pip install -e ".[ray]"',
)


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head` on 127.0.0.1 (2 CPUs, 100 MB object store) in its own process group; yields its
    address. The cluster never sees the test's MLFLOW_TRACKING_URI: jobs must get it from the submitter.
    Token auth with a token of its own, set for the head and for airush alike: Ray >= 2.59 turns it on by
    itself for a head started where ~/.ray/auth_token exists, and then refuses a driver that sends none.
    Stopped by killing that group, never `ray stop` (which stops every Ray on the machine)."""
    temp = tempfile.mkdtemp(prefix="airush-ray-")  # short: Ray's socket paths must stay under 108 chars
    port = free_port()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_"))}
    env.update(auth, RAY_USAGE_STATS_ENABLED="0")
    command = [
        *("setsid", str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1"),
        f"--port={port}",
        f"--dashboard-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        "--num-cpus=2",
        "--num-gpus=0",
        "--include-dashboard=false",
        "--object-store-memory=100000000",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
    ]
    log_path = Path(temp) / "ray_start.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=temp, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        with pytest.MonkeyPatch.context() as patch:  # what run_airush passes on to airush
            for name, value in auth.items():
                patch.setenv(name, value)
            yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):  # a throwaway cluster: no 30 s drain
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def _runs(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=100)
    parents = [r for r in runs if r.data.tags.get("airush.sweep") == "parent"]
    return parents, [r for r in runs if r.data.tags.get("airush.sweep") != "parent"]


@pytest.mark.slow
@needs_ray
def test_a_sweep_runs_on_a_ray_cluster_into_one_store_under_one_parent(ray_head, tmp_path, tracking_uri):
    started = time.monotonic()
    result = run_airush(
        ["-m", *MUSIC, "model=pop,itemknn", "hydra/launcher=ray", f"hydra.launcher.address={ray_head}"],
        tmp_path,
        tracking_uri,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "airush: sweep " in result.stdout and "2 jobs (2 finished)" in result.stdout
    parents, children = _runs(tracking_uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["airush.model"] for r in children) == ["itemknn", "pop"]
    assert all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    for run in children:
        assert run.data.params["seed"] == "42" and run.data.params["data.n_users"] == "300"
        assert 0 < run.data.metrics["ndcg_at_10"] <= 1 and "valid_ndcg_at_10" in run.data.metrics
    # the jobs ran in Ray's worker processes, not in the process that launched the sweep
    launcher_pid = parents[0].data.tags["airush.pid"]
    assert all(r.data.tags["airush.pid"] != launcher_pid for r in children)
    assert {r.data.tags["airush.host"] for r in children} == {socket.gethostname()}
    sweep_dir = next((tmp_path / "outputs" / "multiruns").glob("*/*"))
    assert sorted(p.name for p in sweep_dir.glob("[0-9]")) == ["0", "1"]
    on_ray = time.monotonic() - started

    # the same job run locally gives the same numbers (CPU runs are deterministic)
    local_uri = f"sqlite:///{tmp_path / 'local.db'}"
    local = run_airush([*MUSIC, "model=itemknn"], tmp_path, local_uri)
    assert local.returncode == 0, local.stderr[-3000:]
    (local_run,) = _runs(local_uri)[1]
    (ray_run,) = [r for r in children if r.data.tags["airush.model"] == "itemknn"]
    for key in ("ndcg_at_10", "recall_at_10", "valid_ndcg_at_10"):
        assert ray_run.data.metrics[key] == pytest.approx(local_run.data.metrics[key], rel=1e-9), key
    assert ray_run.data.params == local_run.data.params
    print(f"2-job sweep on Ray: {on_ray:.1f} s")


@pytest.mark.slow
@needs_ray
def test_a_job_no_node_can_hold_is_refused_before_any_job(ray_head, tmp_path, tracking_uri):
    result = run_airush(
        ["-m", *MUSIC, "model=pop", "hydra/launcher=ray", f"hydra.launcher.address={ray_head}", GPU_PER_JOB],
        tmp_path,
        tracking_uri,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == (
        "airush: error: hydra.launcher.num_gpus=1 but no node of the Ray cluster has more than 0 GPU(s): "
        "every job would wait forever"
    )
    assert _runs(tracking_uri) == ([], [])


@pytest.mark.slow
@needs_ray
def test_an_unreachable_ray_cluster_is_one_line_before_any_job(tmp_path, tracking_uri):
    port = free_port()  # nobody listens there
    started = time.monotonic()
    result = run_airush(
        ["-m", *MUSIC, "model=pop,ease", "hydra/launcher=ray", f"hydra.launcher.address=127.0.0.1:{port}"],
        tmp_path,
        tracking_uri,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"airush: error: cannot reach the Ray cluster at 127.0.0.1:{port}: ")
    assert "ray start --head" in lines[-1] and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60  # not ray.init's minutes of retries
    assert _runs(tracking_uri) == ([], [])


def test_hydra_launcher_ray_is_airush_own_launcher(tmp_path):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    import airush.cli  # noqa: F401  (registers the resolvers airush's configs use)

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("airush.conf", version_base="1.3"):
            cfg = compose(
                "config",
                ["hydra/launcher=ray", "hydra.launcher.address=10.0.0.5:6379", "hydra.launcher.num_gpus=1"],
                return_hydra_config=True,
            )
    finally:
        GlobalHydra.instance().clear()
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.airush_ray_launcher.launcher.AirushRayLauncher"
    assert (launcher.address, launcher.num_cpus, launcher.num_gpus, launcher.max_retries) == (
        "10.0.0.5:6379",
        1,
        1,
        0,
    )
    assert "MLFLOW_TRACKING_URI" in launcher.env
    built = instantiate(launcher)  # no Ray needed until a sweep launches
    assert built.address == "10.0.0.5:6379" and built.num_gpus == 1


def test_without_ray_the_launcher_says_what_to_install(monkeypatch):
    from airush.errors import ConfigError
    from hydra_plugins.airush_ray_launcher.launcher import AirushRayLauncher

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    launcher = AirushRayLauncher(address=None, num_cpus=1, num_gpus=0, max_retries=0, env=[], init={})
    with pytest.raises(ConfigError, match=r"ray needs the optional extra: pip install -e '\.\[ray\]'"):
        launcher._connect()


def test_a_job_ray_lost_is_a_failed_job_of_the_sweep(tmp_path, capsys):
    from omegaconf import OmegaConf

    from airush.tracking.sweeps import job_records
    from hydra_plugins.airush_ray_launcher.launcher import _lost_job

    job = _lost_job(tmp_path, 3, ["model=pop"], OmegaConf.create({}), RuntimeError("worker died\ndetails"))
    assert job.return_value is None  # what a sweeper records as a failed trial
    (record,) = job_records(tmp_path)
    assert record["num"] == 3 and record["status"] == "FAILED"
    assert record["error"] == "RuntimeError: worker died"
    assert "airush: job #3 (model=pop) failed: RuntimeError: worker died" in capsys.readouterr().err
