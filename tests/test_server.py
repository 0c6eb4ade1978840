"""A team's tracking server: scripts/mlflow_server.sh on loopback, a sweep logged to it, runs read back and a
model loaded through it; the same server behind MLflow's authentication (`AUTH=basic-auth`)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from test_mlflow_models import model_files

from conftest import REPO, SMALL, free_port, run_airush, serving_process


@dataclass
class Server:
    url: str
    process_group: int
    backend: Path  # its sqlite file


def command_lines(process_group: int) -> list[str]:
    """The command line of every process in the group, as `ps` shows them to any user."""
    lines = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == process_group:  # after "pid (comm)": state, ppid, pgrp
                lines.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
    return lines


@contextmanager
def running_server(tmp_path: Path, settings: dict[str, str] | None = None) -> Iterator[Server]:
    """The real server from our script (its `settings` on top), in its own process group so every worker goes
    when it stops."""
    port = free_port()
    backend = tmp_path / "server" / "mlflow.db"
    env = os.environ | {
        "PORT": str(port),
        "WORKERS": "1",
        "BACKEND": f"sqlite:///{backend}",
        "ARTIFACTS": str(tmp_path / "server" / "artifacts"),
        "MLFLOW": str(Path(sys.executable).parent / "mlflow"),
        **(settings or {}),
    }
    url = f"http://127.0.0.1:{port}"
    command = [str(REPO / "scripts" / "mlflow_server.sh")]
    with serving_process(command, url + "/health", tmp_path / "server.log", env=env) as proc:
        yield Server(url, proc.pid, backend)


@pytest.fixture
def mlflow_server(tmp_path: Path):
    with running_server(tmp_path) as server:
        yield server


@pytest.mark.slow
def test_a_sweep_logs_to_a_real_server_on_loopback(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    url = mlflow_server.url
    # the backend URI (a database password, on a team server) is in no process's command line
    lines = command_lines(mlflow_server.process_group)
    assert any("mlflow" in line for line in lines), lines
    assert not [line for line in lines if str(mlflow_server.backend) in line]

    result = run_airush(["-m", "task=music", *SMALL["music"], "model=pop,ease"], tmp_path, url, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "outputs" / "mlflow.db").exists()  # nothing went to the local default store
    assert mlflow_server.backend.stat().st_size > 0  # the server took its backend from the environment

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("music")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # the server stores artifacts
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("airush.sweep") == "parent"]
    children = [r for r in runs if r not in parents]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["airush.model"] for r in children) == ["ease", "pop"]
    for child in children:
        assert child.info.status == "FINISHED" and child.data.metrics["ndcg_at_10"] > 0
        assert {a.path for a in client.list_artifacts(child.info.run_id)} >= {"hydra"}
        assert "model/MLmodel" in model_files(client, child.info.run_id)  # its logged model, on the server
    best_id = parents[0].data.tags["best.run_id"]
    summary = client.download_artifacts(parents[0].info.run_id, "sweep_summary.json", str(tmp_path))
    assert best_id in Path(summary).read_text()

    # the best child's model, loaded through the server by a fresh process, as a teammate would
    load = (
        "import sys, mlflow, pandas as pd\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "print(model.predict(pd.DataFrame({'user': [0, 1]}), params={'k': 5}).to_json(orient='records'))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"MLFLOW_TRACKING_URI": url}
    served = subprocess.run(
        [sys.executable, "-c", load, f"runs:/{best_id}/model"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    rows = json.loads(served.stdout.strip().splitlines()[-1])
    assert [(r["user"], r["rank"]) for r in rows] == [(u, k) for u in (0, 1) for k in range(1, 6)]
    assert all(len({r["item"] for r in rows if r["user"] == u}) == 5 for u in (0, 1))

    # credentials in the tracking URI (a server behind basic auth): used, never shown or stored; in the
    # environment (a single run), and as an override of a sweep (which Hydra would echo in job names and logs)
    secret_url = url.replace("http://", "http://ann:s3cret@")
    single = run_airush(["task=music", *SMALL["music"], "model=pop"], tmp_path, secret_url, timeout=600)
    sweep_args = ["-m", "task=music", *SMALL["music"], "model=itemknn", f"mlflow.tracking_uri={secret_url}"]
    sweep = run_airush(sweep_args, tmp_path, None, timeout=600)
    for result in (single, sweep):
        assert result.returncode == 0, result.stderr[-3000:]
        assert "s3cret" not in result.stdout + result.stderr
        assert url in result.stdout  # the config summary names the server, without the credentials
    earlier = {r.info.run_id for r in runs}
    new_runs = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_id not in earlier]
    assert len(new_runs) == 3  # the single run, the sweep's parent and its job
    assert "s3cret" not in json.dumps([[r.info.run_name, r.data.params, r.data.tags] for r in new_runs])
    stored = [p for p in (tmp_path / "server" / "artifacts").rglob("*") if p.is_file()]
    local = [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]
    assert stored and not [p for p in stored + local if b"s3cret" in p.read_bytes()]


@pytest.fixture
def auth_server(tmp_path: Path):
    """The script's server with MLflow's basic-auth app (`AUTH=basic-auth`): its users in a sqlite file of
    their own, the admin created on the first start from MLFLOW_AUTH_ADMIN_PASSWORD. (server, admin password)"""
    users = tmp_path / "auth"
    users.mkdir()
    config = users / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{users / 'users.db'}\n"
        "admin_username = admin\n"
    )
    admin_password = secrets.token_urlsafe(16)
    settings = {
        "AUTH": "basic-auth",
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
    }
    with running_server(tmp_path, settings) as server:
        yield server, admin_password


@pytest.mark.slow
def test_runs_log_to_a_server_behind_mlflow_authentication(auth_server, tmp_path, monkeypatch):
    from mlflow.server import get_app_client
    from mlflow.tracking import MlflowClient

    from airush.tracking.model_integrity import load_run_model

    server, admin_password = auth_server
    url = server.url
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(urllib.error.HTTPError) as refused:  # no user, no answer
        urllib.request.urlopen(url + "/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
    assert refused.value.code == 401
    music = ["task=music", *SMALL["music"], "model=pop"]
    anonymous = run_airush(music, tmp_path, url, timeout=600)
    assert anonymous.returncode == 2 and len(anonymous.stderr.strip().splitlines()) == 1
    assert (
        "failed with error code 401" in anonymous.stderr and "You are not authenticated" in anonymous.stderr
    )

    # the admin adds a teammate, who logs runs with the credentials in the URI, then in MLflow's variables
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin_password)
    password = secrets.token_urlsafe(16)
    get_app_client("basic-auth", tracking_uri=url).create_user(username="ann", password=password)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    in_uri = run_airush(music, tmp_path, url.replace("http://", f"http://ann:{password}@"), timeout=600)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    in_env = run_airush(music, tmp_path, url, timeout=600)
    for result in (in_uri, in_env):
        assert result.returncode == 0, result.stderr[-3000:]
        assert password not in result.stdout + result.stderr and url in result.stdout

    client = MlflowClient(url)
    runs = client.search_runs([client.get_experiment_by_name("music").experiment_id])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert password not in json.dumps([[r.info.run_name, r.data.params, r.data.tags] for r in runs])
    stored = [p for p in (tmp_path / "server" / "artifacts").rglob("*") if p.is_file()]
    local = [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]
    assert stored and local and not [p for p in stored + local if password.encode() in p.read_bytes()]

    # the model comes back through the server, checked against its run's hash, for the teammate only
    top = load_run_model(url, runs[0].info.run_id).predict(pd.DataFrame({"user": [0, 1]}), params={"k": 2})
    assert top.groupby("user").size().tolist() == [2, 2]


@pytest.mark.slow
def test_airush_ui_serves_the_store_of_the_directory_it_runs_in(tmp_path):
    """`airush ui` (and `make ui`) open the store `airush` recorded to from here, whatever the repo's own."""
    assert run_airush(["task=music", "model=pop", *SMALL["music"]], tmp_path).returncode == 0
    assert (tmp_path / "outputs" / "mlflow.db").is_file()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=music"
    command = [str(Path(sys.executable).parent / "airush"), "ui", "--port", str(port)]
    env |= {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with serving_process(command, url, tmp_path / "ui.log", cwd=tmp_path, env=env):
        body = urllib.request.urlopen(url, timeout=10).read()
        experiment_id = json.loads(body)["experiment"]["experiment_id"]
        landing = f"http://127.0.0.1:{port}/airush"
        page = urllib.request.urlopen(f"{landing}?experiment={experiment_id}", timeout=10).read().decode()
        smuggled = urllib.request.urlopen(f"{landing}?experiment=1%22%3Balert(1)", timeout=10).read().decode()
        ui = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
    assert json.loads(body)["experiment"]["name"] == "music"
    # the landing page sets MLflow's workflow switch to Machine learning, then opens the runs table
    assert 'localStorage.setItem("mlflow.workflowType_v1", JSON.stringify("machine_learning"))' in page
    assert f'location.replace("./#/experiments/{experiment_id}/runs?viewStateShareKey=airush' in page
    assert (
        "alert" not in smuggled
        and 'location.replace("./#/experiments?workflowType=machine_learning")' in smuggled
    )
    assert "<title>MLflow</title>" in ui  # MLflow's own UI is still served at the root


def test_airush_ui_refuses_a_store_that_is_not_there(tmp_path):
    result = run_airush(["ui"], tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"no MLflow store at {tmp_path / 'outputs' / 'mlflow.db'}" in result.stderr
    assert not (tmp_path / "outputs").exists()
