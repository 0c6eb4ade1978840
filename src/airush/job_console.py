"""Jobs of a parallel sweep (`hydra/launcher=joblib` with n_jobs > 1, Ray) each write to their own log.

Several jobs printing progress bars and tables to one terminal interleave into an unreadable mix (a table's
title overwritten by another job's bar). So in a parallel sweep a job's whole output (its file descriptors 1
and 2: Python, rich, and what libraries print from C) goes to `<job dir>/console.log`, and the terminal gets
two lines per job: when it starts (its overrides) and how it ended (time, objective, where its log is). The
sweep's summary at the end is printed by the launching process, as always.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CONSOLE_LOG = "console.log"


def parallel_launcher() -> bool:
    """True inside a job that runs beside other jobs of its sweep."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False
    launcher = HydraConfig.get().launcher
    target = str(launcher.get("_target_", ""))
    if "ray" in target.lower():
        return True
    return "joblib" in target.lower() and launcher.get("n_jobs", 1) not in (1, None)


@contextmanager
def own_console(job_dir: Path, num: int, overrides: tuple[str, ...]) -> Iterator[dict]:
    """Send this process's output to `job_dir/console.log` while the job runs; a start line and an end line
    on the terminal. The yielded dict takes the job's `objective` (or `failed`) for the end line."""
    import rich

    job_dir.mkdir(parents=True, exist_ok=True)
    log_path = job_dir / CONSOLE_LOG
    ended: dict = {}
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = saved[1]
    start = time.monotonic()
    _say(terminal, f"[job {num}] started: {' '.join(overrides) or '(defaults)'}")
    log = open(log_path, "ab")  # noqa: SIM115  (closed below, after the descriptors are restored)
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        rich.reconfigure(force_terminal=False, no_color=True, width=120)
        yield ended
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        log.close()
        rich.reconfigure()
        seconds = time.monotonic() - start
        if "failed" in ended:
            outcome = f"failed after {seconds:.0f} s: {ended['failed']}"
        elif ended.get("objective") is not None:
            outcome = (
                f"finished in {seconds:.0f} s: {ended.get('metric', 'objective')} {ended['objective']:.4f}"
            )
        else:
            outcome = f"ended after {seconds:.0f} s"
        _say(terminal, f"[job {num}] {outcome} · log {log_path}")
        os.close(terminal)


def _say(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode())
