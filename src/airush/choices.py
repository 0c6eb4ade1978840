"""Which config choices exist and which task each belongs to, read from the yaml files alone.

Checked before Hydra starts a job, so a wrong `model=`/`data=`/`features=` choice or a model that does not fit
the task costs no run directory and no MLflow run, just one line naming the valid choices.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from airush.errors import ConfigError

TASKS = ("abuse", "music")
TASK_BOUND_GROUPS = ("model", "data", "features")
CHECKED_GROUPS = ("task", *TASK_BOUND_GROUPS)


def conf_dir() -> Path:
    return Path(str(files("airush.conf")))


@cache
def group_options(group: str) -> tuple[str, ...]:
    folder = conf_dir() / group
    return tuple(sorted(p.stem for p in folder.glob("*.yaml")))


def target_task(target: str) -> str | None:
    """The task code serves, from its import path (airush.<task>.…); None for code outside airush."""
    parts = str(target).split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "airush" and parts[1] in TASKS else None


@cache
def option_config(group: str, option: str) -> dict:
    """The yaml of one option, as written (read once per process)."""
    import yaml

    return yaml.safe_load((conf_dir() / group / f"{option}.yaml").read_text()) or {}


def option_task(group: str, option: str) -> str | None:
    return target_task(option_config(group, option).get("_target_", ""))


def options_for_task(group: str, task: str) -> list[str]:
    return [o for o in group_options(group) if option_task(group, o) in (task, None)]


def check_choice(group: str, option: str) -> None:
    if option not in group_options(group):
        raise ConfigError(f"unknown {group} '{option}'; choose from: {', '.join(group_options(group))}")


def check_fits_task(group: str, option: str, task: str, owner: str | None = None) -> None:
    """`owner` (the task the option's code serves) is read from the option's yaml unless given."""
    owner = owner if owner is not None else option_task(group, option)
    if owner is not None and owner != task:
        valid = ", ".join(options_for_task(group, task))
        raise ConfigError(
            f"{group} '{option}' is for task {owner}, not {task}; {task} {group} choices: {valid}"
        )


def check_overrides(overrides: list[str]) -> None:
    """Validate group choices named on the command line (sweeps included) before Hydra composes anything."""
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
                raise ConfigError(f"{key} must name a config; choose from: {', '.join(group_options(key))}")
            check_choice(key, value)
        chosen[key] = values

    for task in chosen.get("task", [default_task()]):
        for group in TASK_BOUND_GROUPS:
            for option in chosen.get(group, []):
                check_fits_task(group, option, task)


@cache
def default_task() -> str:
    import yaml

    defaults = yaml.safe_load((conf_dir() / "config.yaml").read_text())["defaults"]
    return next(d["task"] for d in defaults if isinstance(d, dict) and "task" in d)


def task_defaults(task: str) -> dict[str, str]:
    """The model/data/features a task picks (`override /model: als` in conf/task/<task>.yaml)."""
    chosen = {}
    for entry in option_config("task", task).get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                chosen[key.removeprefix("override ").lstrip("/")] = value
    return chosen
