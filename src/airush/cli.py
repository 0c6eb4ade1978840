"""`airush`: compose the config with Hydra and hand it to `run`; user mistakes become one line and exit 2."""

from __future__ import annotations

import os
import signal
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from airush.errors import UserError

# Run dirs carry the pid so two jobs started in the same microsecond still get their own dir; cached in the
# config, so parallel sweep workers (joblib, submitit) resolve the launching process's sweep dir.
OmegaConf.register_new_resolver("airush.pid", lambda: os.getpid(), replace=True, use_cache=True)


# `airush <subcommand> ...`: views and actions on recorded runs; anything else is a Hydra job.
SUBCOMMANDS = {
    "leaderboard": "airush.leaderboard",
    "compare": "airush.compare",
    "reproduce": "airush.reproduce",
    "register": "airush.registry",
}


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from airush.run import run, sweep_objective
    from airush.sweeps import job_failed

    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        return sweep_objective(cfg, run(cfg))
    except UserError as err:
        if multirun:
            return job_failed(err, cfg)  # the sweep goes on and names this job at the end
        _fail(str(err))  # exit here, before Hydra adds its own "Error executing job" line
        raise
    except Exception as err:
        if multirun:
            return job_failed(err, cfg)
        _fail_if_store_lost(err)  # before Hydra's "Error executing job" lines
        raise
    finally:
        from airush.devices import release_devices

        release_devices()  # this job's GPUs, for the sweep's next job (a worker may run several)


class Terminated(KeyboardInterrupt):
    """SIGTERM (scancel, docker stop, a CI timeout): ends runs KILLED, as Ctrl-C does."""


def _terminate(signum, frame) -> None:
    raise Terminated


def main() -> None:
    # We report errors ourselves: Hydra's traceback-stripping printer would exit 1 with several lines.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    # MLflow's INFO lines (DB migrations, "View run at") would break up our console; warnings still show.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # A tracking server that goes away mid-run: give up after ~15 s of retries, not MLflow's ~9 minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "4")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
            import importlib

            command = importlib.import_module(SUBCOMMANDS[sys.argv[1]])
            sys.exit(command.main(sys.argv[2:]))
        if {"--help", "-h"} & set(sys.argv[1:]):
            from airush.help import help_text

            sys.stdout.write(help_text())
            return
        from airush.choices import check_overrides

        check_flags(sys.argv[1:])
        take_credentials_out_of_uris()
        overrides = [a for a in sys.argv[1:] if not a.startswith("-") and "=" in a]
        check_overrides(overrides)
        check_tracking_server(overrides)
        hydra_main()
        _exit_if_jobs_failed()
    except UserError as err:
        if "airush.sweeps" in sys.modules:  # a sweeper that gave up: its parent runs still end
            sys.modules["airush.sweeps"].end_active_sweep(interrupted=False)
        _fail(str(err), err.exit_code)
    except KeyboardInterrupt as err:
        from airush.sweeps import end_active_sweep

        for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        end_active_sweep(interrupted=True)
        terminated = isinstance(err, Terminated)
        print(f"airush: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        sys.exit(143 if terminated else 130)
    except BrokenPipeError:  # `airush --help | head`
        sys.stderr.close()
    except Exception as err:
        _fail_if_store_lost(err)
        message = hydra_error_line(err)
        if message is None:
            raise
        _fail(message)


def _fail_if_store_lost(err: BaseException) -> None:
    """The tracking store failed mid-run (server gone, database unusable): one line, exit 1. Other MLflow
    errors are bugs of ours and keep their traceback."""
    from airush.tracking import error_line, store_failure

    if store_failure(err):
        print(f"airush: error: MLflow tracking store failed: {error_line(err)}", file=sys.stderr)
        sys.exit(1)


def take_credentials_out_of_uris() -> None:
    """Credentials in the tracking URI go to MLflow's variables before Hydra starts, so no config, log or
    run name can show them: from a `mlflow.tracking_uri=` override when there is one (the URI runs use,
    and the credentials for it), else from MLFLOW_TRACKING_URI."""
    from airush.tracking import use_credentials

    for i, arg in enumerate(sys.argv[1:], start=1):
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") == "mlflow.tracking_uri":
            quote = value[:1] if len(value) > 1 and value[:1] in "'\"" and value[-1:] == value[:1] else ""
            bare = use_credentials(value[1:-1] if quote else value)
            sys.argv[i] = f"{key}={quote}{bare}{quote}"
            return
    if os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = use_credentials(os.environ["MLFLOW_TRACKING_URI"])


def check_flags(args: list[str]) -> None:
    """Flag combinations Hydra would answer with a traceback, read by Hydra's own argument parser."""
    from hydra._internal.utils import get_args_parser

    from airush.errors import ConfigError

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
    from airush.tracking import check_server_reachable

    uri = next((o.split("=", 1)[1] for o in overrides if o.startswith("mlflow.tracking_uri=")), None)
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        check_server_reachable(uri)


# Config choices that come with an optional install (pyproject's extras).
OPTIONAL_EXTRAS = {"hydra/launcher/ray": "pip install -e '.[ray]'"}


def hydra_error_line(err: Exception) -> str | None:
    """One line for a Hydra/OmegaConf config error, None for anything else (a bug: keep the traceback)."""
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err, MissingConfigException) and err.options:
        group = (err.missing_cfg_file or "").rsplit("/", 1)[0] or "config"
        hint = OPTIONAL_EXTRAS.get(err.missing_cfg_file or "")
        hint = f" ({err.missing_cfg_file.rsplit('/', 1)[1]} needs the optional extra: {hint})" if hint else ""
        return f"unknown {err.missing_cfg_file}; {group} choices: {', '.join(err.options)}{hint}"
    if isinstance(err, HydraException | OmegaConfBaseException):
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        cause = err.__cause__
        if isinstance(cause, OmegaConfBaseException):
            lines.append(str(cause).splitlines()[0])
        return "config error: " + "; ".join(line for line in lines if not line.startswith("full_key"))
    return None


def _exit_if_jobs_failed() -> None:
    """After a sweep in which some jobs raised: name them and exit 1 (the others ran and are recorded)."""
    if "airush.sweeps" not in sys.modules:
        return
    failed = sys.modules["airush.sweeps"].failed_jobs
    if failed:
        from airush.tracking import redact_text

        jobs = "; ".join(f"#{job['num']} ({job['overrides']}): {job['error']}" for job in failed)
        print(f"airush: error: {len(failed)} sweep job(s) failed: {redact_text(jobs)}", file=sys.stderr)
        sys.exit(1)


def _fail(message: str, code: int = 2) -> None:
    print(f"airush: error: {message}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
