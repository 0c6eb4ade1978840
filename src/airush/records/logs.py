"""`airush logs RUN [-f]`: a run's log (`<run dir>/airush.log`); `-f` follows it until the run ends.

The log is read from the run dir when it is on this machine; otherwise from the copy logged with the run when
it ended (artifact `airush.log`).
"""

from __future__ import annotations

import shutil
import sys
import time

from airush.errors import UserError
from airush.records.ps import LOG_NAME, log_path, state
from airush.records.runs import OneLineParser, default_tracking_uri, experiments, reading

POLL_S = 0.2  # how often -f looks for new lines
STATUS_EVERY_S = 1.0  # how often -f asks the store whether the run ended
GRACE_S = 5.0  # after the run ends, how long -f waits for its last lines (the results table comes after)


def main(argv: list[str]) -> int:
    from airush.records.compare import resolve_run

    parser = OneLineParser(
        prog="airush logs", description="Print a run's log; -f follows it until the run ends."
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix of it")
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new lines until the run ends"
    )
    parser.add_tracking_uri()
    args = parser.parse_args(argv)
    uri = args.tracking_uri or default_tracking_uri()
    with reading(uri) as reader:
        run = resolve_run(reader, args.run_id, list(experiments(reader, None)))
        path = log_path(run)
        if path is None:
            return print_logged_copy(uri, run, args.follow)
        if not args.follow:
            with open(path, "rb") as log:
                shutil.copyfileobj(log, sys.stdout.buffer)
            sys.stdout.flush()
            return 0
        return follow(reader, run, path)


def follow(reader, run, path) -> int:
    """Print the log as it grows until the run is no longer RUNNING (then its last lines) or its process is
    gone; Ctrl-C stops following (exit 130), never the run."""
    out = sys.stdout.buffer
    ended_at = None
    checked_at = 0.0
    try:
        with open(path, "rb") as log:
            while True:
                chunk = log.read()
                if chunk:
                    out.write(chunk)
                    out.flush()
                    continue
                now = time.monotonic()
                if ended_at is not None and (now - ended_at > GRACE_S or not process_alive(run)):
                    print(f"airush logs: run {run.info.run_id} ended {run.info.status}", file=sys.stderr)
                    return 0
                if ended_at is None and now - checked_at >= STATUS_EVERY_S:
                    checked_at = now
                    run = reader.get_run(run.info.run_id) or run
                    if run.info.status != "RUNNING":
                        ended_at = now
                    elif state(run) == "dead":
                        print(
                            f"airush logs: run {run.info.run_id} is RUNNING in MLflow but its process is gone "
                            "(`airush stop` records it KILLED)",
                            file=sys.stderr,
                        )
                        return 1
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        return 130


def process_alive(run) -> bool:
    """This machine's process of a run still runs (a sweep's process outlives its jobs' runs); one that has
    exited but not been waited for by its parent (a zombie) does not (`process_start_time`)."""
    from airush.tracking.run_record import process_start_time

    try:
        pid = int(run.data.tags.get("airush.pid", ""))
    except ValueError:
        return False
    started = process_start_time(pid)
    return started is not None and started <= run.info.start_time / 1000 + 1.0


def print_logged_copy(uri: str, run, follow: bool) -> int:
    """The log logged with the run when it ended (its run dir is on another machine, or gone)."""
    run_id, host = run.info.run_id, run.data.tags.get("airush.host", "?")
    if run.info.status == "RUNNING":
        where = f"on host {host}" if state(run) == "other host" else "nowhere: its run dir is gone"
        raise UserError(f"run {run_id} is running {where}; its log is logged with it when it ends")
    from mlflow.exceptions import MlflowException

    from airush.records.runs import open_store

    client = open_store(uri)
    try:
        text = client.download_artifacts(run_id, LOG_NAME)
    except (MlflowException, OSError) as err:  # the run logged no log, or the store refused
        raise UserError(
            f"run {run_id} has no log here: its run dir is not on this machine and it logged no {LOG_NAME} "
            f"({type(err).__name__})"
        ) from None
    with open(text, "rb") as log:
        shutil.copyfileobj(log, sys.stdout.buffer)
    sys.stdout.flush()
    if follow:
        print(f"airush logs: run {run_id} ended {run.info.status}", file=sys.stderr)
    return 0
