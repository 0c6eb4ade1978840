"""How `airush leaderboard` shows its tables: rich tables in a terminal, or CSV; the dead runs' rows."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from airush.records.runs import model_of, task_of

# A decimal with 5+ digits after the point after `key=` (Optuna's 0.012345678901234567), up to a space.
_LONG_DECIMAL = re.compile(r"(?<==)-?\d*\.\d{5,}(?:e[-+]?\d+)?(?=\s|$)")


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def compact(params: str) -> str:
    """`key=value ...` with long decimals at 4 significant digits, for the table (csv/json keep them whole)."""
    return _LONG_DECIMAL.sub(lambda m: f"{float(m.group()):.4g}", params)


def print_tables(
    tables: list[dict[str, Any]], headline: dict[str, tuple[str, ...]], message: str | None = None
) -> None:
    """One rich table per task and data setup, titled with both; `headline`: per task, the metrics shown next
    to the ranking one; `message`: why there is nothing to show."""
    from rich.markup import escape
    from rich.table import Table

    from airush.console import console

    out = console()
    if message:
        out.print(message, highlight=False)
    for board in tables:
        rows, metric = board["rows"], board["metric"]
        if not rows:
            out.print(f"{board['task']}: no finished run reports {metric}", highlight=False)
            continue
        direction = "higher" if board["higher_is_better"] else "lower"
        data = board["data"] + (f" ({compact(board['data_params'])})" if board["data_params"] else "")
        # a line of its own, not the table's title: a title wraps at the table's width
        out.print(
            f"{board['task']} · {data} · by {metric} ({direction} is better)", highlight=False, markup=False
        )
        table = Table()
        shown = [k for k in headline.get(board["task"], ()) if k in rows[0]]
        for name, justify in [
            ("#", "right"),
            ("run", "left"),
            ("model", "left"),
            ("key params", "left"),
            (f"{metric} ± std (n)", "right"),
            *[(name, "right") for name in shown],
            ("date", "left"),
        ]:
            table.add_column(name, justify=justify, overflow="fold")
        for row in rows:
            spread = f" ± {row['std']:.4f}" if row["std"] is not None else ""
            table.add_row(
                str(row["rank"]),
                row["run_id"][:8],
                row["model"],
                escape(compact(row["key_params"])) or "defaults",
                f"[bold]{row['mean']:.4f}[/bold]{spread} ({row['n']})",
                *[fmt(row[name]) for name in shown],
                row["date"],
            )
        out.print(table)


def print_footer(n_alive: int, dead: list[dict[str, str]], failed: int, show_dead: bool) -> None:
    """Counts of running (alive / dead) and failed runs; with `show_dead`, the dead runs' rows."""
    from rich.table import Table

    from airush.console import console

    out = console()
    parts = []
    if n_alive or dead:
        hint = "" if show_dead else "; --show-dead lists them"
        parts.append(
            f"running: {n_alive + len(dead)}" + (f" ({len(dead)} dead: process gone{hint})" if dead else "")
        )
    if failed:
        parts.append(f"failed or killed: {failed} (not ranked)")
    if parts:
        out.print(" · ".join(parts), highlight=False)
    if show_dead and dead:
        table = Table(title="dead runs (RUNNING in MLflow, process gone)", title_justify="left")
        for name in dead[0]:
            table.add_column(name)
        for row in dead:
            table.add_row(*(str(v) for v in row.values()))
        out.print(table)


def write_csv(rows: list[dict[str, Any]], stream) -> None:
    """One row per leaderboard line, all tasks in one file; lists joined by spaces."""
    import csv

    fields = list(dict.fromkeys(k for row in rows for k in row)) or ["task", "rank", "run_id"]
    writer = csv.DictWriter(stream, fieldnames=fields, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: " ".join(v) if isinstance(v, list) else ("" if v is None else v) for k, v in row.items()}
        )


def date_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def dead_row(run, names: dict[str, str], task: str | None = None) -> dict[str, str]:
    """`task`: for a sweep parent, its children's."""
    tags = run.data.tags
    return {
        "run_id": run.info.run_id,
        "task": task_of(run) or task or "?",
        "model": model_of(run),
        "experiment": names.get(run.info.experiment_id, run.info.experiment_id),
        "host": tags.get("airush.host", "?"),
        "pid": tags.get("airush.pid", "?"),
        "started": date_text(run.info.start_time),
    }
