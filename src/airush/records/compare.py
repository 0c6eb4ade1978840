"""`airush compare RUN RUN [...]`: what differs between runs (config, code, data) and their metrics side by side.

Run ids may be shortened to any unique prefix (the leaderboard shows 8 characters).
"""

from __future__ import annotations

import argparse
import string
from typing import Any

from airush.errors import UserError
from airush.records.leaderboard import NOT_CONFIG_KEYS, direction
from airush.records.runs import (
    OneLineParser,
    default_tracking_uri,
    experiments,
    find_run,
    model_of,
    reading,
    seed_of,
)

# Params that only say where a run wrote; everything else that differs is shown.
NOISE_PREFIXES = ("paths.", "mlflow.", "hydra.")
PROVENANCE = ("git.commit", "git.dirty", "data.fingerprint")
RUN_ID_LENGTH = 32


def resolve_run(client, ref: str, experiment_ids: list[str]):
    """A run from its full id or a unique prefix of it; one line when there is no such run or several."""
    ref = ref.strip().lower()
    if not ref or not set(ref) <= set(string.hexdigits):
        raise UserError(f"'{ref}' is not a run id: run ids are hexadecimal (0-9, a-f)")
    if len(ref) < 4:
        raise UserError(f"run id '{ref}' is too short: give the full id or a prefix of at least 4 characters")
    found = find_run(client, ref, experiment_ids)
    if found is None and len(ref) == RUN_ID_LENGTH:
        raise UserError(f"no MLflow run '{ref}' in this store")
    if found is None:
        raise UserError(f"no MLflow run whose id starts with '{ref}'")
    return found


def differing_params(runs: list, show_all: bool = False) -> list[tuple[str, list[str | None]]]:
    """(param, value per run) for params whose values differ (a missing param counts as a value); the seed is
    in `provenance_rows`."""
    keys = sorted({k for r in runs for k in r.data.params})
    rows = []
    for key in keys:
        if key in NOT_CONFIG_KEYS or key.startswith(NOISE_PREFIXES):
            continue
        values = [r.data.params.get(key) for r in runs]
        if show_all or len(set(values)) > 1:
            rows.append((key, values))
    return rows


def metric_rows(runs: list) -> list[tuple[str, list[float | None], set[int]]]:
    """(metric, value per run, indexes of the best runs) over the union of metric names; no best when the
    values tie, only one run reports it, or the metric is a count (see `leaderboard.direction`)."""
    names = sorted({m for r in runs for m in r.data.metrics})
    rows = []
    for name in names:
        values = [r.data.metrics.get(name) for r in runs]
        present = [v for v in values if v is not None and v == v]
        best: set[int] = set()
        if len(present) > 1 and len(set(present)) > 1 and direction(name):
            target = max(present) if direction(name) > 0 else min(present)
            best = {i for i, v in enumerate(values) if v == target}
        rows.append((name, values, best))
    return rows


def provenance_rows(runs: list) -> list[tuple[str, list[str], bool]]:
    """(what, value per run, differs?) for status, model, seed, code and data identity. A RUNNING run whose
    process is gone is "RUNNING (dead)", as `airush leaderboard` calls it (sweep parents too)."""
    from airush.tracking.run_record import run_is_dead

    def status(run) -> str:
        return "RUNNING (dead)" if run_is_dead(run) else run.info.status

    rows = [("status", [status(r) for r in runs])]
    rows += [("model", [model_of(r) for r in runs])]
    rows += [("seed", [seed_of(r) for r in runs])]
    rows += [(tag, [r.data.tags.get(tag, "?") for r in runs]) for tag in PROVENANCE]
    return [(name, values, len(set(values)) > 1) for name, values in rows]


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="airush compare",
        description="Config keys that differ between runs, their code and data identity, metrics side by side.",
    )
    parser.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="two or more run ids or unique prefixes")
    parser.add_argument("--all", action="store_true", help="show every param, not only those that differ")
    parser.add_tracking_uri()
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if len(args.run_ids) < 2:
        raise UserError("airush compare: give two or more run ids")
    uri = args.tracking_uri or default_tracking_uri()
    with reading(uri) as reader:  # a local sqlite store without importing MLflow
        ids = list(experiments(reader, None))
        runs = [resolve_run(reader, ref, ids) for ref in args.run_ids]
    print_comparison(
        runs, differing_params(runs, args.all), metric_rows(runs), provenance_rows(runs), args.all
    )
    return 0


def print_comparison(
    runs: list, params: list, metrics: list, provenance: list, show_all: bool = False
) -> None:
    from rich.markup import escape
    from rich.table import Table

    from airush.console import console

    out = console()
    columns = [r.info.run_id[:8] for r in runs]

    def table(title: str, first: str) -> Table:
        t = Table(title=title, title_justify="left")
        t.add_column(first, style="bold")
        for column in columns:
            t.add_column(column, justify="right", overflow="fold")
        return t

    runs_table = table("runs", "")
    for name, values, differs in provenance:
        cells = [escape(_short(name, v)) for v in values]
        runs_table.add_row(f"{name} (differs)" if differs else name, *_marked(cells, differs))
    out.print(runs_table)
    flagged = [name for name, _, differs in provenance if differs and name in PROVENANCE[::2]]
    if flagged:
        out.print(f"[yellow]note:[/yellow] the runs differ in {' and '.join(flagged)}", highlight=False)

    if params:
        params_table = table("params" if show_all else "params that differ", "param")
        for key, values in params:
            params_table.add_row(key, *("—" if v is None else escape(v) for v in values))
        out.print(params_table)
    else:
        out.print("params: identical (paths and tracking settings aside)", highlight=False)

    metrics_table = table("metrics (best in green)", "metric")
    for name, values, best in metrics:
        metrics_table.add_row(name, *(_fmt_metric(v, i in best) for i, v in enumerate(values)))
    out.print(metrics_table)


def _short(name: str, value: str) -> str:
    return value[:12] if name in ("git.commit", "data.fingerprint") else value


def _marked(cells: list[str], differs: bool) -> list[str]:
    return [f"[yellow]{c}[/yellow]" for c in cells] if differs else cells


def _fmt_metric(value: Any, best: bool) -> str:
    if value is None:
        return "—"
    text = f"{value:.0f}" if float(value).is_integer() and abs(value) > 1 else f"{value:.4f}"
    return f"[bold green]{text}[/bold green]" if best else text
