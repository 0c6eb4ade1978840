"""The typed check of a composed config: every bad value is one line naming the key, the value and what is
allowed, before any run directory or MLflow run exists."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from airush.errors import ConfigError


def check_config(cfg: DictConfig) -> None:
    """Top-level shorthands; `airush.runner.build` checks the rest as it builds what the config names."""
    seed = _value(cfg, "seed")
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")
    gpus = _value(cfg, "gpus")
    if not _is_int(gpus) or gpus < 0:
        raise ConfigError(f"gpus must be a whole number >= 0, got {gpus!r}")
    lr = _value(cfg, "lr")
    if lr is not None and (not _is_number(lr) or not lr > 0):
        raise ConfigError(f"lr must be a number > 0 (or null for the model's own), got {lr!r}")
    resume = _value(cfg, "resume", True)
    if not isinstance(resume, bool):
        raise ConfigError(f"resume must be true or false, got {resume!r}")


def _value(cfg: DictConfig, key: str, default: Any = None) -> Any:
    return cfg.get(key, default)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
