"""`hydra/sweeper=airush_optuna`: its settings, registered in Hydra's ConfigStore when Hydra scans plugins.

No `from __future__ import annotations`: Hydra's scanner runs this module before it is in sys.modules, where
dataclasses would look string annotations up."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class AirushOptunaSweeperConf:
    _target_: str = "hydra_plugins.airush_optuna_sweeper.sweeper.AirushOptunaSweeper"
    n_trials: int = 20  # trials this sweep adds to the study
    n_jobs: int = (
        1  # trials per batch handed to the launcher (hydra/launcher=joblib runs a batch in parallel)
    )
    direction: str = "maximize"  # of the value the task returns (airush: the primary metric on valid)
    sampler: str = "tpe"  # tpe | random
    n_startup_trials: int = 10  # tpe: random trials before the model kicks in
    seed: int | None = None  # null = the top-level `seed`
    # null = <task>-<model>-<hash of the fixed overrides and the space>: the same command continues its study,
    # a different one (other data, other space) starts its own
    study_name: str | None = None
    storage: str | None = None  # null = sqlite:///<paths.outputs>/optuna.db, beside the MLflow store
    enqueue_defaults: bool = True  # first trial = the config's own values (those inside the space)
    # key: sweep expression in Hydra's grammar: choice(...), range(...), interval(...), tag(log, interval(...))
    params: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="airush_optuna", node=AirushOptunaSweeperConf, provider="airush"
)
