"""The shell scripts in scripts/ that hold sweeps: valid bash, and the music sweep runs end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SMALL

SCRIPTS = sorted((REPO / "scripts").glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_script_is_valid_bash_and_executable(script: Path):
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_tune_without_a_space_lists_the_spaces():
    result = subprocess.run([str(REPO / "scripts" / "tune.sh")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "music_als" in result.stderr and "abuse_lgbm" in result.stderr


def test_mlflow_server_help_and_unknown_arguments():
    script = str(REPO / "scripts" / "mlflow_server.sh")
    for flag in ("--help", "-h"):
        result = subprocess.run([script, flag], capture_output=True, text=True)
        assert result.returncode == 0 and result.stderr == ""
        assert "MLFLOW_BACKEND_STORE_URI" in result.stdout and "WORKERS" in result.stdout
    result = subprocess.run([script, "--backend-store-uri", "x"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "mlflow_server.sh: unknown argument '--backend-store-uri': settings are environment variables "
        "(see --help)"
    ]


def test_mlflow_server_passes_the_backend_and_artifacts_in_the_environment_not_argv(tmp_path):
    """Whatever `ps` shows (argv, and the script's messages) holds no password; the server still gets the URIs."""
    fake = tmp_path / "mlflow"
    fake.write_text(
        '#!/usr/bin/env bash\nprintf "%s\\n" "$*" "$MLFLOW_BACKEND_STORE_URI" "$MLFLOW_ARTIFACTS_DESTINATION"\n'
    )
    fake.chmod(0o755)
    backend = "postgresql://bob:s3cret@db.lan:5432/mlflow?sslmode=require&password=s3cret"
    artifacts = "sftp://bob:s3cret@files.lan/mlflow"
    # the defaults, whatever this shell has set
    settings = ("HOST", "PORT", "WORKERS", "ALLOWED_HOSTS", "AUTH")
    env = {k: v for k, v in os.environ.items() if k not in settings and not k.startswith("MLFLOW_")}
    env |= {"MLFLOW": str(fake), "BACKEND": backend, "ARTIFACTS": artifacts}
    result = subprocess.run(
        [str(REPO / "scripts" / "mlflow_server.sh")], env=env, capture_output=True, text=True, check=True
    )
    argv, got_backend, got_artifacts = result.stdout.splitlines()
    assert argv == "server --serve-artifacts --host 127.0.0.1 --port 5000 --workers 2"
    assert (got_backend, got_artifacts) == (backend, artifacts)
    assert "s3cret" not in result.stderr and "bob" not in result.stderr
    assert "backend postgresql://db.lan:5432/mlflow, artifacts sftp://files.lan/mlflow" in result.stderr


@pytest.mark.slow
def test_music_sweep_script_runs_every_model_and_seed(tmp_path, tracking_uri):
    from mlflow.tracking import MlflowClient

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"MLFLOW_TRACKING_URI": tracking_uri, "AIRUSH": str(Path(sys.executable).parent / "airush")}
    result = subprocess.run(
        [str(REPO / "scripts" / "sweep_music.sh"), *SMALL["music"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("music").experiment_id], max_results=100)
    children = [r for r in runs if r.data.tags.get("airush.sweep") != "parent"]
    assert len(runs) - len(children) == 1
    pairs = sorted((r.data.tags["airush.model"], int(r.data.params["seed"])) for r in children)
    models = ["als", "bpr", "content", "ease", "itemknn", "pop"]
    assert pairs == [(m, s) for m in models for s in (1, 2, 3)]


@pytest.mark.slow
def test_the_predict_benchmark_runs_on_a_small_file(tmp_path):
    """scripts/bench_predict.py at a size a test affords: trains, writes, scores in a child, prints its row."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_predict.py"), "--events", "200000",
         "--chunk-events", "50000", "--folder", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    header, _, row = result.stdout.strip().splitlines()[-3:]
    assert header.startswith("| events | format | wall time |")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[0].replace(",", "")) >= 200_000 and int(cells[7].replace(",", "")) > 0
