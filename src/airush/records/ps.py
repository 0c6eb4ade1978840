"""`airush ps`: the runs that are RUNNING in the store: where (host, pid), for how long, and the last line of
their log (`<run dir>/airush.log`, whose stages log their progress every few seconds).

A RUNNING run whose process is gone (SIGKILL, reboot) is shown as dead; runs on other hosts cannot be checked
from here. Also what `airush logs` and `airush stop` share: a run's log file and whether its process is this
machine's and alive.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

from airush.records.runs import (
    OneLineParser,
    default_tracking_uri,
    experiments,
    model_of,
    reading,
    task_of,
)

LOG_NAME = "airush.log"  # Hydra's job log (conf/hydra/default.yaml: job.name), also `console.run_log_in`'s


def main(argv: list[str]) -> int:
    parser = OneLineParser(
        prog="airush ps",
        description="Running airush runs: host, pid, age and the last line of their log.",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_tracking_uri()
    args = parser.parse_args(argv)
    uri = args.tracking_uri or default_tracking_uri()
    with reading(uri) as reader:
        names = experiments(reader, None)
        running = reader.runs(names, status="RUNNING")
    rows = [row(run, names) for run in running]
    if args.format == "json":
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return 0
    print_rows(rows)
    return 0


def row(run, names: dict[str, str]) -> dict[str, str | int | None]:
    tags = run.data.tags
    return {
        "run_id": run.info.run_id,
        "task": task_of(run) or "?",
        "model": model_of(run),
        "experiment": names.get(run.info.experiment_id, run.info.experiment_id),
        "host": tags.get("airush.host", "?"),
        "pid": tags.get("airush.pid", "?"),
        "age_s": int(time.time() - run.info.start_time / 1000) if run.info.start_time else None,
        "state": state(run),
        "last_line": last_line(log_path(run)),
    }


def print_rows(rows: list[dict]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from airush.console import console

    out = console()
    if not rows:
        out.print("no running airush runs", highlight=False)
        return
    table = Table()
    for name, justify in [("run", "left"), ("task", "left"), ("model", "left"), ("host", "left")]:
        table.add_column(name, justify=justify)
    table.add_column("pid", justify="right")
    table.add_column("age", justify="right")
    table.add_column("state")
    table.add_column("last log line", overflow="fold")
    for r in rows:
        state_text = {"dead": "[red]dead[/red]", "other host": "[dim]other host[/dim]"}.get(
            r["state"], r["state"]
        )
        cells = [r["run_id"][:8], r["task"], r["model"], r["host"], str(r["pid"]), age_text(r["age_s"])]
        table.add_row(*map(escape, cells), state_text, escape(r["last_line"] or "—"))
    out.print(table)
    if any(r["state"] == "dead" for r in rows):
        out.print("dead: the process is gone; `airush stop RUN` records the run KILLED", highlight=False)


def state(run) -> str:
    """alive (this host, its process runs), dead (this host, its process is gone) or other host."""
    from airush.tracking.run_record import run_is_dead

    if run.data.tags.get("airush.host") != socket.gethostname() or "airush.pid" not in run.data.tags:
        return "other host"
    return "dead" if run_is_dead(run) else "alive"


def log_path(run) -> Path | None:
    """The run's log in its run dir (tag `airush.run_dir`), when it is on this machine."""
    run_dir = run.data.tags.get("airush.run_dir")
    if not run_dir or run.data.tags.get("airush.host", socket.gethostname()) != socket.gethostname():
        return None
    path = Path(run_dir) / LOG_NAME
    return path if path.is_file() else None


def last_line(path: Path | None, max_bytes: int = 8192) -> str | None:
    """The log's last line, without the `[time][logger][LEVEL] - ` prefix."""
    if path is None:
        return None
    try:
        with open(path, "rb") as log:
            log.seek(0, 2)
            log.seek(max(0, log.tell() - max_bytes))
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    text = next((line for line in reversed(lines) if line.strip()), "")
    return text.split("] - ", 1)[1] if "] - " in text else text


def age_text(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(seconds, 0)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
