"""Sweep jobs as Ray tasks on a running Ray cluster: `airush -m ... hydra/launcher=ray
hydra.launcher.address=HEAD:6379`.

Our own launcher because hydra-ray-launcher 1.2.2 pins cloudpickle<3 (a fresh install then downgrades joblib
to 1.5 beside it) and, on a current Ray, fails to connect to a running cluster (it always passes
object_store_memory, which ray.init refuses with an address). This one needs `ray` alone.

Each job is one Ray task reserving `num_cpus` / `num_gpus`; Ray runs as many at once as the cluster holds.
The task runs Hydra's `run_job` in a Ray worker with the submitting shell's `env` variables and working
directory (when it exists there), so its MLflow run lands in the sweep's store, under the sweep's parent,
exactly as with the local launchers. Jobs read and write the sweep dir, the data and a sqlite store through
the file system: on several machines those paths must be shared (or the store a tracking server).
Ray is imported only when a sweep launches, so Hydra's plugin scan and `airush --help` stay fast.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class AirushRayLauncher(Launcher):
    def __init__(
        self,
        address: str | None,
        num_cpus: float,
        num_gpus: float,
        max_retries: int,
        env: Sequence[str],
        init: dict[str, Any] | None,
    ) -> None:
        self.address = address
        self.num_cpus, self.num_gpus, self.max_retries = num_cpus, num_gpus, max_retries
        self.env = list(env)
        self.init = _plain(init or {})
        self.config: DictConfig | None = None
        self.hydra_context: Any = None
        self.task_function: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra.core.singleton import Singleton
        from hydra.core.utils import configure_log, filter_overrides, setup_globals
        from omegaconf import open_dict

        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        ray = self._connect()
        self._check_fits(ray)

        env = {name: os.environ[name] for name in self.env if name in os.environ}
        task = ray.remote(airush_job).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=self.max_retries
        )
        log.info(
            "Ray launcher: %d jobs on %s (%s CPU, %s GPU each), sweep dir %s",
            len(job_overrides),
            _address_shown(ray),
            self.num_cpus,
            self.num_gpus,
            sweep_dir,
        )
        singleton_state = Singleton.get_state()
        jobs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.num = idx
            ref = task.remote(
                self.hydra_context, sweep_config, self.task_function, singleton_state, env, os.getcwd()
            )
            jobs.append((idx, list(overrides), sweep_config, ref))
        try:
            return [self._result(ray, sweep_dir, *job) for job in jobs]
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the jobs stop too (their runs are marked by airush)
            for *_, ref in jobs:
                ray.cancel(ref, force=True)
            raise

    def _connect(self) -> Any:
        from airush.errors import ConfigError, EnvironmentFailure

        try:
            import ray
        except ImportError:  # a choice that comes with an optional install: the user's to fix, exit 2
            raise ConfigError(
                "hydra/launcher=ray: ray needs the optional extra: pip install -e '.[ray]' (or pip install ray)"
            ) from None
        if ray.is_initialized():  # a sweeper's next batch
            return ray
        where = self.address or os.environ.get("RAY_ADDRESS") or "a new local Ray"
        hint = "(start it with `ray start --head`, or set hydra.launcher.address=HOST:PORT)"
        refused = _unreachable(str(where))
        if refused:  # ray.init retries an unreachable head for minutes
            raise EnvironmentFailure(f"cannot reach the Ray cluster at {where}: {refused} {hint}")
        try:
            ray.init(address=self.address, **{"logging_level": logging.WARNING, **self.init})
        except (ConnectionError, RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise EnvironmentFailure(  # it answers but refuses us: most often token auth on one side only
                f"cannot connect to the Ray cluster at {where}: {first} (a cluster with token auth needs "
                "RAY_AUTH_MODE=token and its RAY_AUTH_TOKEN in this shell too)"
            ) from None
        return ray

    def _check_fits(self, ray: Any) -> None:
        """A job no node can hold would wait forever; say so before any is submitted."""
        from airush.errors import ConfigError

        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        for resource, want, key in (("CPU", self.num_cpus, "num_cpus"), ("GPU", self.num_gpus, "num_gpus")):
            most = max((n.get(resource, 0) for n in nodes), default=0)
            if want > most:
                raise ConfigError(
                    f"hydra.launcher.{key}={want:g} but no node of the Ray cluster has more than "
                    f"{most:g} {resource}(s): every job would wait forever"
                )

    def _result(
        self, ray: Any, sweep_dir: Path, idx: int, overrides: list[str], sweep_config: DictConfig, ref: Any
    ) -> JobReturn:
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as err:  # the worker died (OOM killer, node lost, cancelled)
            return _lost_job(sweep_dir, idx, overrides, sweep_config, err)


def airush_job(
    hydra_context: Any,
    sweep_config: DictConfig,
    task_function: Any,
    singleton_state: dict[Any, Any],
    env: dict[str, str],
    cwd: str,
) -> JobReturn:
    """One sweep job inside a Ray worker, as Hydra's own launchers run it. The worker may run other jobs
    after this one: its environment and working directory are put back."""
    import ray
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import run_job, setup_globals
    from omegaconf import open_dict

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update(env)
    if os.path.isdir(cwd):  # the submitter's directory, when this machine has it (shared file system)
        os.chdir(cwd)
    try:
        setup_globals()
        Singleton.set_state(singleton_state)
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = ray.get_runtime_context().get_task_id()
        HydraConfig.instance().set_config(sweep_config)
        return run_job(
            hydra_context=hydra_context,
            task_function=task_function,
            config=sweep_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def _lost_job(sweep_dir: Path, idx: int, overrides: list[str], sweep_config: DictConfig, err: Exception):
    """A job Ray lost is a failed job: recorded for the sweep's end (parent FAILED, exit 1 naming it) and
    returned with no objective, as a job that raised is; a run it left RUNNING is reported dead later."""
    from hydra.core.utils import JobStatus

    from airush.tracking.store import redact_text
    from airush.tracking.sweeps import record_job

    text = str(err).strip()
    line = f"{type(err).__name__}: {text.splitlines()[0] if text else 'no message'}"[:500]
    record_job(sweep_dir, idx, overrides, "FAILED", error=line, run_id=None)
    print(f"airush: job #{idx} ({redact_text(' '.join(overrides))}) failed: {line}", file=sys.stderr)
    return JobReturn(
        overrides=overrides, cfg=sweep_config, hydra_cfg=sweep_config, status=JobStatus.COMPLETED
    )


def _unreachable(address: str, timeout_s: float = 5.0) -> str | None:
    """Why a HOST:PORT (or ray://HOST:PORT) head does not answer; None when it does or the address is not one
    (auto, a local Ray)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


def _address_shown(ray: Any) -> str:
    try:
        return str(ray.get_runtime_context().gcs_address)
    except Exception:  # older Ray: the address is only for the log line
        return "the Ray cluster"


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else dict(value)
