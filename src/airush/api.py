"""The Python API: `airush.compose(overrides)` and `airush.run(cfg)` in a notebook or a plain script.

`compose` gives the config `airush <overrides>` would run, checked the same way (one-line errors, a user's
`config_dir` and `hydra.searchpath` included), with its paths made concrete so nothing needs a running Hydra
job; `run` trains, evaluates and records it exactly as the CLI does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf, open_dict

from airush.config.choices import ConfigChoices
from airush.config.resolvers import register


def compose(overrides: Sequence[str] = (), config_dir: str | os.PathLike | None = None) -> DictConfig:
    """The composed config, Hydra's own settings under `hydra` (which `run` reads the job's choices from).

    `config_dir`: a folder of the user's own configs, as `airush --config-dir` takes it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register()
    overrides = list(overrides)
    folder = None if config_dir is None else os.path.abspath(config_dir)
    ConfigChoices(folder, tuple(overrides)).check_overrides(overrides)
    if folder is not None:
        overrides = with_search_path(overrides, f"file://{folder}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("airush.conf", version_base="1.3"):
            cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    return with_concrete_paths(cfg)


def with_search_path(overrides: list[str], folder_uri: str) -> list[str]:
    """`overrides` with `folder_uri` appended to `hydra.searchpath` (kept if the user set one too)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    kept, paths = [], []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.key_or_group == "hydra.searchpath":
            paths.extend(str(p) for p in override.value())
        else:
            kept.append(override.input_line or "")
    return [*kept, f"hydra.searchpath=[{','.join([*paths, folder_uri])}]"]


def with_concrete_paths(cfg: DictConfig) -> DictConfig:
    """`${hydra:runtime.cwd}` and `${hydra:runtime.output_dir}` as values: this process's directory and a
    new run dir, as a Hydra run would set them (no HydraConfig global needed, or left behind)."""
    cwd = os.getcwd()
    with open_dict(cfg):
        _replace_hydra_paths(cfg, {"${hydra:runtime.cwd}": cwd})
        run_dir = str(OmegaConf.select(cfg, "hydra.run.dir"))
        cfg.hydra.runtime.cwd = cwd
        cfg.hydra.runtime.output_dir = run_dir
        _replace_hydra_paths(cfg, {"${hydra:runtime.output_dir}": run_dir})
    return cfg


def _replace_hydra_paths(cfg: DictConfig, values: dict[str, str]) -> None:
    for key, raw in OmegaConf.to_container(cfg.get("paths", {}), resolve=False).items():
        if isinstance(raw, str) and any(name in raw for name in values):
            for name, value in values.items():
                raw = raw.replace(name, value)
            cfg.paths[key] = raw


def run(cfg: DictConfig, job=None) -> dict[str, float]:
    """Train, evaluate and record `cfg` (from `compose`); returns the test metrics."""
    from airush.runner import run as run_job

    return run_job(cfg, job)
