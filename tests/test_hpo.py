"""HPO: `hydra/sweeper=airush_optuna` (src/hydra_plugins/airush_optuna_sweeper) and conf/hparams_search."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from airush.errors import ConfigError

from conftest import REPO, SMALL, run_airush

SPACES = sorted(p.stem for p in (REPO / "conf" / "hparams_search").glob("*.yaml"))


def _space(params: dict, arguments: list[str] = (), current: dict | None = None):
    from hydra_plugins.airush_optuna_sweeper._space import parse_space

    return parse_space(params, list(arguments), current or {})


def test_sweep_grammar_becomes_optuna_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space = _space(
        {
            "model.factors": "tag(log, interval(16, 256))",
            "model.alpha": "tag(log, interval(0.1, 100))",
            "model.l2": "interval(1, 10)",
            "model.iterations": "range(5, 55, 5)",
            "model.step": "range(0.1, 0.5, 0.1)",
            "model.binarize": "choice(false, true)",
            "model.similarity": "cosine,bm25",  # replaced by the command line below
            "model.num_threads": 3,  # not a sweep: every trial gets it as is
        },
        ["task=music", "model.similarity=choice(cosine, 'a b')"],
        current={"model.factors": 64, "model.alpha": 2.0, "model.l2": 250.0},
    )
    dists = {k: p.distribution for k, p in space.params.items()}
    assert dists["model.factors"] == IntDistribution(16, 256, log=True)  # int in the config -> int space
    assert dists["model.alpha"] == FloatDistribution(0.1, 100.0, log=True)
    assert dists["model.l2"] == FloatDistribution(1.0, 10.0)  # whole bounds, float in the config
    assert dists["model.iterations"] == IntDistribution(5, 50, step=5)  # Hydra's range excludes its end
    assert dists["model.step"] == FloatDistribution(0.1, 0.4, step=0.1)
    assert dists["model.binarize"] == CategoricalDistribution([False, True])
    assert dists["model.similarity"] == CategoricalDistribution(["cosine", "a b"])
    assert space.fixed == ["model.num_threads=3", "task=music"]


def test_trial_values_round_trip_through_hydra_overrides():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    space = _space(
        {
            "a": "choice(cosine, 'a b', 'x,y', true, 1, 3)",
            "b": "tag(log, interval(1e-5, 1))",
            "c": "range(1,9)",
        }
    )
    parser = OverridesParser.create()
    for key, value in [
        ("a", "a b"),
        ("a", "x,y"),
        ("a", True),
        ("a", 1),
        ("a", 3),
        ("b", 1.2345e-05),
        ("c", 7),
    ]:
        (line,) = space.overrides({key: value})
        parsed = parser.parse_override(line).value()
        assert parsed == value and type(parsed) is type(value), line


def test_the_config_value_is_a_point_of_the_space_only_when_inside_it():
    space = _space(
        {
            "f": "tag(log, interval(16, 256))",
            "i": "range(5, 55, 5)",
            "x": "interval(0.3, 1.0)",
            "c": "choice(100, 250)",
        },
        current={"f": 64, "i": 15},
    )
    point = {k: space.params[k].point for k in space.params}
    assert point["f"](64) == 64 and point["f"](300) is None and point["f"](True) is None
    assert point["i"](15) == 15 and point["i"](17) is None  # off the step
    assert point["x"](0.9) == 0.9 and point["x"](0.2) is None and point["x"]("0.9") is None
    assert point["c"](250.0) == 250 and point["c"](300) is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model.alpha": "interval(a, b)"}, "mismatch type argument start: str is incompatible"),
        ({"model.alpha": "interval(5, 1)"}, "interval needs low < high"),
        ({"model.alpha": "tag(log, interval(0, 1))"}, "needs an interval above 0"),
        ({"model.alpha": "tag(lg, interval(1, 2))"}, "unknown tag 'lg'"),
        ({"model.alpha": "tag(log, choice(1, 2))"}, "needs an interval(low, high)"),
        ({"model.alpha": "choice(1, 1)"}, "lists a choice twice"),
    ],
)
def test_bad_spaces_are_config_errors(params, message):
    with pytest.raises(ConfigError) as err:
        _space(params)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("hydra.sweeper.params.model.alpha: ")


@pytest.mark.parametrize("name", SPACES)
def test_every_search_space_composes_and_starts_from_the_model_defaults(name):
    """Each shipped space picks its model and our sweeper, and contains the model's defaults, so its first
    trial (the defaults, enqueued) is the baseline the search has to beat."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from airush.config.choices import packaged_choices

    GlobalHydra.instance().clear()
    with initialize_config_module("airush.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"hparams_search={name}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    choices = packaged_choices()
    task, model, data = (cfg.hydra.runtime.choices[group] for group in ("task", "model", "data"))
    assert task in choices.options("task") and cfg.task.name == choices.option_task("task", task)
    assert model in choices.options_for_task("model", task), f"{name}: model {model} is not a {task} model"
    assert data in choices.options_for_task("data", task), f"{name}: data {data} is not {task} data"
    assert name.endswith(f"_{model}")  # <what>_<model>: the space picks its model
    # <what> is the task (data left to the command line) or the data set it pins, which fits that task
    prefix = name.removesuffix(f"_{model}")
    assert prefix in (cfg.task.name, data), f"{name}: '{prefix}' is neither its task nor its data"
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.airush_optuna_sweeper.sweeper.AirushOptunaSweeper"
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params and all(key.startswith("model.") for key in params)
    for key in params:  # a misspelt key would only fail once a trial overrides it
        parent, _, leaf = key.rpartition(".")
        assert leaf in OmegaConf.select(cfg, parent), f"{name}: searches {key}, which {model} does not have"
    current = {key: OmegaConf.select(cfg, key) for key in params}
    space = _space(params, current=current)
    outside = {k: current[k] for k, p in space.params.items() if p.point(current[k]) is None}
    assert not outside, f"{name}: defaults outside the space: {outside}"


def test_hydra_discovers_the_sweeper_without_importing_optuna():
    """From the (editable) install: Hydra scans `hydra_plugins`; `airush --help` must not pay for optuna."""
    probe = (
        "import sys\n"
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.sweeper import Sweeper\n"
        "print(sorted(c.__name__ for c in Plugins.instance().discover(Sweeper)))\n"
        "print('optuna' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["['AirushOptunaSweeper', 'BasicSweeper']", "False"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        # a space written in yaml (quoted here so Hydra hands the sweeper the text, as a yaml file would)
        (["+hydra.sweeper.params.model.alpha='interval(a,b)'"], "mismatch type argument start"),
        (["model.alpha=interval(a,b)"], "mismatch type argument start"),  # the command line: checked upfront
        (["+hydra.sweeper.params.model.alfa='interval(1,2)'"], "Could not override 'model.alfa'"),
        (["hydra.sweeper.direction=up"], "hydra.sweeper.direction=up: choose maximize or minimize"),
        (["hydra.sweeper.n_trials=lots"], "hydra.sweeper.n_trials"),
    ],
)
def test_bad_hpo_config_is_one_line_and_exit_2(args, message, tmp_path, tracking_uri):
    result = run_airush(["-m", "hparams_search=music_als", *args], cwd=tmp_path, tracking_uri=tracking_uri)
    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("airush: error: "), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "outputs" / "optuna.db").exists()  # refused before any study or trial


def _study(tmp_path: Path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'outputs' / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def _runs(tracking_uri: str, experiment: str):
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [r for r in runs if r.data.tags.get("airush.sweep") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


@pytest.mark.slow
def test_music_als_search_beats_the_defaults_and_continues_its_study(tmp_path, tracking_uri):
    import optuna
    from optuna.trial import TrialState

    # the default config's valid NDCG@10, in a store of its own
    baseline_uri = f"sqlite:///{tmp_path / 'baseline.db'}"
    base = run_airush(["task=music", *SMALL["music"]], cwd=tmp_path, tracking_uri=baseline_uri)
    assert base.returncode == 0, base.stderr[-3000:]
    client = mlflow.MlflowClient(baseline_uri)
    (baseline_run,) = client.search_runs([client.get_experiment_by_name("music").experiment_id])
    baseline = baseline_run.data.metrics["valid_ndcg_at_10"]

    uri = tracking_uri
    args = ["-m", "task=music", "hparams_search=music_als", *SMALL["music"]]
    first = run_airush([*args, "hydra.sweeper.n_trials=6"], cwd=tmp_path, tracking_uri=uri, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]

    study = _study(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    assert study.trials[0].user_attrs["airush.defaults"]  # the defaults, enqueued: same config as baseline
    assert study.trials[0].value == pytest.approx(baseline, abs=1e-12)
    assert study.best_value >= baseline
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 6

    parents, children = _runs(uri, "music")
    assert len(parents) == 1 and len(children) == 6
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert sorted(c.data.metrics["valid_ndcg_at_10"] for c in children) == sorted(
        t.value for t in study.trials
    )

    (sweep_dir,) = (tmp_path / "outputs" / "multiruns").glob("*/*")
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["best_value"] == study.best_value and results["study_name"] == study.study_name
    assert results["best_params"] == study.best_params
    summary = [line for line in first.stdout.splitlines() if line.startswith("optuna: best")]
    assert len(summary) == 1 and study.study_name in summary[0]

    # the same command again continues the same study (a fresh sweep dir and MLflow parent)
    again = run_airush([*args, "hydra.sweeper.n_trials=2"], cwd=tmp_path, tracking_uri=uri, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(study_name=study.study_name, storage=study._storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 8
    assert (
        len({tuple(sorted(t.params.items())) for t in study.trials}) == 8
    )  # no startup point proposed twice
    parents, children = _runs(uri, "music")
    assert len(parents) == 2 and len(children) == 8


@pytest.mark.slow
def test_failed_trials_are_told_fail_and_the_parallel_study_goes_on(tmp_path, tracking_uri):
    """ease refuses catalogues above model.max_items: the trials that draw max_items=10 fail, the others run.
    A plain `key=a,b` on the command line joins the space as a choice; batches of 2 run in parallel (joblib)."""
    from optuna.trial import TrialState

    result = run_airush(
        [
            "-m",
            "hparams_search=music_ease",
            "model.max_items=30000,10",
            "hydra/launcher=joblib",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=6",
            *SMALL["music"],
        ],
        cwd=tmp_path,
        tracking_uri=tracking_uri,
        timeout=900,
    )
    study = _study(tmp_path)
    states = [t.state for t in study.trials]
    assert len(states) == 6 and TrialState.RUNNING not in states
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed and all(t.params["model.max_items"] == 10 for t in failed)
    assert all(t.params["model.max_items"] == 30000 for t in study.trials if t.state == TrialState.COMPLETE)
    assert study.trials[0].state == TrialState.COMPLETE  # the defaults
    assert "optuna: best valid_ndcg_at_10" in result.stdout
    # the CLI names the failed jobs and exits 1 once the sweep has ended
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"{len(failed)} sweep job(s) failed" in result.stderr


@pytest.mark.slow
def test_a_wheel_install_exposes_the_sweeper_to_hydra(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheel_dir), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheel_dir.glob("airush-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    assert not (target / "hydra_plugins" / "__init__.py").exists()  # a namespace shared with other plugins
    probe = (
        "import airush.cli\n"
        "from hydra import compose, initialize_config_module\n"
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.sweeper import Sweeper\n"
        "(ours,) = [c for c in Plugins.instance().discover(Sweeper) if c.__name__ == 'AirushOptunaSweeper']\n"
        "import sys; print(sys.modules[ours.__module__].__file__)\n"
        "with initialize_config_module('airush.conf', version_base='1.3'):\n"
        "    cfg = compose('config', overrides=['hparams_search=abuse_lgbm'], return_hydra_config=True)\n"
        "print(cfg.hydra.sweeper._target_, cfg.hydra.sweeper.params['model.num_leaves'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    module_file, target_line = out.stdout.strip().splitlines()
    assert module_file.startswith(str(target)), module_file
    assert target_line == (
        "hydra_plugins.airush_optuna_sweeper.sweeper.AirushOptunaSweeper tag(log, interval(4, 128))"
    )
