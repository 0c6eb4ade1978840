"""The one interface every task implements: prepare data -> split -> model_for -> fit -> evaluate.

A task is a class built from `conf/task/<name>.yaml` by `hydra.utils.instantiate` (its `_target_`), holding
the task's settings; `run` drives its steps in order, so data only flows forward and every task is tracked
and reported the same way. What fits a task is declared by the classes themselves: a model, data set or
feature set fits task T when its class's `task` attribute is T (inherited from T's interfaces, such as
`airush.abuse.models.Detector`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from omegaconf import DictConfig

from airush.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


class Prepared(Protocol):
    """Loaded or generated data with its features, ready to split."""

    fingerprint: str  # sha256 of the data as loaded/generated, logged as the `data.fingerprint` tag
    stats: dict[str, Any]  # sizes worth seeing next to the metrics (rows, users, items, positives, ...)


class Task:
    name: str = ""
    model_interface: str = ""  # the class path of the models' interface, for messages
    # setting -> rule, as models declare theirs (grammar: airush.model.Model)
    ranges: ClassVar[dict[str, str]] = {}

    def __init__(self, name: str, primary_metric: str) -> None:
        self.name = name
        self.primary_metric = primary_metric

    def check_fits(self, group: str, cls: type, option: str) -> None:
        """A `model`/`data`/`features` class fits this task when it declares `task = <this task's name>`."""
        owner = getattr(cls, "task", None)
        if owner is None:
            raise ConfigError(
                f"{group} '{option}' ({cls.__module__}.{cls.__qualname__}) declares no task: subclass "
                f'the task\'s interface (e.g. {self.model_interface}) or set `task = "{self.name}"` on the class'
            )
        if owner != self.name:
            raise ConfigError(f"{group} '{option}' is for task {owner}, not {self.name}")

    def reported_metrics(self) -> list[str]:
        """The metrics `evaluate` reports that `primary_metric` may name (`<name>` stands for any word, e.g.
        `recall_<kind>`); the config check refuses any other. Empty: not declared, not checked."""
        return []

    # A task's steps are the module-level functions `prepare`, `split`, `fit`, `evaluate` (and optionally
    # `model_for`) of the module that defines its class, each a function of the config; a class may also
    # override the methods. `serving_module` holds its `save_mlflow_model`.
    serving_module: str = ""

    def _step(self, name: str, default: Any = None):
        import importlib

        step = getattr(importlib.import_module(type(self).__module__), name, default)
        if step is None:
            raise NotImplementedError(f"{type(self).__qualname__} has no step '{name}'")
        return step

    def prepare(self, cfg: DictConfig, stages) -> Prepared:
        return self._step("prepare")(cfg, stages)

    def split(self, prepared: Prepared, cfg: DictConfig) -> Any:
        return self._step("split")(prepared, cfg)

    def model_for(self, cfg: DictConfig, model: Any) -> Any:
        """The object `fit` trains, built around the configured model (e.g. one copy per account)."""
        return self._step("model_for", lambda cfg, model: model)(cfg, model)

    def fit(self, model: Any, splits: Any, cfg: DictConfig, stages, devices=None) -> None:
        self._step("fit")(model, splits, cfg, stages, devices)

    def evaluate(self, model: Any, splits: Any, cfg: DictConfig, stages, out_dir: Path) -> dict[str, float]:
        """Test-set metrics (and valid_* ones for model selection); files written to `out_dir` are logged
        as artifacts under `evaluation/`."""
        return self._step("evaluate")(model, splits, cfg, stages, out_dir)

    def save_mlflow_model(
        self, cfg: DictConfig, model: Any, splits: Any, model_dir: Path, out_dir: Path
    ) -> None:
        """Write the MLflow Model serving `model` (already saved by its own `save` in `model_dir`)."""
        import importlib

        importlib.import_module(self.serving_module).save_mlflow_model(cfg, model, splits, model_dir, out_dir)

    # Where `predictions` lives: by default the `predict` module beside the one defining the task's class
    # (`airush.music.task` -> `airush.music.predict`).
    predict_module: str = ""

    def predictions(self, trained: Any, source: Any, options: Any) -> Iterator[pd.DataFrame]:
        """Predictions of a recorded run's model (`airush.inference.trained.TrainedModel`) on the data
        `source` loads (labels not read), as chunks of rows written as they come (`airush predict`);
        `options`: `airush.inference.predict.PredictOptions`."""
        import importlib

        module = self.predict_module or f"{type(self).__module__.rpartition('.')[0]}.predict"
        return importlib.import_module(module).predictions(trained, source, options)


def training_steps(model: Any) -> int:
    """The progress bar's length for `fit`: what the model declares (1 for a class that does not say)."""
    steps = getattr(model, "training_steps", None)
    return max(int(steps()), 1) if callable(steps) else 1
