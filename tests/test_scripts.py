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
