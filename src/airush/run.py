"""`run(cfg) -> metrics`: one tracked run of a task; the whole of what `airush` does for one job."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

import airush
from airush import console, tracking
from airush.choices import TASK_BOUND_GROUPS, check_fits_task, option_config, options_for_task, target_task
from airush.errors import ConfigError
from airush.mlflow_models import save_mlflow_model
from airush.tasks import load_task


def run(cfg: DictConfig) -> dict[str, float]:
    """Prepare data, split, fit, evaluate and record it all in MLflow; returns the test metrics."""
    tracking.last_run_id = (
        None  # a sweep worker runs many jobs: a job failing early must not name the last one's
    )
    cfg = resolve_shorthands(cfg)
    job = job_context()
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    task = load_task(cfg.task.name)
    model_cls = _import(cfg.model._target_)

    from airush.devices import device_plan

    device_plan(cfg, choice_name(cfg, "model"), model_cls)  # impossible gpus / trainer requests: one line
    seed_everything(cfg.seed)
    uri = str(cfg.mlflow.tracking_uri)
    console.print_config_summary(config_summary(cfg, job["overrides"], run_dir, uri))
    config_id, code = config_hash(cfg), tracking.code_fingerprint()
    prepared = None  # data a resume check loaded already
    if job["sweep_dir"] is not None and cfg.get("resume", True):
        reused, prepared = reuse_finished_run(cfg, task, uri, config_id, code, job)
        if reused is not None:
            return reused

    commit, dirty = tracking.git_state(Path(airush.__file__).parent)
    tags = {
        "airush.task": cfg.task.name,
        "airush.model": choice_name(cfg, "model"),
        "airush.data": choice_name(cfg, "data"),
        "airush.primary_metric": cfg.task.primary_metric,
        "airush.version": airush.__version__,
        "seed": str(cfg.seed),
        "git.commit": commit,
        "git.dirty": dirty,
        "mlflow.source.git.commit": commit,
        "mlflow.source.name": "airush",
        "hydra.overrides": tracking.redact_text(" ".join(job["overrides"])),
        "airush.config_hash": config_id,
        "airush.code": code,
        # who runs it: a RUNNING run whose process is gone (SIGKILL, power loss) is recognised as dead
        "airush.host": socket.gethostname(),
        "airush.pid": str(os.getpid()),
    }
    run_name = " ".join([f"{cfg.task.name}-{choice_name(cfg, 'model')}", *job["overrides"]])
    run_name = tracking.redact_text(str(cfg.mlflow.run_name or run_name))[:250]
    with tracking.tracked_run(
        uri,
        str(cfg.mlflow.experiment),
        cfg.mlflow.artifact_location,
        run_name,
        tags,
        sweep_dir=job["sweep_dir"],
        log_dir=run_dir,
    ) as tracked:
        tracked.log_params(run_params(cfg))
        log_config(tracked, cfg, run_dir)  # first: a run that fails later can still be reproduced
        with console.Stages() as stages:
            if prepared is None:
                prepared = task.prepare(cfg, stages)
            tracked.set_tags({"data.fingerprint": prepared.fingerprint})
            check_reproduced_data(cfg, prepared.fingerprint, tracked)
            tracked.log_params({f"dataset.{k}": str(v) for k, v in prepared.stats.items()})
            splits = task.split(prepared, cfg)
            model = task.model_for(cfg, model_cls(**model_kwargs(cfg)))
            task.fit(model, splits, cfg, stages)
            metrics = task.evaluate(model, splits, cfg, stages, run_dir / "evaluation")
        model.save(run_dir / "model")
        # what `mlflow.pyfunc.load_model(f"runs:/{id}/model")` serves, with our own files inside
        mlflow_model = save_mlflow_model(cfg, model, splits, run_dir / "model", run_dir / "mlflow_model")
        tracked.log_curves(getattr(model, "history_", {}))
        tracked.log_metrics(metrics)
        tracked.log_artifacts(mlflow_model, "model")
        tracked.log_artifacts(run_dir / "evaluation", "evaluation")

    console.print_results(
        f"{cfg.task.name} · {choice_name(cfg, 'model')} · test",
        metrics,
        [
            ("MLflow run", f"{tracked.run_id} (experiment '{cfg.mlflow.experiment}')"),
            ("run dir", str(run_dir)),
            ("MLflow UI", tracking.ui_command(uri)),
        ],
    )
    return metrics


# Keys that say where a run goes, not what it computes: left out of the config hash.
NOT_HASHED = ("paths", "mlflow", "resume", "hydra", "reproduce_of")


def config_hash(cfg: DictConfig) -> str:
    """What the run computes, as 16 hex digits: equal hashes = identical resolved configs (outputs aside)."""
    import hashlib
    import json

    tree = OmegaConf.to_container(cfg, resolve=True)
    tree = {k: v for k, v in tree.items() if k not in NOT_HASHED}
    return hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()[:16]


def log_config(tracked, cfg: DictConfig, run_dir: Path) -> None:
    """The composed `.hydra/` files and the resolved config, as `hydra/…` artifacts; credentials in any URI
    are masked in what is logged (a shared server's users read these)."""
    resolved = tracking.redact_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run_dir / "config_resolved.yaml").write_text(resolved)
    for path in sorted((run_dir / ".hydra").glob("*.yaml")):
        tracked.log_text(tracking.redact_text(path.read_text()), f"hydra/{path.name}")
    tracked.log_text(resolved, "hydra/config_resolved.yaml")


def reuse_finished_run(
    cfg: DictConfig, task, uri: str, config_id: str, code: str, job: dict[str, Any]
) -> tuple[dict[str, float] | None, Any]:
    """Resume: in a sweep, a job whose identical config already FINISHED in this experiment, with the same
    code (airush source + library versions) and the same data (content fingerprint), is not trained again;
    its run's metrics stand in. FAILED and KILLED runs do not count; RUNNING ones whose process died end
    KILLED. `resume=false` opts out. Returns (metrics or None, the data prepared for the check or None)."""
    from airush.sweeps import record_job, sweep_parent_run

    client, experiment_id = tracking.open_experiment(
        uri, str(cfg.mlflow.experiment), cfg.mlflow.artifact_location
    )
    for dead in tracking.close_dead_runs_with_config(client, experiment_id, config_id):
        console.warn(f"run {dead} of this config was left RUNNING by a process that died: marked KILLED")
    finished = tracking.finished_run_with_config(client, experiment_id, config_id, code)
    if finished is None:
        return None, None
    run_id = finished.info.run_id
    with console.Stages() as stages:
        prepared = task.prepare(cfg, stages)
    if finished.data.tags.get("data.fingerprint") != prepared.fingerprint:
        console.warn(f"run {run_id} has this config but other data: training again")
        return None, prepared
    sweep_parent_run(client, experiment_id, job["sweep_dir"])  # the sweep's record lists reused jobs too
    record_job(job["sweep_dir"], job["num"], job["overrides"], "REUSED", run_id=run_id)
    console.print_results(
        f"{cfg.task.name} · {choice_name(cfg, 'model')} · reused, resume=false retrains",
        dict(finished.data.metrics),
        [("MLflow run", f"{run_id} (identical config, code and data, finished earlier)")],
    )
    return dict(finished.data.metrics), prepared


def check_reproduced_data(cfg: DictConfig, fingerprint: str, tracked) -> None:
    """`airush reproduce`: tag the run it repeats and warn when the data is not the data it saw."""
    original = cfg.get("reproduce_of")
    if not original:
        return
    recorded = original.get("data_fingerprint")
    same = "unknown" if recorded is None else str(recorded == fingerprint).lower()
    tracked.set_tags({"airush.reproduces": original.run_id, "airush.reproduce.same_data": same})
    if same == "false":
        console.warn(
            f"data fingerprint {fingerprint[:12]} differs from run {original.run_id}'s "
            f"{str(original.data_fingerprint)[:12]}: the data changed, metrics may differ"
        )


def sweep_objective(cfg: DictConfig, metrics: dict[str, float]) -> float | None:
    """The value a sweeper (Optuna) optimises: what sweeps choose the best child by (the primary metric on
    valid; tuning never looks at test)."""
    from airush.sweeps import selection_value

    return selection_value(metrics, cfg.task.primary_metric)


def resolve_shorthands(cfg: DictConfig) -> DictConfig:
    """Check the model/data/features fit the task, nothing mandatory is left unset, and apply `lr`."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{', '.join(missing)} must be set, e.g. `airush ... {missing[0]}=...`")
    cfg = cfg.copy()
    for group in TASK_BOUND_GROUPS:
        check_fits_task(group, choice_name(cfg, group), cfg.task.name, target_task(cfg[group]._target_))
    if cfg.lr is not None:
        if "learning_rate" not in cfg.model:
            with_lr = [
                m
                for m in options_for_task("model", cfg.task.name)
                if "learning_rate" in option_config("model", m)
            ]
            raise ConfigError(
                f"lr={cfg.lr} but model '{choice_name(cfg, 'model')}' has no learning rate; "
                f"{cfg.task.name} models with one: {', '.join(with_lr) or 'none'}"
            )
        with open_dict(cfg):
            cfg.model.learning_rate = float(cfg.lr)
    return cfg


def choice_name(cfg: DictConfig, group: str) -> str:
    """The config chosen for a group (`model=als` -> "als"); outside a Hydra job, the module of its code."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice:
            return str(choice)
    return str(cfg[group]._target_).rsplit(".", 2)[-2]


def model_kwargs(cfg: DictConfig) -> dict[str, Any]:
    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    kwargs.pop("_target_")
    return {**kwargs, "seed": int(cfg.seed)}


def run_params(cfg: DictConfig) -> dict[str, str]:
    params = tracking.flatten(OmegaConf.to_container(cfg, resolve=True))
    params["mlflow.tracking_uri"] = tracking.redact_uri(params["mlflow.tracking_uri"])
    return params


def job_context() -> dict[str, Any]:
    """Command-line overrides and, in a -m sweep, the sweep dir (where the parent run id lives)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {"overrides": [], "sweep_dir": None, "num": 0}
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    if hydra_cfg.mode != RunMode.MULTIRUN or not hydra_cfg.runtime.output_dir:
        return {"overrides": overrides, "sweep_dir": None, "num": 0}
    sweep_dir = Path(hydra_cfg.runtime.output_dir).parent
    return {"overrides": overrides, "sweep_dir": sweep_dir, "num": int(hydra_cfg.job.num)}


def config_summary(cfg: DictConfig, overrides: list[str], run_dir: Path, uri: str) -> list[tuple[str, Any]]:
    return [
        ("task", cfg.task.name),
        ("model", choice_name(cfg, "model")),
        ("data", choice_name(cfg, "data")),
        ("features", choice_name(cfg, "features")),
        (
            "seed / gpus / lr",
            f"{cfg.seed} / {cfg.gpus} / {cfg.lr if cfg.lr is not None else 'model default'}",
        ),
        ("overrides", " ".join(overrides) or "none"),
        ("tracking", f"{tracking.redact_uri(uri)} · experiment '{cfg.mlflow.experiment}'"),
        ("run dir", run_dir),
    ]


def seed_everything(seed: int) -> None:
    """Seed global RNGs for any library that reads them; our own code passes explicit generators."""
    import sys

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def _import(path: str):
    import importlib

    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)
