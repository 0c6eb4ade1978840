"""`airush`: compose the config with Hydra and hand it to `run`; user mistakes become one line and exit 2."""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING

from airush.config.resolvers import register
from airush.errors import UserError

if TYPE_CHECKING:
    from omegaconf import DictConfig

register()  # before Hydra composes anything


# `airush <subcommand> ...`: views and actions on recorded runs; anything else is a Hydra job.
SUBCOMMANDS = {
    "leaderboard": "airush.records.leaderboard",
    "compare": "airush.records.compare",
    "reproduce": "airush.records.reproduce",
    "register": "airush.records.registry",
    "ui": "airush.records.ui",
    "ps": "airush.records.ps",
    "logs": "airush.records.logs",
    "stop": "airush.records.stop",
    "predict": "airush.inference.predict",
    "serve": "airush.inference.serve",
    "explain": "airush.inference.explain",
    "submit": "airush.inference.submit",
    "board": "airush.inference.board_admin",
}


def hydra_main() -> None:
    """Hydra composes the config from argv and runs `job` (once per job of a sweep). Imported here, not at the
    top: `airush <subcommand>` and tab completion start without it."""
    import hydra

    hydra.main(version_base="1.3", config_path="conf", config_name="config")(job)()


def job(cfg: DictConfig) -> float | None:
    from airush.job import job_from_hydra

    job = job_from_hydra()  # the one place a job's facts are read from Hydra
    multirun = job.sweep_dir is not None
    if multirun:
        from airush.job_console import own_console, parallel_launcher

        if parallel_launcher():  # its output to its own console.log, two lines on the terminal
            from pathlib import Path

            from hydra.core.hydra_config import HydraConfig

            job_dir = Path(HydraConfig.get().runtime.output_dir)
            with own_console(job_dir, job.num, job.overrides) as ended:
                ended["metric"] = f"valid {cfg.task.get('primary_metric', 'objective')}"
                ended["objective"] = objective = _run_job(cfg, job, ended)
                return objective
    return _run_job(cfg, job)


def _run_job(cfg: DictConfig, job, ended: dict | None = None) -> float | None:
    """One job; in a sweep a failure is recorded (and noted in `ended`) and the sweep goes on."""
    from airush.data.inputs import check_inputs

    multirun = job.sweep_dir is not None
    try:
        check_inputs(cfg)  # a missing input file: one line before pandas, the task's code and MLflow load
        from airush.runner import run, sweep_objective

        return sweep_objective(cfg, run(cfg, job))
    except UserError as err:
        if multirun:
            from airush.tracking.sweeps import job_failed

            if ended is not None:
                ended["failed"] = str(err)
            return job_failed(err, cfg)  # the sweep goes on and names this job at the end
        _fail(str(err), err.exit_code)  # exit here, before Hydra adds its own "Error executing job" line
        raise
    except Exception as err:
        if multirun:
            from airush.tracking.store import error_line
            from airush.tracking.sweeps import job_failed

            if ended is not None:
                ended["failed"] = f"{type(err).__name__}: {error_line(err)}"
            return job_failed(err, cfg)
        _fail_if_store_lost(err, cfg)  # before Hydra's "Error executing job" lines
        raise
    finally:
        from airush.compute.devices import release_devices

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
        from airush.config.completion import answer_completion

        if answer_completion(sys.argv[1:], SUBCOMMANDS, hydra_main):
            return
        if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
            import importlib

            command = importlib.import_module(SUBCOMMANDS[sys.argv[1]])
            sys.exit(command.main(sys.argv[2:]))
        _refuse_unknown_command(sys.argv[1:])
        from airush.config.command_line import check_command_line, config_choices

        if {"--help", "-h"} & set(sys.argv[1:]):
            from airush.config.help import help_text

            sys.stdout.write(help_text(config_choices(sys.argv[1:])))
            return
        sys.argv[1:] = check_command_line(sys.argv[1:])
        hydra_main()
        _exit_if_jobs_failed()
    except UserError as err:
        if "airush.tracking.sweeps" in sys.modules:  # a sweeper that gave up: its parent runs still end
            sys.modules["airush.tracking.sweeps"].end_active_sweep(interrupted=False)
        _fail(str(err), err.exit_code)
    except KeyboardInterrupt as err:
        from airush.tracking.sweeps import end_active_sweep

        for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        end_active_sweep(interrupted=True)
        terminated = isinstance(err, Terminated)
        print(f"airush: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        sys.exit(143 if terminated else 130)
    except BrokenPipeError:  # `airush --help | head`
        sys.stderr.close()
    except Exception as err:
        from airush.config.command_line import hydra_error_line

        _fail_if_store_lost(err)
        message = hydra_error_line(err)
        if message is None:
            raise
        _fail(message)


def _refuse_unknown_command(args: list[str]) -> None:
    """A first word that is neither an override (`key=value`, `~key`, `+key=...`) nor an option, but close to
    a subcommand (`airush leaderbord`), is a typo: say which command was meant, not Hydra's grammar error."""
    import difflib

    if not args or args[0].startswith(("-", "+", "~")) or "=" in args[0]:
        return
    close = difflib.get_close_matches(args[0], SUBCOMMANDS, n=1, cutoff=0.6)
    meant = f"; did you mean 'airush {close[0]}'?" if close else ""
    raise UserError(
        f"unknown command '{args[0]}'{meant} (commands: {', '.join(SUBCOMMANDS)}; "
        "anything else is key=value overrides)"
    )


def _fail_if_store_lost(err: BaseException, cfg: DictConfig | None = None) -> None:
    """The machine refused (disk full, read-only, permission denied) or the tracking store failed mid-run
    (server gone, database unusable): one line, exit 1. Other errors are bugs of ours and keep their
    traceback."""
    from airush.errors import environment_error_line
    from airush.tracking.store import error_line, store_failure

    refused = environment_error_line(err, _write_places(cfg))
    if refused is not None:
        print(f"airush: error: {refused}", file=sys.stderr)
        sys.exit(1)
    if store_failure(err):
        print(f"airush: error: MLflow tracking store failed: {error_line(err)}", file=sys.stderr)
        sys.exit(1)


def _write_places(cfg: DictConfig | None) -> list[str]:
    """Where this job writes: its run dir, Hydra's output dir, the sqlite store's folder, the working dir."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from airush.tracking.store import sqlite_path

    def value(read) -> str:
        try:
            return str(read() or "")
        except Exception:  # an interpolation that cannot resolve here, a sweeper's launch: not named
            return ""

    run_dir = value(lambda: cfg is not None and OmegaConf.select(cfg, "paths.run_dir"))
    output_dir = value(lambda: HydraConfig.initialized() and HydraConfig.get().runtime.output_dir)
    uris = [value(lambda: cfg is not None and OmegaConf.select(cfg, "mlflow.tracking_uri"))]
    uris.append(os.environ.get("MLFLOW_TRACKING_URI", ""))
    stores = [str(path.parent) for uri in uris if uri.startswith("sqlite:") and (path := sqlite_path(uri))]
    return [p for p in [run_dir, output_dir, *stores, os.getcwd()] if p]


def _exit_if_jobs_failed() -> None:
    """After a sweep in which some jobs raised: name them and exit 1 (the others ran and are recorded)."""
    if "airush.tracking.sweeps" not in sys.modules:
        return
    failed = sys.modules["airush.tracking.sweeps"].failed_jobs
    if failed:
        from airush.tracking.store import redact_text

        jobs = "; ".join(f"#{job['num']} ({job['overrides']}): {job['error']}" for job in failed)
        print(f"airush: error: {len(failed)} sweep job(s) failed: {redact_text(jobs)}", file=sys.stderr)
        sys.exit(1)


def _fail(message: str, code: int = 2) -> None:
    print(f"airush: error: {message}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
