"""What every model shares, whatever its task: settings in `__init__`, learned state in `fit`, plain files.

Each task has its own small interface on top (`airush.abuse.models.Detector`,
`airush.music.models.Recommender`); a class implementing one declares its task through it, so a user's class
that subclasses the interface fits the task the same way airush's own do.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

PARAMS_FILE = "params.json"  # the constructor's settings, beside the model's own files


class Model:
    task: str | None = None  # the task this model fits; set by each task's interface
    supports_gpu = False  # True: fit also takes `devices` (an `airush.compute.devices.DevicePlan`)
    supports_distributed = False  # True: it can train as N DDP ranks (devices.world_size > 1)

    def get_params(self) -> dict[str, Any]:
        """The constructor's settings (scikit-learn's convention: each is stored as an attribute of its name)."""
        names = [
            name
            for name, p in inspect.signature(type(self).__init__).parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names if hasattr(self, name)}

    def training_steps(self) -> int:
        """How many steps `fit` reports to its progress bar at most (boosting rounds, epochs, iterations)."""
        return 1

    def save_params(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        params = {k: v for k, v in self.get_params().items() if _is_json(v)}
        (directory / PARAMS_FILE).write_text(json.dumps(params, indent=1, sort_keys=True))

    @classmethod
    def from_params(cls, directory: Path):
        """A new, unfitted instance with the settings `save_params` wrote (defaults for a folder without
        them, as written by older airush versions)."""
        path = directory / PARAMS_FILE
        params = json.loads(path.read_text()) if path.is_file() else {}
        accepted = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in params.items() if k in accepted})


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
