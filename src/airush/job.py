"""How a job was launched, as plain data: the CLI reads it from Hydra, the Python API builds it itself.

`run(cfg, job)` never asks Hydra: a notebook, a test or `airush reproduce` passes a `JobContext` (or none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JobContext:
    overrides: tuple[str, ...] = ()  # the command-line overrides, as typed (recorded in `hydra.overrides`)
    choices: dict[str, str] = field(default_factory=dict)  # config group -> option (`model` -> `als`)
    sweep_dir: Path | None = None  # a -m sweep's dir (where its parent run id lives); None for one run
    num: int = 0  # the job's number in its sweep

    def choice(self, group: str, cfg: Any = None) -> str:
        """The option chosen for `group` (`model=als` -> "als"); without one (a config built by hand), the
        module that holds the group's code (`airush.music.models.als.ALSRecommender` -> "als")."""
        if self.choices.get(group):
            return str(self.choices[group])
        target = str(((cfg or {}).get(group) or {}).get("_target_", "")) if cfg is not None else ""
        return target.rsplit(".", 2)[-2] if target.count(".") >= 2 else (target or "?")


def job_from_hydra() -> JobContext:
    """The running Hydra job's facts (the CLI layer only); an empty context outside a Hydra job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return JobContext()
    hydra_cfg = HydraConfig.get()
    return job_from_hydra_config(hydra_cfg, multirun=hydra_cfg.mode == RunMode.MULTIRUN)


def job_from_hydra_config(hydra_cfg: Any, multirun: bool = False) -> JobContext:
    """The facts a `hydra` config node holds (from a Hydra job, or `compose(..., return_hydra_config=True)`)."""
    choices = {str(k): str(v) for k, v in (hydra_cfg.runtime.choices or {}).items() if v is not None}
    overrides = tuple(str(o) for o in hydra_cfg.overrides.task)
    output_dir = hydra_cfg.runtime.get("output_dir")
    if not multirun or not output_dir:
        return JobContext(overrides, choices)
    return JobContext(overrides, choices, Path(output_dir).parent, int(hydra_cfg.job.num))
