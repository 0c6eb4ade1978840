"""Every task x model pair through `run(cfg)` with configs composed like the CLI, each tracked in MLflow."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest

from airush.config.choices import packaged_choices
from airush.runner import run
from test_mlflow_models import model_files

from conftest import SMALL

CHOICES = packaged_choices()
PAIRS = [(task, model) for task in ("abuse", "music") for model in CHOICES.options_for_task("model", task)]
SMOKE = {("abuse", "lgbm"), ("music", "als")}  # each task's default model: the fast set's one run per task


def test_every_model_belongs_to_one_task():
    for model in CHOICES.options("model"):
        assert CHOICES.option_task("model", model) in ("abuse", "music"), model
    assert {m for _, m in PAIRS} == set(CHOICES.options("model"))


@pytest.mark.parametrize(
    ("task", "model"),
    [pytest.param(*pair, marks=() if pair in SMOKE else pytest.mark.slow) for pair in PAIRS],
)
def test_task_model_pair_runs_and_is_recorded(task, model, compose_cfg, tracking_uri):
    cfg = compose_cfg([f"task={task}", f"model={model}", *SMALL[task]])
    metrics = run(cfg)

    primary = cfg.task.primary_metric
    assert 0.0 <= metrics[primary] <= 1.0
    client = mlflow.MlflowClient(tracking_uri)
    (found,) = client.search_runs([client.get_experiment_by_name(task).experiment_id])
    assert found.info.status == "FINISHED"
    assert found.data.metrics[primary] == pytest.approx(metrics[primary])
    assert found.data.params["model._target_"] == cfg.model._target_
    assert found.data.params["seed"] == "42"
    tags = found.data.tags
    for tag in ("git.commit", "git.dirty", "data.fingerprint", "seed", "airush.version", "hydra.overrides"):
        assert tag in tags, tag
    assert len(tags["data.fingerprint"]) == 64
    artifacts = model_files(client, found.info.run_id)
    assert artifacts, "model artifact missing"
    assert not any(p.endswith((".pkl", ".pickle", ".joblib")) for p in artifacts)
    evaluation = {a.path.split("/")[-1] for a in client.list_artifacts(found.info.run_id, "evaluation")}
    if task == "abuse":
        expected = {
            "roc.png",
            "pr.png",
            "score_histogram.png",
            "feature_importance.png",
            "test_predictions.parquet",
        }
    else:  # every music run draws its accuracy over K, cold items and coverage; curves where it has them
        expected = {"metrics_over_k.png", "coverage_popularity.png", "ndcg_at_10_per_user.png"}
        if any(k.startswith("cold_ndcg_at_") for k in found.data.metrics):
            expected.add("cold_vs_all.png")
        if model in ("als", "bpr"):  # implicit's per-iteration curves
            expected.add("training_curves.png")
    assert expected <= evaluation


def logged_model_files(cfg) -> Path:
    """The model's own files, downloaded from the run's logged model: the run's one copy of its model (the run
    dir keeps none)."""
    from airush.tracking.model_integrity import download_run_model

    client = mlflow.MlflowClient(cfg.mlflow.tracking_uri)
    experiment_id = client.get_experiment_by_name(cfg.task.name).experiment_id
    (found,) = client.search_runs([experiment_id], max_results=1)
    return download_run_model(client, found, Path(cfg.paths.run_dir) / "check") / "data" / "model"


@pytest.mark.slow
def test_lgbm_model_reloads_with_same_scores(compose_cfg):
    from airush.abuse import task
    from airush.abuse.models.lgbm import LightGBMDetector
    from airush.console import Stages

    cfg = compose_cfg(["task=abuse", *SMALL["abuse"]])
    run(cfg)
    with Stages() as stages:
        prepared = task.prepare(cfg, stages)
    splits = task.split(prepared, cfg)
    loaded = LightGBMDetector.load(logged_model_files(cfg))
    fresh = LightGBMDetector(**{k: v for k, v in cfg.model.items() if k != "_target_"}, seed=cfg.seed)
    fresh.fit(splits.X["train"], splits.y["train"], splits.X["valid"], splits.y["valid"])
    np.testing.assert_array_equal(
        loaded.predict_proba(splits.X["test"]), fresh.predict_proba(splits.X["test"])
    )


@pytest.mark.slow
@pytest.mark.parametrize("model", CHOICES.options_for_task("model", "music"))
def test_music_model_reloads_with_same_scores(model, compose_cfg):
    from hydra.utils import get_class

    cfg = compose_cfg(["task=music", f"model={model}", *SMALL["music"]])
    run(cfg)
    loaded = get_class(cfg.model._target_).load(logged_model_files(cfg))
    users = np.arange(10)
    top = loaded.recommend(users, 10)
    assert top.shape == (10, 10)
    assert all(len(set(row)) == 10 for row in top)


@pytest.mark.slow
def test_als_beats_popularity_on_default_synthetic_data(compose_cfg):
    als = run(compose_cfg(["task=music", "model=als"]))
    pop = run(compose_cfg(["task=music", "model=pop"]))
    assert als["ndcg_at_10"] > pop["ndcg_at_10"]
    assert als["recall_at_10"] > pop["recall_at_10"]


def test_lr_overrides_active_model_learning_rate(compose_cfg):
    from airush.runner import build

    cfg = build(compose_cfg(["lr=0.001"])).cfg
    assert cfg.model.learning_rate == 0.001
    assert build(compose_cfg([])).cfg.model.learning_rate == 0.05


def test_lr_on_model_without_learning_rate_is_a_config_error(compose_cfg):
    from airush.errors import ConfigError
    from airush.runner import build

    with pytest.raises(ConfigError, match="has no learning rate"):
        build(compose_cfg(["task=music", "lr=0.1"]))


@pytest.mark.slow
def test_same_config_gives_identical_metrics(compose_cfg):
    for task in ("abuse", "music"):
        first = run(compose_cfg([f"task={task}", *SMALL[task]]))
        second = run(compose_cfg([f"task={task}", *SMALL[task], "mlflow.run_name=again"]))
        assert first == second, task


@pytest.mark.slow
def test_seed_changes_data_fingerprint(compose_cfg, tracking_uri):
    run(compose_cfg(["task=music", "model=pop", *SMALL["music"]]))
    run(compose_cfg(["task=music", "model=pop", *SMALL["music"], "seed=7"]))
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("music").experiment_id])
    assert len({r.data.tags["data.fingerprint"] for r in runs}) == 2


@pytest.mark.slow
@pytest.mark.parametrize("features", ["keyboard", "mouse"])
def test_feature_sets_change_feature_count(features, compose_cfg, tracking_uri):
    run(compose_cfg(["task=abuse", f"features={features}", *SMALL["abuse"]]))
    run(compose_cfg(["task=abuse", "features=all", *SMALL["abuse"]]))
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("abuse").experiment_id], order_by=["attributes.start_time ASC"]
    )
    subset, full = (int(r.data.params["dataset.features"]) for r in runs)
    assert subset < full
