"""The command line of a job, checked before Hydra starts: flags that cannot go together, config choices
(airush's own and the user's, through `--config-dir` and `hydra.searchpath`), credentials kept out of every
text, a tracking server that answers; and Hydra's own config errors as one line."""

from __future__ import annotations

import os

from airush.config.choices import ConfigChoices
from airush.errors import ConfigError


def check_command_line(args: list[str]) -> list[str]:
    """Check a job's argv (after `airush`) and return it with credentials taken out of a tracking URI."""
    check_flags(args)
    args = take_credentials_out_of_uris(args)
    overrides = [a for a in args if not a.startswith("-") and "=" in a]
    config_choices(args).check_overrides(overrides)
    check_tracking_server(overrides)
    return args


def config_choices(args: list[str]) -> ConfigChoices:
    """The config tree this command line composes from (`--config-dir`, `hydra.searchpath=`)."""
    from hydra._internal.utils import get_args_parser

    parsed, _ = get_args_parser().parse_known_args(args)
    return ConfigChoices(parsed.config_dir, tuple(parsed.overrides))


def take_credentials_out_of_uris(args: list[str]) -> list[str]:
    """Credentials in the tracking URI go to MLflow's variables before Hydra starts, so no config, log or
    run name can show them: from a `mlflow.tracking_uri=` override when there is one (the URI runs use,
    and the credentials for it), else from MLFLOW_TRACKING_URI. A database URI keeps its user, and its
    password becomes an interpolation of an environment variable (`tracking.store.hide_database_password`)."""
    from airush.tracking.store import hide_database_password, use_credentials

    args = list(args)
    for i, arg in enumerate(args):
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") == "mlflow.tracking_uri":
            quote = value[:1] if len(value) > 1 and value[:1] in "'\"" and value[-1:] == value[:1] else ""
            bare = hide_database_password(use_credentials(value[1:-1] if quote else value))
            args[i] = f"{key}={quote}{bare}{quote}"
            return args
    if os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = use_credentials(os.environ["MLFLOW_TRACKING_URI"])
    return args


def check_flags(args: list[str]) -> None:
    """Flag combinations Hydra would answer with a traceback, read by Hydra's own argument parser."""
    from hydra._internal.utils import get_args_parser

    parsed, _ = get_args_parser().parse_known_args(args)
    given = {
        "--run": parsed.run,
        "--multirun": parsed.multirun,
        "--cfg": parsed.cfg,
        "--info": parsed.info,
        "--shell-completion": parsed.shell_completion,
    }
    modes = [flag for flag, value in given.items() if value]
    if len(modes) > 1:
        raise ConfigError(
            f"{' and '.join(modes)} cannot go together: -m runs a sweep, --cfg/--info only show a config "
            "(drop -m to see one job's config, with one value per key)"
        )


def check_tracking_server(overrides: list[str]) -> None:
    """A tracking server that does not answer stops a run or a whole sweep before anything starts (Hydra would
    only warn if a sweep callback raised)."""
    from airush.tracking.store import check_server_reachable

    uri = next((o.split("=", 1)[1] for o in overrides if o.startswith("mlflow.tracking_uri=")), None)
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        check_server_reachable(uri)


def hydra_error_line(err: Exception) -> str | None:
    """One line for a Hydra/OmegaConf config error, None for anything else (a bug: keep the traceback)."""
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err, MissingConfigException) and err.options:
        group = (err.missing_cfg_file or "").rsplit("/", 1)[0] or "config"
        return f"unknown {err.missing_cfg_file}; {group} choices: {', '.join(err.options)}"
    if isinstance(err, HydraException | OmegaConfBaseException):
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        cause = err.__cause__
        if isinstance(cause, OmegaConfBaseException):
            lines.append(str(cause).splitlines()[0])
        return "config error: " + "; ".join(line for line in lines if not line.startswith("full_key"))
    return None
