"""`airush stop RUN`: end a running run. Its process on this machine gets SIGTERM, which airush handles like
Ctrl-C (the run ends KILLED with its log, a sweep's parent too); one that has not exited after `--timeout`
seconds is killed, and a run whose process is gone is recorded KILLED here (tag `airush.dead`). The process
runs whatever else it was launched for: stopping a job of a sweep run in one process stops that sweep.
"""

from __future__ import annotations

import os
import signal
import time

from airush.errors import UserError
from airush.records.logs import process_alive
from airush.records.ps import state
from airush.records.runs import OneLineParser, default_tracking_uri, experiments, reading, store_error


def main(argv: list[str]) -> int:
    from airush.records.compare import resolve_run

    parser = OneLineParser(prog="airush stop", description="End a running run: it is recorded KILLED.")
    parser.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix of it")
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="seconds to wait before SIGKILL (default 30)"
    )
    parser.add_tracking_uri()
    args = parser.parse_args(argv)
    uri = args.tracking_uri or default_tracking_uri()
    with reading(uri) as reader:
        run = resolve_run(reader, args.run_id, list(experiments(reader, None)))
    run_id, tags = run.info.run_id, run.data.tags
    if run.info.status != "RUNNING":
        raise UserError(f"run {run_id} is not running: it ended {run.info.status}")
    where = state(run)
    host, pid = tags.get("airush.host", "?"), tags.get("airush.pid", "?")
    if where == "other host":
        raise UserError(
            f"run {run_id} runs on host {host} (pid {pid}): stop it there with `airush stop {run_id}`"
        )
    how = "its process was already gone"
    if where == "alive":
        how = end_process(run, int(pid), args.timeout)
    status = record_killed(uri, run_id)
    print(f"airush: run {run_id} {status} (pid {pid} on {host}: {how})")
    return 0


def end_process(run, pid: int, timeout_s: float) -> str:
    """SIGTERM, then SIGKILL after `timeout_s`; how it ended."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "its process was already gone"
    except PermissionError:
        raise UserError(f"cannot signal pid {pid} of run {run.info.run_id}: not your process") from None
    if wait_gone(run, timeout_s):
        return "stopped by SIGTERM"
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped by SIGTERM"
    wait_gone(run, 10.0)
    return f"killed (SIGKILL) after {timeout_s:g} s"


def wait_gone(run, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while process_alive(run):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def record_killed(uri: str, run_id: str) -> str:
    """The run's status once its process is gone: what the process recorded (KILLED on SIGTERM), else KILLED
    recorded here (a process killed before it could, or one that was already gone)."""
    with reading(uri) as reader:
        ended = reader.get_run(run_id)
    if ended is not None and ended.info.status != "RUNNING":
        return f"ended {ended.info.status}"  # the process recorded it: no need to load MLflow
    from mlflow.exceptions import MlflowException

    from airush.records.runs import open_store
    from airush.tracking.store import mark_dead

    client = open_store(uri)
    try:
        status = client.get_run(run_id).info.status
        if status == "RUNNING":
            mark_dead(client, run_id)
            status = "KILLED"
    except MlflowException as err:
        raise store_error(uri, err) from None
    return f"ended {status}"
