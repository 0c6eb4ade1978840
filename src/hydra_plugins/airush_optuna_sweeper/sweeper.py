"""HPO for `airush -m`: a current Optuna driven through Hydra's launcher, the study kept in a database.

Our own sweeper because hydra-optuna-sweeper pins optuna 2.10, whose storage breaks under SQLAlchemy 2.
Each batch of `n_jobs` trials is asked from the study, launched as ordinary Hydra jobs (one MLflow child run
each, under the sweep's parent run), and told back: the value the task returns, or FAIL when a job raised or
returned no finite number. Optuna is imported only when a sweep starts, so `airush --help` stays fast.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from airush.errors import ConfigError

from ._space import Space, parse_space

log = logging.getLogger(__name__)

DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "random")
RESULTS_FILE = "optimization_results.yaml"


class AirushOptunaSweeper(Sweeper):
    def __init__(
        self,
        n_trials: int,
        n_jobs: int,
        direction: str,
        sampler: str,
        n_startup_trials: int,
        seed: int | None,
        study_name: str | None,
        storage: str | None,
        enqueue_defaults: bool,
        params: dict[str, Any] | None,
    ) -> None:
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.direction, self.sampler_name, self.n_startup_trials = direction, sampler, n_startup_trials
        self.seed, self.study_name, self.storage = seed, study_name, storage
        self.enqueue_defaults = enqueue_defaults
        self.params = _flatten(params or {})
        self.config: DictConfig | None = None
        self.hydra_context: Any = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> dict[str, Any]:
        import optuna

        assert self.config is not None and self.launcher is not None
        self._check_settings()
        _ensure_hydra_config(self.config)
        space = parse_space(
            self.params, arguments, self._current_values(arguments), self.hydra_context.config_loader
        )
        if not space.params:
            raise ConfigError(
                "nothing to search: give the sweeper a space (e.g. hparams_search=music_als) "
                "or sweep a key (model.factors=32,64 or 'model.alpha=interval(1,20)')"
            )
        self.validate_batch_is_legal([space.probe()])  # a mistyped key fails here, before any study exists
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = self._open_study(space)
        log.info(
            f"Optuna study '{study.study_name}' ({len(study.trials)} trials so far) in {self.storage_url}: "
            f"{self.n_trials} trials, {self.n_jobs} per batch, {self.direction} over {', '.join(space.params)}"
        )
        if self.enqueue_defaults:
            self._enqueue_defaults(study, space)

        numbers, failures = self._run_trials(study, space)
        if not any(study.trials[n].state == optuna.trial.TrialState.COMPLETE for n in numbers):
            message = f"optuna: no trial completed in study '{study.study_name}' ({len(numbers)} failed)"
            # a task function that raises: a UserError is one line and exit 2, a bug keeps its traceback
            raised = [e for e in failures if not isinstance(e, NoValue)]
            if raised:
                print(message, file=sys.stderr, flush=True)
                raise raised[0]
            from airush.errors import SweepFailed
            from airush.tracking.sweeps import job_records

            if any(r["status"] == "FAILED" for r in job_records(sweep_dir)):
                print(message, file=sys.stderr, flush=True)
                return {}  # airush names the failed jobs once the sweep has ended, and exits 1
            # every job finished, none with a score (e.g. a one-class valid set): not a silent exit 0
            raise SweepFailed(f"{message[len('optuna: ') :]}: no job reported a valid score to optimise")
        results = self._results(study, space, numbers)
        (sweep_dir / RESULTS_FILE).write_text(_yaml(results))
        print(self._summary_line(results, sweep_dir / RESULTS_FILE), flush=True)
        return results

    # -- settings and study -------------------------------------------------------------------------------

    def _check_settings(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"hydra.sweeper.direction={self.direction}: choose {' or '.join(DIRECTIONS)}")
        if self.sampler_name not in SAMPLERS:
            raise ConfigError(f"hydra.sweeper.sampler={self.sampler_name}: choose from {', '.join(SAMPLERS)}")
        for name in ("n_trials", "n_jobs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"hydra.sweeper.{name}={getattr(self, name)}: must be at least 1")

    def _current_values(self, arguments: list[str]) -> dict[str, Any]:
        """The composed config's value of every key the sweep may search (group keys: the chosen option)."""
        assert self.config is not None
        choices = OmegaConf.to_container(self.config.hydra.runtime.choices)
        keys = {str(k) for k in self.params} | {a.split("=", 1)[0].lstrip("+~") for a in arguments}
        current = {}
        for key in keys:
            if key in choices:
                current[key] = choices[key]
            elif key and not key.startswith("hydra") and "/" not in key:
                value = OmegaConf.select(self.config, key, default=None, throw_on_missing=False)
                if not isinstance(value, DictConfig | type(None)) and not OmegaConf.is_list(value):
                    current[key] = value
        return current

    @property
    def storage_url(self) -> str:
        if self.storage:
            return str(self.storage)
        assert self.config is not None
        return f"sqlite:///{Path(str(self.config.paths.outputs)).resolve() / 'optuna.db'}"

    def _open_study(self, space: Space):
        import optuna

        from airush.tracking.store import redact_uri, sqlite_path

        assert self.config is not None
        url = self.storage_url
        if url.startswith("sqlite:"):
            path = sqlite_path(url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
        name = self.study_name or self._default_study_name(space)
        try:
            study = optuna.create_study(
                storage=url, study_name=name, direction=self.direction, load_if_exists=True
            )
        except Exception as err:  # unreachable database, bad URL: the user's to fix
            raise ConfigError(
                f"cannot open Optuna storage {redact_uri(url)}: {str(err).splitlines()[0]}"
            ) from None
        if study.direction.name.lower() != self.direction:
            raise ConfigError(
                f"study '{name}' in {redact_uri(url)} was made to {study.direction.name.lower()}, "
                f"not {self.direction}; set hydra.sweeper.study_name=<a new name>"
            )
        # A continued study gets a different but reproducible stream of random points: the same seed again
        # would re-propose the startup trials it already ran.
        seed = (self.seed if self.seed is not None else int(self.config.seed)) + len(study.trials)
        if self.sampler_name == "random":
            study.sampler = optuna.samplers.RandomSampler(seed=seed)
        else:
            study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials)
        return study

    def _default_study_name(self, space: Space) -> str:
        """task-model-hash of the space, the fixed overrides, airush's code and its config files: a study only
        ever holds values the current code and defaults would give again."""
        import hashlib

        from airush.config.choices import conf_dir
        from airush.tracking.run_record import code_fingerprint

        assert self.config is not None
        task = OmegaConf.select(self.config, "task.name", default="airush")
        model = self.config.hydra.runtime.choices.get("model", "model")
        digest = hashlib.sha256(f"{space.fingerprint(self.direction)} {code_fingerprint()}".encode())
        root = conf_dir()
        for name, path in sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*.yaml")):
            digest.update(name.encode() + path.read_bytes())
        return f"{task}-{model}-{digest.hexdigest()[:8]}"

    def _enqueue_defaults(self, study, space: Space) -> None:
        """The config's own values as one trial, once per study: the sweep's best is then never worse than
        the defaults it started from (when they lie inside the space)."""
        current = self._current_values(list(space.params))
        point = {k: p.point(current.get(k.lstrip("+~"))) for k, p in space.params.items()}
        outside = sorted(k for k, v in point.items() if v is None)
        point = {k: v for k, v in point.items() if v is not None}
        if outside:
            log.info(f"defaults outside the search space, sampled instead: {', '.join(outside)}")
        if point:
            study.enqueue_trial(point, user_attrs={"airush.defaults": True}, skip_if_exists=True)

    # -- trials -------------------------------------------------------------------------------------------

    def _run_trials(self, study, space: Space) -> tuple[list[int], list[BaseException]]:
        import optuna
        from hydra.core.utils import JobStatus

        distributions = {k: p.distribution for k, p in space.params.items()}
        numbers: list[int] = []
        failures: list[BaseException] = []
        job_idx = 0
        while len(numbers) < self.n_trials:
            batch = []
            for _ in range(min(self.n_jobs, self.n_trials - len(numbers))):
                try:
                    batch.append(study.ask(distributions))
                except ValueError as err:  # a study made with another space for the same key
                    raise ConfigError(
                        f"study '{study.study_name}': {err}; set hydra.sweeper.study_name=<a new name>"
                    ) from None
            overrides = [space.overrides({k: t.params[k] for k in space.params}) for t in batch]
            try:
                returns = self.launcher.launch(overrides, initial_job_idx=job_idx)
            except BaseException:
                for trial in batch:  # Ctrl-C or a launcher crash: leave no trial RUNNING forever
                    study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
                raise
            job_idx += len(batch)
            for trial, job, trial_overrides in zip(batch, returns, overrides, strict=True):
                trial.set_user_attr("overrides", trial_overrides)
                output_dir = job.hydra_cfg and OmegaConf.select(job.hydra_cfg, "hydra.runtime.output_dir")
                if output_dir:
                    trial.set_user_attr("output_dir", str(output_dir))
                value, error = _job_value(job, JobStatus)
                if error is None:
                    study.tell(trial, value)
                else:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    failures.append(error)
                    log.warning(
                        f"trial {trial.number} failed: {str(error).splitlines()[0] if str(error) else error!r}"
                    )
                numbers.append(trial.number)
            if len(numbers) == len(batch) and len(failures) == len(batch):
                log.error("every trial of the first batch failed: stopping (the study keeps them as FAIL)")
                break
        return numbers, failures

    # -- results ------------------------------------------------------------------------------------------

    def _results(self, study, space: Space, numbers: list[int]) -> dict[str, Any]:
        from optuna.trial import TrialState

        from airush.tracking.store import redact_uri

        assert self.config is not None
        best = study.best_trial
        states = [t.state for t in study.trials]
        primary = OmegaConf.select(self.config, "task.primary_metric", default=None)
        return {
            "study_name": study.study_name,
            "storage": redact_uri(self.storage_url),
            "direction": self.direction,
            "objective": f"valid_{primary}" if primary else "the task's return value",
            "best_value": float(best.value),
            "best_trial": best.number,
            "best_params": {k: best.params[k] for k in space.params if k in best.params},
            # everything needed to rerun the best trial: `airush <best_overrides...>`
            "best_overrides": best.user_attrs.get("overrides", []),
            "best_output_dir": best.user_attrs.get("output_dir"),
            "study_trials": {
                "total": len(states),
                "complete": states.count(TrialState.COMPLETE),
                "fail": states.count(TrialState.FAIL),
            },
            "this_sweep": {
                "trials": numbers,
                "complete": sum(study.trials[n].state == TrialState.COMPLETE for n in numbers),
                "fail": sum(study.trials[n].state == TrialState.FAIL for n in numbers),
            },
        }

    def _summary_line(self, results: dict[str, Any], path: Path) -> str:
        params = " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in results["best_params"].items()
        )
        total, sweep = results["study_trials"], results["this_sweep"]
        failed = f", {sweep['fail']} failed" if sweep["fail"] else ""
        return (
            f"optuna: best {results['objective']} {results['best_value']:.4f} (trial {results['best_trial']}) "
            f"in study '{results['study_name']}' ({sweep['complete']} new trials{failed}; {total['total']} in "
            f"study): {params} -> {path}"
        )


class NoValue(Exception):
    """A job ended without a finite number to optimise (airush's jobs return None when they fail)."""


def _job_value(job, job_status) -> tuple[float | None, BaseException | None]:
    """(value, None) for a finished job with a finite number, else (None, why it failed)."""
    if job.status == job_status.FAILED:
        error = job._return_value
        return None, error if isinstance(error, BaseException) else RuntimeError(str(error))
    value = job.return_value
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None, NoValue(f"the job returned {value!r}, not a number")
    if not math.isfinite(value):
        return None, NoValue(f"the job returned {value}")
    return value, None


def _flatten(params: Any, prefix: str = "") -> dict[str, Any]:
    """`params:` as dotted keys: yaml writes `model.alpha: ...`, while the command line's
    `hydra.sweeper.params.model.alpha=...` arrives nested."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping | DictConfig):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat.pop(f"{prefix}{key}", None)  # a later entry wins and keeps the later position
            flat[f"{prefix}{key}"] = value
    return flat


def _ensure_hydra_config(config: DictConfig) -> None:
    """`paths.outputs` resolves through `${hydra:runtime.cwd}`; Hydra sets its config only once jobs run."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        HydraConfig.instance().set_config(config)


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
