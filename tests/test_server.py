"""A team's tracking server: scripts/mlflow_server.sh on loopback, a sweep logged to it, runs read back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, SMALL, run_airush


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """The real server from our script, in its own process group so every worker goes when it stops."""
    port = _free_port()
    env = os.environ | {
        "PORT": str(port),
        "WORKERS": "1",
        "BACKEND": f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}",
        "ARTIFACTS": str(tmp_path / "server" / "artifacts"),
        "MLFLOW": str(Path(sys.executable).parent / "mlflow"),
    }
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115  (held open for the server's lifetime)
    proc = subprocess.Popen(
        ["setsid", str(REPO / "scripts" / "mlflow_server.sh")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not start:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.mark.slow
def test_a_sweep_logs_to_a_real_server_on_loopback(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    result = run_airush(
        ["-m", "task=music", *SMALL["music"], "model=pop,ease"], tmp_path, mlflow_server, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "outputs" / "mlflow.db").exists()  # nothing went to the local default store

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("music")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # the server stores artifacts
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("airush.sweep") == "parent"]
    children = [r for r in runs if r not in parents]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["airush.model"] for r in children) == ["ease", "pop"]
    for child in children:
        assert child.info.status == "FINISHED" and child.data.metrics["ndcg_at_10"] > 0
        assert {a.path for a in client.list_artifacts(child.info.run_id)} >= {"hydra", "model"}
    summary = client.download_artifacts(parents[0].info.run_id, "sweep_summary.json", str(tmp_path))
    assert parents[0].data.tags["best.run_id"] in Path(summary).read_text()
