"""OmegaConf resolvers airush's configs use, registered by whoever composes them (the CLI, `airush.compose`)."""

from __future__ import annotations

import os


def register() -> None:
    from omegaconf import OmegaConf

    # Run dirs carry the pid so two jobs started in the same microsecond still get their own dir; cached in
    # the config, so parallel sweep workers (joblib, submitit) resolve the launching process's sweep dir.
    OmegaConf.register_new_resolver("airush.pid", lambda: os.getpid(), replace=True, use_cache=True)
