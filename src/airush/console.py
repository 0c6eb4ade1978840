"""Everything airush prints: config summary at start, progress bars per stage, results table at the end.

Each of those also goes, as plain lines, to the run's log (`airush.log` in the run dir, logged with the run):
the config, every stage with its count and time, every metric at full precision, every warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table


def console() -> Console:
    """The shared console: progress bars and RichHandler log lines interleave cleanly on it."""
    from rich import get_console

    return get_console()


def print_config_summary(rows: Iterable[tuple[str, Any]]) -> None:
    table = Table(title="airush", show_header=False, box=None, title_justify="left", padding=(0, 2))
    table.add_column(style="bold cyan")
    table.add_column()
    for key, value in rows:
        table.add_row(key, str(value))
        run_log().info("%s: %s", key, value)
    console().print(table)


class Stages:
    """Progress bars for a run's stages (generate, features, train, evaluate)."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console(),
        )

    def __enter__(self) -> Stages:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()
        for task in self._progress.tasks:
            run_log().info(
                "%s: %d/%d in %.2f s",
                task.description,
                task.completed,
                task.total or 0,
                task.finished_time or task.elapsed or 0.0,
            )

    def stage(self, description: str, total: int) -> StageBar:
        """Start a bar for one stage; the code doing the work advances it."""
        run_log().info("%s: 0/%d", description, total or 0)
        return StageBar(self._progress, self._progress.add_task(description, total=total))


PROGRESS_LOG_EVERY_S = (
    5.0  # a long stage's progress in the run's log (what `airush ps` shows), at most this often
)


class StageBar:
    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        import time

        self._progress, self._task_id = progress, task_id
        self._clock = time.monotonic
        self._logged_at = self._clock()

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task_id, n)
        if self._clock() - self._logged_at >= PROGRESS_LOG_EVERY_S:
            self._logged_at = self._clock()
            task = next(t for t in self._progress.tasks if t.id == self._task_id)
            run_log().info(
                "%s: %d/%d (%.1f s)", task.description, task.completed, task.total or 0, task.elapsed or 0
            )

    def done(self) -> None:
        """Fill the bar (e.g. training stopped early)."""
        task = next(t for t in self._progress.tasks if t.id == self._task_id)
        self._progress.update(self._task_id, completed=task.total)


def print_results(title: str, metrics: dict[str, float], footer: Iterable[tuple[str, str]]) -> None:
    """Metrics as a table: `name_at_K` metrics as a name x K grid, the rest one per row."""
    out = console()
    out.print(results_table(title, metrics))
    log = run_log()
    log.info("%s", title)
    for key, value in footer:
        out.print(f"[bold]{key}:[/bold] {value}", soft_wrap=True, highlight=False)
        log.info("%s: %s", key, value)


def log_metrics(metrics: dict[str, float]) -> None:
    """Every metric at full precision in the run's log (called while the run is open, so its logged copy
    has them)."""
    log = run_log()
    for name, value in metrics.items():
        log.info("metric %s = %r", name, value)


def results_table(title: str, metrics: dict[str, float]) -> Table:
    grid: dict[str, dict[int, float]] = {}
    single: dict[str, float] = {}
    for name, value in metrics.items():
        base, sep, k = name.rpartition("_at_")
        if sep and k.isdigit():
            grid.setdefault(base, {})[int(k)] = value
        else:
            single[name] = value
    ks = sorted({k for by_k in grid.values() for k in by_k})
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold")
    for k in ks or [None]:
        table.add_column(f"@{k}" if k is not None else "value", justify="right")
    for base, by_k in grid.items():
        table.add_row(base, *(_fmt(by_k.get(k)) for k in ks))
    for name, value in single.items():
        table.add_row(name, _fmt(value), *[""] * (max(len(ks), 1) - 1))
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return (
            f"{value:.0f}" if value.is_integer() and abs(value) > 1 else f"{value:.4f}"
        )  # counts, not rates
    return str(value)


def warn(message: str) -> None:
    """A warning line on stderr that stays readable between progress bars."""
    import sys

    print(f"airush: warning: {message}", file=sys.stderr)
    run_log().warning("%s", message)


RUN_LOG = "airush.run"


def run_log() -> logging.Logger:
    """The run's own log: the log files the root logger writes (Hydra's `<run dir>/airush.log`), never the
    terminal (what goes there is printed above)."""
    log = logging.getLogger(RUN_LOG)
    log.propagate = False
    log.setLevel(logging.INFO)
    own = [h for h in log.handlers if getattr(h, "airush_run_log", False)]
    log.handlers = own or [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    return log


@contextmanager
def run_log_in(run_dir: Path) -> Iterator[None]:
    """Without a Hydra job (the Python API, `reproduce`), the run's log is `<run dir>/airush.log` too."""
    if any(isinstance(h, logging.FileHandler) for h in logging.getLogger().handlers):
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "airush.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    handler.airush_run_log = True  # type: ignore[attr-defined]
    log = logging.getLogger(RUN_LOG)
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()
