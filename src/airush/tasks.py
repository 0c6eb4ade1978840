"""The one interface every task implements: prepare data -> split -> model_for -> fit -> evaluate.

A task is a module (`airush.abuse.task`, `airush.music.task`) with these four functions; `run` drives them in
order, so data only flows forward and every task is tracked and reported the same way.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig

from airush.console import Stages

TASK_MODULES = {"abuse": "airush.abuse.task", "music": "airush.music.task"}


class Prepared(Protocol):
    """Loaded or generated data with its features, ready to split."""

    fingerprint: str  # sha256 of the data as loaded/generated, logged as the `data.fingerprint` tag
    stats: dict[str, Any]  # sizes worth seeing next to the metrics (rows, users, items, positives, ...)


class Task(Protocol):
    def prepare(self, cfg: DictConfig, stages: Stages) -> Prepared: ...

    def model_for(self, cfg: DictConfig, model: Any) -> Any:
        """The object `fit` trains, built around the configured model (e.g. one copy per account)."""
        ...

    def split(self, prepared: Prepared, cfg: DictConfig) -> Any: ...

    def fit(self, model: Any, splits: Any, cfg: DictConfig, stages: Stages) -> None: ...

    def evaluate(
        self, model: Any, splits: Any, cfg: DictConfig, stages: Stages, out_dir: Path
    ) -> dict[str, float]:
        """Test-set metrics; files written to `out_dir` are logged as artifacts under `evaluation/`."""
        ...


def load_task(name: str) -> Task:
    return importlib.import_module(TASK_MODULES[name])  # type: ignore[return-value]
