"""`hydra/launcher=slurm` (conf/hydra/launcher/slurm.yaml over submitit's `submitit_slurm`): the settings a
team edits become the sbatch script's #SBATCH lines, and that script, run by a stand-in for SLURM, puts every
job of the sweep in the store under one parent. (`hydra/launcher=submitit_local`, submitit's local executor,
has its own test in test_sweeps.py.)"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import AIRUSH, SMALL

MUSIC = ["task=music", *SMALL["music"]]
TEAM = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=gpu",
    "hydra.launcher.account=recsys",
    "hydra.launcher.timeout_min=30",
    "hydra.launcher.cpus_per_task=2",
    "hydra.launcher.gpus_per_node=1",
    "hydra.launcher.mem_gb=8",
    "hydra.launcher.array_parallelism=4",
]
EXPECTED = [
    "#SBATCH --partition=gpu",
    "#SBATCH --account=recsys",
    "#SBATCH --time=30",
    "#SBATCH --cpus-per-task=2",
    "#SBATCH --gpus-per-node=1",
    "#SBATCH --mem=8GB",
    "#SBATCH --ntasks-per-node=1",
]

# A stand-in for SLURM on this machine: `sbatch` keeps the script it was given and runs the array's tasks
# in the background (after submitit has written their inputs), as SLURM would, with SLURM's variables set;
# `srun` runs its command with the --output/--error files; `sacct` reports what has finished.
SBATCH = r"""
import os, re, subprocess, sys, time
from pathlib import Path
state = Path(os.environ["FAKE_SLURM_DIR"])
script = Path(sys.argv[-1])
job_id = str(4242 + len(list(state.glob("job_*.sh"))))
text = script.read_text()
script = state / f"job_{job_id}.sh"  # submitit moves its file once sbatch has returned
script.write_text(text)
array = re.search(r"^#SBATCH --array=0-(\d+)", text, re.M)
tasks = range(int(array.group(1)) + 1) if array else [None]
for task in tasks:
    (state / f"{job_id}_{task}.state").write_text("PENDING")
print(f"Submitted batch job {job_id}", flush=True)
if os.fork() == 0:  # the "cluster": runs the tasks once sbatch has returned
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # let go of sbatch's pipes, or submitit waits for them to close
        os.dup2(null, fd)
    folder = re.search(r"^#SBATCH --output=(.*)/[^/]*$", text, re.M).group(1)
    running = {}
    for task in tasks:  # all at once: the array's parallelism is above its size here
        full = f"{job_id}_{task}" if task is not None else job_id
        pickle = Path(folder.replace("%A_%a", full).replace("%j", full)) / f"{full}_submitted.pkl"
        deadline = time.time() + 60
        while not pickle.exists() and time.time() < deadline:
            time.sleep(0.2)
        env = dict(os.environ, SLURM_JOB_ID=full, SLURM_NTASKS="1", SLURM_JOB_NUM_NODES="1",
                   SLURM_NODEID="0", SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_JOB_NODELIST="localhost")
        if task is not None:
            env.update(SLURM_ARRAY_JOB_ID=job_id, SLURM_ARRAY_TASK_ID=str(task))
        (state / f"{full}.state").write_text("RUNNING")
        log = open(state / f"{full}.log", "w")
        running[full] = subprocess.Popen(["bash", str(script)], env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
    for full, proc in running.items():
        (state / f"{full}.state").write_text("COMPLETED" if proc.wait() == 0 else "FAILED")
    os._exit(0)
"""
SRUN = r"""
import os, subprocess, sys
args, files = sys.argv[1:], {}
while args and args[0].startswith("--"):
    flag = args.pop(0)
    if flag in ("--output", "--error"):
        files[flag] = args.pop(0)
def path(pattern):
    job = os.environ.get("SLURM_ARRAY_JOB_ID", os.environ["SLURM_JOB_ID"])
    return (pattern.replace("%A", job).replace("%a", os.environ.get("SLURM_ARRAY_TASK_ID", ""))
            .replace("%j", os.environ["SLURM_JOB_ID"]).replace("%t", "0"))
out = open(path(files["--output"]), "a")
err = open(path(files["--error"]), "a") if "--error" in files else out
sys.exit(subprocess.call(args, stdout=out, stderr=err))
"""
SACCT = r"""
import os, sys
from pathlib import Path
state = Path(os.environ["FAKE_SLURM_DIR"])
print("JobID|State|NodeList")
for path in sorted(state.glob("*.state")):
    name = path.stem.removesuffix("_None")
    print(f"{name}|{path.read_text()}|localhost")
"""


def _fake_slurm(folder: Path) -> Path:
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    for name, code in (("sbatch", SBATCH), ("srun", SRUN), ("sacct", SACCT), ("scancel", "")):
        tool = bin_dir / name
        tool.write_text(f"#!{sys.executable}\n{code}")
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def _runs(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=100)
    parents = [r for r in runs if r.data.tags.get("airush.sweep") == "parent"]
    return parents, [r for r in runs if r.data.tags.get("airush.sweep") != "parent"]


def test_the_team_settings_are_the_sbatch_lines(tmp_path, monkeypatch):
    """What hydra-submitit-launcher hands submitit for the README's overrides, written out by submitit's own
    sbatch writer: no SLURM needed (a do-nothing `srun` on PATH satisfies submitit's check)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    import airush.cli  # noqa: F401  (registers the resolvers airush's configs use)

    bin_dir = _fake_slurm(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("airush.conf", version_base="1.3"):
            cfg = compose("config", [*MUSIC, *TEAM], return_hydra_config=True)
        HydraConfig().set_config(cfg)
        launcher = instantiate(cfg.hydra.launcher)
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
    assert type(launcher).__name__ == "SlurmLauncher"

    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    # the launcher's own split of its settings (hydra_submitit_launcher/submitit_launcher.py, launch())
    params = dict(launcher.params)
    init = {"folder": str(tmp_path / "%j"), "slurm_max_num_timeout": params.pop("max_num_timeout")}
    params.pop("submitit_folder")
    generic = set(OmegaConf.structured(BaseQueueConf).keys())
    executor = submitit.AutoExecutor(cluster="slurm", **init)
    executor.update_parameters(**{k if k in generic else f"slurm_{k}": v for k, v in params.items()})
    script = executor._executor._make_submission_file_text("python -u -m submitit.core._submit", "x")
    for line in EXPECTED:
        assert line in script.splitlines(), (line, script)


@pytest.mark.slow
def test_a_sweep_submitted_with_sbatch_lands_under_one_parent(tmp_path, tracking_uri):
    state = tmp_path / "slurm"
    bin_dir = _fake_slurm(state)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        FAKE_SLURM_DIR=str(state),
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        COLUMNS="200",
    )
    result = subprocess.run(
        [AIRUSH, "-m", *MUSIC, "model=pop,ease", *TEAM],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    (script,) = state.glob("job_*.sh")  # one sbatch call: the sweep is one job array
    lines = script.read_text().splitlines()
    for line in [*EXPECTED, "#SBATCH --array=0-1%2"]:
        assert line in lines, (line, lines)
    assert sorted(p.read_text() for p in state.glob("*.state")) == ["COMPLETED", "COMPLETED"]

    parents, children = _runs(tracking_uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["airush.model"] for r in children) == ["ease", "pop"]
    assert all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    launcher_pid = parents[0].data.tags["airush.pid"]
    assert all(r.data.tags["airush.pid"] != launcher_pid for r in children)  # ran as the "SLURM" jobs
