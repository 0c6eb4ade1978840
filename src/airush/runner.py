"""`run(cfg, job) -> metrics`: one tracked run of a task; the whole of what `airush` does for one job.

No Hydra globals inside: how the job was launched (overrides, sweep dir, the options chosen) is a
`JobContext` the caller passes, so the CLI, a notebook (`airush.compose` + `airush.run`) and
`airush reproduce` all run the same code.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

import airush
from airush import console
from airush.config.identity import config_hash
from airush.errors import ConfigError
from airush.job import JobContext, job_from_hydra_config
from airush.tracking import run_record, store
from airush.tracking.datasets import run_dataset
from airush.tracking.mlflow_model import save_mlflow_model


def run(cfg: DictConfig, job: JobContext | None = None) -> dict[str, float]:
    """Prepare data, split, fit, evaluate and record it all in MLflow; returns the test metrics.

    `cfg` as `airush.compose` returns it (its `hydra` node, if any, tells the job's facts when `job` is None)
    or as a Hydra job receives it."""
    from airush.compute.devices import device_plan

    run_record.last_run_id = None  # a sweep worker runs many jobs: a job failing early must not name the last
    cfg, job = split_job(cfg, job)
    built = build(cfg, job)
    cfg = built.cfg
    run_dir = Path(cfg.paths.run_dir)
    # impossible gpus / trainer requests: one line, before any work; the one plan every step uses
    devices = device_plan(cfg, job.choice("model", cfg), built.model_cls, (job.sweep_dir, job.num))
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    uri = str(cfg.mlflow.tracking_uri)
    if store.has_credentials(uri):
        run_dir.chmod(0o700)  # what Hydra wrote there is the user's alone
    with console.run_log_in(run_dir):
        return run_built(built, job, devices, uri)


def run_built(built: Built, job: JobContext, devices, uri: str) -> dict[str, float]:
    """`run` once the config is checked and the devices planned: everything it prints also goes to the run's
    log."""
    cfg, task, model_cls = built.cfg, built.task, built.model_cls
    run_dir = Path(cfg.paths.run_dir)
    model_name = job.choice("model", cfg)
    console.print_config_summary(config_summary(cfg, job, run_dir, uri))
    with console.Stages() as stages:  # the user's data is read, checked and split before any run exists
        prepared = task.prepare(cfg, stages)
        splits = task.split(prepared, cfg)
    config_id, code = config_hash(OmegaConf.to_container(cfg, resolve=True)), run_record.code_fingerprint()
    client, experiment_id = store.open_experiment(
        uri, str(cfg.mlflow.experiment), cfg.mlflow.artifact_location
    )
    if job.sweep_dir is not None and cfg.get("resume", True):
        reused = reuse_finished_run(cfg, job, client, experiment_id, config_id, code, prepared.fingerprint)
        if reused is not None:
            return reused

    parent_id = None
    if job.sweep_dir is not None:
        from airush.tracking.sweeps import sweep_parent_run

        parent_id = sweep_parent_run(client, experiment_id, job.sweep_dir)
    with run_record.tracked_run(
        client,
        experiment_id,
        uri,
        run_name(cfg, job),
        run_tags(cfg, job, config_id, code),
        parent_id,
        run_dir,
    ) as tracked:
        tracked.log_params(run_params(cfg, model_cls))
        tracked.set_tags(settings_tags(cfg, run_dir))
        log_config(tracked, cfg, run_dir, job)  # first: a run that fails later can still be reproduced
        # what else the task says about its data, e.g. abuse's airush.test_data
        tracked.set_tags({"data.fingerprint": prepared.fingerprint, **getattr(prepared, "tags", {})})
        tracked.log_dataset(run_dataset(job.choice("data", cfg), prepared, cfg.data, int(cfg.seed)))
        check_reproduced_data(cfg, prepared.fingerprint, tracked)
        tracked.log_params({f"dataset.{k}": str(v) for k, v in prepared.stats.items()})
        with console.Stages() as stages:
            model = task.model_for(cfg, instantiate_model(cfg, model_cls))
            task.fit(model, splits, cfg, stages, devices)
            metrics = task.evaluate(model, splits, cfg, stages, run_dir / "evaluation")
        model.save(run_dir / "model")
        # what `mlflow.pyfunc.load_model(f"runs:/{id}/model")` serves, with our own files inside
        mlflow_model = save_mlflow_model(
            task, cfg, model, splits, run_dir / "model", run_dir / "mlflow_model"
        )
        tracked.log_curves(getattr(model, "history_", {}))
        tracked.log_metrics(metrics)
        console.log_metrics(metrics)
        tracked.log_model(mlflow_model)
        tracked.log_artifacts(run_dir / "evaluation", "evaluation")

    console.print_results(
        f"{cfg.task.name} · {model_name} · test",
        metrics,
        [
            ("MLflow run", f"{tracked.run_id} (experiment '{cfg.mlflow.experiment}')"),
            ("run dir", str(run_dir)),
            ("MLflow UI", store.ui_command(uri, tracked.experiment_id)),
        ],
    )
    return metrics


def split_job(cfg: DictConfig, job: JobContext | None) -> tuple[DictConfig, JobContext]:
    """The config without Hydra's own node, and the job's facts (from that node when not given)."""
    if "hydra" not in cfg:
        return cfg, job or JobContext()
    if job is None:
        job = job_from_hydra_config(cfg.hydra)
    cfg = cfg.copy()
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, job


class Built:
    """What a config names, checked and built before any work: the task object and the model's class."""

    def __init__(self, cfg: DictConfig, task, model_cls: type) -> None:
        self.cfg, self.task, self.model_cls = cfg, task, model_cls


def build(cfg: DictConfig, job: JobContext | None = None) -> Built:
    """Check the config (nothing mandatory unset, typed values in range, model/data/features fitting the
    task) and apply the `lr` shorthand; build the task with `hydra.utils.instantiate`. One ConfigError on
    the first problem, before any run directory or MLflow run exists."""
    from airush.config.schema import check_config, check_primary_metric

    job = job or JobContext()
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{', '.join(missing)} must be set, e.g. `airush ... {missing[0]}=...`")
    classes = {group: target_class(cfg, group, job) for group in ("task", "model", "data", "features")}
    check_config(cfg, classes)  # every value against its class, before any of them is built
    task = instantiate_task(cfg)
    for group in ("model", "data", "features"):
        check_fits(task, group, classes[group], job.choice(group, cfg))
    check_primary_metric(task)
    cfg = apply_lr(cfg, job)
    return Built(cfg, task, classes["model"])


def check_fits(task, group: str, cls: type, option: str) -> None:
    """The class's own `task` declaration against the configured task; the valid list names airush's options
    and installed plugins' (the CLI's check before Hydra also names a --config-dir's)."""
    try:
        task.check_fits(group, cls, option)
    except ConfigError as err:
        from airush.config.choices import packaged_choices

        valid = ", ".join(packaged_choices().options_for_task(group, task.name))
        raise ConfigError(f"{err}; {task.name} {group} choices: {valid}") from None


def instantiate_task(cfg: DictConfig):
    """The task object its config's `_target_` names, built with the task's settings."""
    from hydra.utils import instantiate

    from airush.task import Task

    if "_target_" not in cfg.task:
        raise ConfigError("task._target_ must name the task's class (e.g. airush.abuse.task.AbuseTask)")
    try:
        task = instantiate(cfg.task, _convert_="all")
    except Exception as err:
        raise ConfigError(f"task: {instantiate_error(err)}") from None
    if not isinstance(task, Task):
        raise ConfigError(f"task._target_ {cfg.task._target_} is not an airush.task.Task")
    return task


def target_class(cfg: DictConfig, group: str, job: JobContext) -> type:
    """The class a group's `_target_` names; one line when it names nothing importable."""
    from hydra.utils import get_class

    target = cfg[group].get("_target_") if isinstance(cfg.get(group), DictConfig) else None
    if not target:
        raise ConfigError(f"{group} '{job.choice(group, cfg)}' has no _target_ naming its class")
    try:
        return get_class(str(target))
    except Exception as err:
        raise ConfigError(f"{group}._target_ {target}: {instantiate_error(err)}") from None


def instantiate_error(err: BaseException) -> str:
    """Hydra's instantiate/get_class message without its full_key lines and nested tracebacks."""
    cause = err.__cause__ or err
    text = " ".join(
        line.strip() for line in str(cause).splitlines() if line.strip() and "full_key" not in line
    )
    return text or type(cause).__name__


def apply_lr(cfg: DictConfig, job: JobContext) -> DictConfig:
    """`lr` set: it overrides the active model's `learning_rate`; a model without one refuses it."""
    if cfg.get("lr") is None:
        return cfg
    if "learning_rate" not in cfg.model:
        from airush.config.choices import packaged_choices

        choices = packaged_choices()
        with_lr = [
            m
            for m in choices.options_for_task("model", cfg.task.name)
            if "learning_rate" in choices.option_config("model", m)
        ]
        raise ConfigError(
            f"lr={cfg.lr} but model '{job.choice('model', cfg)}' has no learning rate; "
            f"{cfg.task.name} models with one: {', '.join(with_lr) or 'none'}"
        )
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.model.learning_rate = float(cfg.lr)
    return cfg


def run_tags(cfg: DictConfig, job: JobContext, config_id: str, code: str) -> dict[str, str]:
    commit, dirty = run_record.git_state(Path(airush.__file__).parent)
    return {
        "airush.task": cfg.task.name,
        "airush.model": job.choice("model", cfg),
        "airush.data": job.choice("data", cfg),
        "airush.primary_metric": cfg.task.primary_metric,
        "airush.version": airush.__version__,
        "seed": str(cfg.seed),
        "git.commit": commit,
        "git.dirty": dirty,
        "mlflow.source.git.commit": commit,
        "mlflow.source.name": "airush",
        "hydra.overrides": store.redact_text(" ".join(job.overrides)),
        "airush.config_hash": config_id,
        "airush.code": code,
        # who runs it: a RUNNING run whose process is gone (SIGKILL, power loss) is recognised as dead
        "airush.host": socket.gethostname(),
        "airush.pid": str(os.getpid()),
    }


def run_name(cfg: DictConfig, job: JobContext) -> str:
    name = " ".join([f"{cfg.task.name}-{job.choice('model', cfg)}", *job.overrides])
    return store.redact_text(str(cfg.mlflow.run_name or name))[:250]


def log_config(tracked, cfg: DictConfig, run_dir: Path, job: JobContext) -> None:
    """The composed `.hydra/` files and the resolved config, as `hydra/…` artifacts; credentials in any URI
    are masked in what is logged (a shared server's users read these). A run without a Hydra job (the
    Python API) logs its overrides the same way, so it can be reproduced too."""
    import yaml

    resolved = store.redact_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run_dir / "config_resolved.yaml").write_text(resolved)
    hydra_files = sorted((run_dir / ".hydra").glob("*.yaml"))
    for path in hydra_files:
        tracked.log_text(store.redact_text(path.read_text()), f"hydra/{path.name}")
    if not any(path.name == "overrides.yaml" for path in hydra_files):
        tracked.log_text(store.redact_text(yaml.safe_dump(list(job.overrides))), "hydra/overrides.yaml")
    # which option of each group was composed: a user's option (`--config-dir`) need not exist where the run
    # is reproduced, and `airush reproduce` rebuilds it from the recorded config
    choices = {group: option for group, option in job.choices.items() if not group.startswith("hydra/")}
    tracked.log_text(store.redact_text(yaml.safe_dump(choices)), "hydra/choices.yaml")
    tracked.log_text(resolved, "hydra/config_resolved.yaml")


def reuse_finished_run(
    cfg: DictConfig, job: JobContext, client, experiment_id: str, config_id: str, code: str, fingerprint: str
) -> dict[str, float] | None:
    """Resume: in a sweep, a job whose identical config already FINISHED in this experiment, with the same
    code (airush source + library versions) and the same data (content `fingerprint`), is not trained
    again; its run's metrics stand in (returned; None = train). FAILED and KILLED runs do not count;
    RUNNING ones whose process died end KILLED. `resume=false` opts out."""
    from airush.tracking.sweeps import record_job, sweep_parent_run

    for dead in run_record.close_dead_runs_with_config(client, experiment_id, config_id):
        console.warn(f"run {dead} of this config was left RUNNING by a process that died: marked KILLED")
    finished = run_record.finished_run_with_config(client, experiment_id, config_id, code)
    if finished is None:
        return None
    run_id = finished.info.run_id
    if finished.data.tags.get("data.fingerprint") != fingerprint:
        console.warn(f"run {run_id} has this config but other data: training again")
        return None
    parent_id = sweep_parent_run(client, experiment_id, job.sweep_dir)  # its record lists reused jobs too
    record_job(job.sweep_dir, job.num, list(job.overrides), "REUSED", run_id=run_id)
    run_record.link_reused_run(
        client, experiment_id, parent_id, finished, store.redact_text(" ".join(job.overrides))
    )
    console.print_results(
        f"{cfg.task.name} · {job.choice('model', cfg)} · reused, resume=false retrains",
        dict(finished.data.metrics),
        [("MLflow run", f"{run_id} (identical config, code and data, finished earlier)")],
    )
    return dict(finished.data.metrics)


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
    from airush.tracking.sweeps import selection_value

    return selection_value(metrics, cfg.task.primary_metric)


def instantiate_model(cfg: DictConfig, model_cls: type):
    """The model its config's `_target_` names, built by `hydra.utils.instantiate` with the config's
    settings, and `seed` when the class takes one (airush's own do; a user's may not)."""
    import inspect

    from hydra.utils import instantiate

    parameters = inspect.signature(model_cls.__init__).parameters
    takes_seed = "seed" in parameters or any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    extra = {"seed": int(cfg.seed)} if takes_seed and "seed" not in cfg.model else {}
    try:
        return instantiate(cfg.model, **extra, _convert_="all")
    except Exception as err:  # Hydra wraps what the constructor raised
        cause = err.__cause__ or err
        if isinstance(cause, ConfigError):
            raise cause from None
        if isinstance(cause, TypeError):  # settings the class does not take
            raise ConfigError(f"model: {instantiate_error(err)}") from None
        raise


def model_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """The model's settings as keyword arguments (with `seed`), for building it by hand."""
    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    kwargs.pop("_target_")
    return {**kwargs, "seed": int(cfg.seed)}


# `mlflow.*` settings airush itself reads; any other (`+mlflow.note=...`) is the user's and becomes a tag
MLFLOW_SETTINGS = ("tracking_uri", "experiment", "artifact_location", "run_name")


def run_params(cfg: DictConfig, model_cls: type | None = None) -> dict[str, str]:
    """What a user compares runs by: config values that change what a run computes
    (`airush.config.identity.computes`: not output paths, the store, `resume`); not the `lr` shorthand, whose
    value is the model's `learning_rate`; `trainer.*` only for models that train with it (torch)."""
    from airush.config.identity import computes

    params = run_record.flatten(OmegaConf.to_container(cfg, resolve=True))
    trains_with_trainer = bool(getattr(model_cls, "supports_gpu", False))
    return {
        key: value
        for key, value in params.items()
        if computes(key) and key != "lr" and (trains_with_trainer or not key.startswith("trainer."))
    }


def settings_tags(cfg: DictConfig, run_dir: Path) -> dict[str, str]:
    """Where the run went and the user's own `mlflow.*` notes, as tags (`mlflow.note` is the run's
    description in the UI)."""
    tags = {"airush.run_dir": str(run_dir)}
    for key, value in (cfg.mlflow or {}).items():
        if key not in MLFLOW_SETTINGS and value is not None:
            name = "mlflow.note.content" if key == "note" else f"airush.mlflow.{key}"
            tags[name] = store.redact_text(str(value))
    return tags


def config_summary(cfg: DictConfig, job: JobContext, run_dir: Path, uri: str) -> list[tuple[str, Any]]:
    return [
        ("task", cfg.task.name),
        ("model", job.choice("model", cfg)),
        ("data", job.choice("data", cfg)),
        ("features", job.choice("features", cfg)),
        (
            "seed / gpus / lr",
            f"{cfg.seed} / {cfg.gpus} / {cfg.lr if cfg.lr is not None else 'model default'}",
        ),
        ("overrides", store.redact_text(" ".join(job.overrides)) or "none"),
        ("tracking", f"{store.redact_uri(uri)} · experiment '{cfg.mlflow.experiment}'"),
        ("run dir", run_dir),
    ]


def seed_everything(seed: int) -> None:
    """Seed global RNGs for any library that reads them; our own code passes explicit generators."""
    import sys

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)
