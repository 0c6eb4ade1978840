"""The installed `airush` as a subprocess: both tasks, a -m sweep, mistakes, configs found from anywhere."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import mlflow
import pytest

from test_mlflow_models import model_files

from conftest import REPO, SMALL, run_airush

MODEL_CONFS = list((REPO / "conf" / "model").glob("*.yaml"))  # every model config the CLI offers


@pytest.mark.slow
@pytest.mark.parametrize("task", ["abuse", "music"])
def test_cli_runs_each_task_prints_results_and_logs_what_it_printed(task, tmp_path, tracking_uri):
    """One run per task, two facts of it: the terminal shows the results, and the run's `airush.log` artifact
    holds its config, each stage with its count and time, and every metric at full precision, whatever the
    task's libraries log themselves."""
    result = run_airush([f"task={task}", *SMALL[task]], cwd=tmp_path, tracking_uri=tracking_uri)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MLflow run:" in result.stdout
    assert "mlflow ui --backend-store-uri" in result.stdout
    expected = {"abuse": ["roc_auc", "pr_auc", "f1"], "music": ["ndcg", "recall", "@10"]}[task]
    assert all(word in result.stdout for word in expected)
    # Hydra's run dir lands under outputs/ of the directory airush was started from
    assert list((tmp_path / "outputs" / "runs").glob("*/*/.hydra/config.yaml"))

    client = mlflow.MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(task).experiment_id])
    log = client.download_artifacts(run.info.run_id, "airush.log", str(tmp_path))
    text = Path(log).read_text()
    assert f"task: {task}" in text and f"run dir: {run.data.tags['airush.run_dir']}" in text
    assert " in " in text and " s\n" in text  # stages: `<stage>: n/total in 0.12 s`
    metric = run.data.tags["airush.primary_metric"]
    assert f"metric {metric} = {run.data.metrics[metric]!r}" in text


@pytest.mark.slow
def test_default_store_is_sqlite_under_outputs(tmp_path):
    result = run_airush([*SMALL["abuse"]], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    db = tmp_path / "outputs" / "mlflow.db"
    assert db.exists()
    assert not (tmp_path / "mlruns").exists()
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    (found,) = client.search_runs([client.get_experiment_by_name("abuse").experiment_id])
    assert found.info.artifact_uri.startswith((tmp_path / "outputs").as_uri())


@pytest.mark.slow
def test_multirun_makes_one_parent_with_a_child_per_job(tmp_path, tracking_uri):
    result = run_airush(["-m", "lr=1e-3,1e-4", *SMALL["abuse"]], cwd=tmp_path, tracking_uri=tracking_uri)
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("abuse").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["hydra.overrides"].startswith("lr=1e-3,1e-4 ")
    assert parent.data.tags["best.run_id"] in {c.info.run_id for c in children}
    # the terminal ends on the sweep, not on the last job's table
    tail = result.stdout.strip().splitlines()[-3:]
    assert tail[0] == f"airush: sweep {parent.info.run_id}: 2 jobs (2 finished)"
    assert tail[1].startswith(f"airush: best job: run {parent.data.tags['best.run_id']} (lr=")
    assert "valid_roc_auc" in tail[1] and "(chosen on valid)" in tail[1]
    # the run's page in the UI's "Model training" view (MLflow 3.17 opens on GenAI otherwise)
    assert tail[2].endswith(f"/runs/{parent.data.tags['best.run_id']}?workflowType=machine_learning")
    assert sorted(float(c.data.params["model.learning_rate"]) for c in children) == [0.0001, 0.001]
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        assert "roc_auc" in child.data.metrics
        assert child.data.tags["git.commit"]
        # params are what runs are compared by: the shorthand's value is the model's, where runs went is a tag
        assert not {"lr", "resume"} & set(child.data.params)
        assert not any(k.startswith(("paths.", "mlflow.", "trainer.")) for k in child.data.params)
        assert child.data.tags["airush.run_dir"].startswith(str(tmp_path))
        hydra_files = {a.path for a in client.list_artifacts(child.info.run_id, "hydra")}
        assert {"hydra/config.yaml", "hydra/hydra.yaml", "hydra/overrides.yaml"} <= hydra_files
        logged = model_files(client, child.info.run_id)
        assert {"model/MLmodel", "model/data"} <= logged  # our pyfunc; the lightgbm flavor reads model.txt
        ours = model_files(client, child.info.run_id, "model/data/model")
        assert {"model/data/model/meta.json", "model/data/model/model.txt"} <= ours
    history = client.get_metric_history(children[0].info.run_id, "valid_binary_logloss")
    assert len(history) > 5, "per-iteration curve missing"


@pytest.mark.slow
def test_same_command_twice_gives_identical_metrics(tmp_path, tracking_uri):
    args = ["task=music", *SMALL["music"]]
    first = run_airush(args, cwd=tmp_path, tracking_uri=tracking_uri)
    second = run_airush(args, cwd=tmp_path, tracking_uri=tracking_uri)
    assert first.returncode == second.returncode == 0
    client = mlflow.MlflowClient(tracking_uri)
    a, b = client.search_runs([client.get_experiment_by_name("music").experiment_id])
    assert a.data.metrics == b.data.metrics
    assert a.data.tags["data.fingerprint"] == b.data.tags["data.fingerprint"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["task=music", "model=lgbm"],
            "model 'lgbm' is for task abuse, not music; music model choices: "
            + ", ".join(sorted(p.stem for p in MODEL_CONFS if "airush.music." in p.read_text())),
        ),
        (
            ["model=nope"],
            "unknown model 'nope'; choose from: " + ", ".join(sorted(p.stem for p in MODEL_CONFS)),
        ),
        (["task=nope"], "unknown task 'nope'; choose from: abuse, music"),
        (["features=binary"], "features 'binary' is for task music, not abuse"),
        (["-m", "task=music", "model=pop,lgbm"], "model 'lgbm' is for task abuse, not music"),
        (["modle=als"], "Could not override 'modle'"),
        (["leaderbord"], "unknown command 'leaderbord'; did you mean 'airush leaderboard'?"),
        (["reproduse", "abc"], "did you mean 'airush reproduce'?"),
        (["train"], "unknown command 'train' (commands: leaderboard,"),
        (["model.factorz=3"], "Could not override 'model.factorz'"),
        pytest.param(["task=music", "lr=0.1"], "model 'als' has no learning rate", marks=pytest.mark.slow),
        pytest.param(["gpus=2"], "runs on CPU only", marks=pytest.mark.slow),
        pytest.param(["gpus=-1"], "gpus must be a whole number", marks=pytest.mark.slow),
        (
            ["-m", "task=music", "model=pop,als", "--cfg", "job"],
            "--multirun and --cfg cannot go together",
        ),
        (["--multirun", "-cjob", "task=music"], "--multirun and --cfg cannot go together"),
        pytest.param(
            ["-m", "task=music", "model=pop", "hydra/launcher=ray"],
            "ray needs the optional extra: pip install -e '.[ray]'",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("ray") is not None,
                reason="the ray extra is installed here",
            ),
        ),
    ],
)
def test_mistakes_are_one_line_and_exit_2(args, message, tmp_path, tracking_uri):
    result = run_airush(args, cwd=tmp_path, tracking_uri=tracking_uri)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.slow
def test_file_store_uri_is_refused_in_one_line(tmp_path):
    result = run_airush([*SMALL["abuse"]], cwd=tmp_path, tracking_uri=str(tmp_path / "mlruns"))
    assert result.returncode == 2
    assert "file store" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_help_and_cfg_job_work_from_any_directory(tmp_path):
    help_out = run_airush(["--help"], cwd=tmp_path)
    assert help_out.returncode == 0 and "task: abuse*, music" in help_out.stdout
    cfg_out = run_airush(["--cfg", "job", "task=music"], cwd=tmp_path)
    assert cfg_out.returncode == 0
    assert "ALSRecommender" in cfg_out.stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_concurrent_runs_get_their_own_dirs_and_runs(tmp_path, new_tracking_uri):
    import subprocess

    from conftest import AIRUSH

    env = {k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_TRACKING_URI"] = new_tracking_uri
    jobs = [  # the first three also race to create the sqlite store
        subprocess.Popen([AIRUSH, "task=music", "model=pop", f"seed={seed}", *SMALL["music"]], cwd=tmp_path, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for seed in (1, 2, 3)
    ]  # fmt: skip
    assert [job.wait(timeout=300) for job in jobs] == [0, 0, 0], [job.stderr.read() for job in jobs]
    run_dirs = list((tmp_path / "outputs" / "runs").glob("*/*"))
    assert len(run_dirs) == 3
    client = mlflow.MlflowClient(new_tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("music").experiment_id])
    assert sorted(r.data.params["seed"] for r in runs) == ["1", "2", "3"]


def test_help_lists_the_models_the_task_check_accepts(tmp_path):
    """The help page is written from the yaml files; the refusal of a misfit model is the independent list."""
    help_out = run_airush(["-h"], cwd=tmp_path).stdout
    line = " ".join(help_out.split("\nmodel: ", 1)[1].split("\ndata: ", 1)[0].split())
    listed = dict(part.replace("*", "").split(" -> ", 1) for part in line.split("; "))
    listed = {task: models.split(", ") for task, models in listed.items()}
    for task, other in (("music", "lgbm"), ("abuse", "als")):
        refused = run_airush([f"task={task}", f"model={other}"], cwd=tmp_path)
        assert refused.returncode == 2
        valid = refused.stderr.strip().rsplit(f"{task} model choices: ", 1)[1].split(", ")
        assert sorted(listed[task]) == sorted(valid)
    assert "als*" in line and "lgbm*" in line  # each task's default model is marked


def test_help_names_the_hydra_plugins_hydra_offers():
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from airush.config.help import HYDRA_CHOICES

    with initialize_config_module("airush.conf", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        for group, options in HYDRA_CHOICES.items():
            assert set(options) <= set(loader.get_group_options(group)), group


def test_every_subcommand_has_a_line_in_help():
    from airush.cli import SUBCOMMANDS
    from airush.config.help import SUBCOMMANDS_HELP

    assert set(SUBCOMMANDS) == set(SUBCOMMANDS_HELP)
