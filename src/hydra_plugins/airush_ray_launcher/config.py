"""`hydra/launcher=ray`: its settings, registered in Hydra's ConfigStore when Hydra scans plugins.

Registered as `airush_ray`; `conf/hydra/launcher/ray.yaml` builds on it, so `hydra/launcher=ray` is ours even
beside an installed hydra-ray-launcher (a config file on airush's search path wins over ConfigStore entries).

No `from __future__ import annotations`: Hydra's scanner runs this module before it is in sys.modules, where
dataclasses would look string annotations up."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

# Set in the submitting shell, needed by the job: where runs go, where data lives, and how airush's CLI
# quiets MLflow. Ray workers inherit the environment of `ray start`, not the submitter's.
FORWARDED_ENV = [
    "MLFLOW_TRACKING_URI",
    "AIRUSH_DATA_DIR",
    "AIRUSH_TRUSTED_PACKAGES",
    "HYDRA_FULL_ERROR",
    "MLFLOW_LOGGING_LEVEL",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
]


@dataclass
class AirushRayLauncherConf:
    _target_: str = "hydra_plugins.airush_ray_launcher.launcher.AirushRayLauncher"
    # host:port of the cluster's head (`ray start --head` prints it), "auto" (a cluster started on this
    # machine), or null: $RAY_ADDRESS if set, else a throwaway local Ray for this sweep
    address: Any = None
    num_cpus: float = 1  # CPUs each job reserves: how many jobs share a node
    num_gpus: float = 0  # GPUs each job reserves; Ray sets CUDA_VISIBLE_DEVICES to them (pair with gpus=N)
    max_retries: int = 0  # reruns of a job whose worker died; 0 = a lost job is a failed job
    # names of the submitting shell's environment variables each job gets (those that are set)
    env: list[str] = field(default_factory=lambda: list(FORWARDED_ENV))
    # any other ray.init() keyword (namespace, runtime_env, ...)
    init: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/launcher", name="airush_ray", node=AirushRayLauncherConf, provider="airush"
)
