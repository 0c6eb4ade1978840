"""Which config choices exist and which task each one fits: airush's own and the user's.

Options are read through Hydra's own config search path, so a user's `--config-dir`, `hydra.searchpath=[...]`
(file:// or pkg://) and installed `hydra_plugins` search-path plugins count exactly as they do when Hydra
composes. What an option fits is declared by the class its `_target_` names (its `task` attribute, inherited
from the task's interface: `airush.abuse.models.Detector`, `airush.music.models.Recommender`, ...), never by a
packaged list. Checked before Hydra starts a job, so a wrong choice costs no run directory and no MLflow run,
just one line naming the valid choices (the user's among them).
"""

from __future__ import annotations

from functools import cache, cached_property
from typing import Any

from airush.config.declared import declared_task
from airush.errors import ConfigError

PACKAGED_CONF = "pkg://airush.conf"
TASK_BOUND_GROUPS = ("model", "data", "features")
CHECKED_GROUPS = ("task", *TASK_BOUND_GROUPS)


class ConfigChoices:
    """The config tree Hydra would compose from: the packaged `conf/`, `config_dir` (`--config-dir`) and any
    `hydra.searchpath` in `overrides`."""

    def __init__(self, config_dir: str | None = None, overrides: tuple[str, ...] = ()) -> None:
        self.config_dir = config_dir
        self.overrides = tuple(o for o in overrides if o.lstrip("+").startswith("hydra.searchpath"))

    @cached_property
    def repository(self):
        import os

        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra._internal.utils import create_config_search_path
        from hydra.core.config_search_path import SearchPathQuery

        search_path = create_config_search_path(PACKAGED_CONF)
        if self.config_dir is not None:
            folder = os.path.abspath(self.config_dir)
            if not os.path.isdir(folder):
                raise ConfigError(f"--config-dir {folder} is not a directory")
            search_path.prepend("command-line", f"file://{folder}", anchor=SearchPathQuery(provider="schema"))
        loader = ConfigLoaderImpl(config_search_path=search_path)
        try:
            _, repository = loader._parse_overrides_and_create_caching_repo("config", list(self.overrides))
        except Exception as err:
            raise ConfigError(f"hydra.searchpath: {' '.join(str(err).split())}") from None
        return repository

    def options(self, group: str) -> tuple[str, ...]:
        from hydra.core.object_type import ObjectType

        return tuple(sorted(self.repository.get_group_options(group, ObjectType.CONFIG)))

    def option_config(self, group: str, option: str) -> dict[str, Any]:
        """The option's yaml as written (interpolations unresolved); {} for an unknown option."""
        from omegaconf import OmegaConf

        loaded = self.repository.load_config(f"{group}/{option}")
        if loaded is None:
            return {}
        return OmegaConf.to_container(loaded.config, resolve=False) or {}

    def option_task(self, group: str, option: str) -> str | None:
        """The task an option fits: for a task, its `task.name`; otherwise the task its class declares."""
        config = self.option_config(group, option)
        if group == "task":
            return str((config.get("task") or {}).get("name") or option)
        target = config.get("_target_")
        return declared_task(str(target)) if target else None

    def options_for_task(self, group: str, task: str) -> list[str]:
        """The options of `group` that fit `task` (groups not bound to a task: those that name no task)."""
        bound = group in TASK_BOUND_GROUPS
        return [
            o
            for o in self.options(group)
            if self.option_task(group, o) == task or (not bound and self.option_task(group, o) is None)
        ]

    def check_choice(self, group: str, option: str) -> None:
        if option not in self.options(group):
            raise ConfigError(f"unknown {group} '{option}'; choose from: {', '.join(self.options(group))}")

    def check_fits_task(self, group: str, option: str, task: str, owner: str | None = None) -> None:
        """`owner` (the task the option's code declares) is read from the option's class unless given. An
        option whose class declares nothing (or cannot be found) is left to `airush.runner.build`, which says
        precisely what is wrong once the config is composed."""
        owner = owner if owner is not None else self.option_task(group, option)
        if owner is not None and owner != task:
            valid = ", ".join(self.options_for_task(group, task))
            raise ConfigError(
                f"{group} '{option}' is for task {owner}, not {task}; {task} {group} choices: {valid}"
            )

    def default_task(self) -> str:
        return self._defaults("config").get("task", "")

    def task_defaults(self, task: str) -> dict[str, str]:
        """The model/data/features a task picks (`override /model: als` in its yaml)."""
        return self._defaults(f"task/{task}")

    def _defaults(self, path: str) -> dict[str, str]:
        """group -> option of a config's defaults list (`- model: lgbm`, `- override /model: als`)."""
        loaded = self.repository.load_config(path)
        chosen = {}
        for entry in (loaded.defaults_list or []) if loaded else []:
            group, value = getattr(entry, "group", None), getattr(entry, "value", None)
            if group and isinstance(value, str):
                chosen[group.lstrip("/")] = value
        return chosen

    def check_overrides(self, overrides: list[str]) -> None:
        """Validate group choices named on the command line (sweeps included) before Hydra composes."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        try:
            parsed = OverridesParser.create().parse_overrides(overrides)
        except Exception as err:  # Hydra's own parser error already names the bad token
            raise ConfigError(" ".join(str(err).split())) from None

        chosen: dict[str, list[str]] = {}
        for override in parsed:
            key = override.get_key_element()
            if key not in CHECKED_GROUPS or override.is_delete():
                continue
            values = (
                list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
            )
            for value in values:
                if not isinstance(value, str):
                    raise ConfigError(
                        f"{key} must name a config; choose from: {', '.join(self.options(key))}"
                    )
                self.check_choice(key, value)
            chosen[key] = values

        tasks = [self.option_task("task", t) or t for t in chosen.get("task", [self.default_task()])]
        for task in tasks:
            for group in TASK_BOUND_GROUPS:
                for option in chosen.get(group, []):
                    self.check_fits_task(group, option, task)


@cache
def packaged_choices() -> ConfigChoices:
    """airush's own config tree, with no user folder (installed search-path plugins still count)."""
    return ConfigChoices()


def group_options(group: str) -> tuple[str, ...]:
    return packaged_choices().options(group)


def option_config(group: str, option: str) -> dict[str, Any]:
    return packaged_choices().option_config(group, option)


def conf_dir():
    """The folder of airush's own configs (shipped in the package as `airush.conf`)."""
    from importlib.resources import files
    from pathlib import Path

    return Path(str(files("airush.conf")))
