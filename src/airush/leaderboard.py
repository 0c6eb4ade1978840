"""`airush leaderboard`: the best recorded runs per task, ranked by the task's primary metric.

Runs that share a config except the seed form one group, shown as mean ± std over its seeds (one run per seed:
the latest), so a lucky seed does not top the board. By default each model keeps its best group; FAILED and
KILLED runs are left out, RUNNING ones only counted, with those whose process is gone called dead.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airush.errors import UserError
from airush.leaderboard_output import print_footer, print_tables, write_csv
from airush.store import OneLineParser, default_tracking_uri, experiments, open_store, search_all, store_error

# Fallbacks for runs recorded before the `airush.primary_metric` tag; the tag wins.
PRIMARY = {"abuse": "roc_auc", "music": "ndcg_at_10"}
HEADLINE = {"abuse": ("pr_auc", "eer"), "music": ("recall_at_10",)}
# Params that say where a run went or what its data turned out to be, not what it computes.
NOT_CONFIG_PREFIXES = ("paths.", "mlflow.", "hydra.", "dataset.")
NOT_CONFIG_KEYS = {"seed", "resume", "run_dir"}
# Overrides already shown elsewhere in a row (model and data columns, model params, the seed).
NOT_KEY_OVERRIDES = {"task", "model", "data", "seed", "lr", "resume"}
_LOWER_IS_BETTER = re.compile(r"(^|_)(eer|loss|logloss|fpr|fnr|error|rmse|mae)$")
# Counts and settings, not scores: neither value is better.
_NO_DIRECTION = re.compile(r"(^|_)(threshold|users|items|interactions|evaluated|share)$|^mean_popularity")


def direction(metric: str) -> int:
    """+1 when higher is better, -1 for EER, losses, error and false-positive rates (`recall_at_1pct_fpr` goes
    up), 0 for counts and thresholds."""
    if _NO_DIRECTION.search(metric):
        return 0
    return -1 if "_at_" not in metric and _LOWER_IS_BETTER.search(metric) else 1


def higher_is_better(metric: str) -> bool:
    return direction(metric) >= 0


def run_filter(task: str | None, tags: list[str]) -> str:
    """MLflow filter string for --task and --tag KEY=VALUE (ANDed)."""
    clauses = [f"tags.`airush.task` = '{task}'"] if task else []
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key or "`" in key:
            raise UserError(f"--tag takes KEY=VALUE (e.g. --tag git.dirty=false), got '{tag}'")
        clauses.append(f"tags.`{key}` = '{value.replace(chr(39), chr(39) * 2)}'")
    return " and ".join(clauses)


def task_of(run) -> str | None:
    return run.data.tags.get("airush.task") or run.data.params.get("task.name")


def is_sweep_parent(run) -> bool:
    return run.data.tags.get("airush.sweep") == "parent"


def data_name(run) -> str:
    """The data config a run used (`synthetic_music`), from its `data._target_` param: the conf/data option
    with that target when exactly one has it, else the module name."""
    if "airush.data" in run.data.tags:
        return run.data.tags["airush.data"]
    target = run.data.params.get("data._target_", "")
    options = _data_options_by_target().get(target, [])
    if len(options) == 1:
        return options[0]
    return target.rsplit(".", 2)[-2] if target.count(".") >= 2 else target or "?"


def _data_options_by_target() -> dict[str, list[str]]:
    from airush.choices import group_options, option_config

    out: dict[str, list[str]] = {}
    for option in group_options("data"):
        out.setdefault(str(option_config("data", option).get("_target_", "")), []).append(option)
    return out


def config_key(params: dict[str, str]) -> str:
    """A hash of what a run computes, seed aside: runs with equal keys differ only in their seed."""
    kept = {
        k: v for k, v in params.items() if k not in NOT_CONFIG_KEYS and not k.startswith(NOT_CONFIG_PREFIXES)
    }
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:12]


def seed_of(run) -> str:
    return run.data.tags.get("seed") or run.data.params.get("seed", "?")


def key_params(run) -> str:
    """What sets this config apart: the model's params that differ from its yaml defaults, then the other
    command-line overrides (data, features, task settings)."""
    from airush.choices import group_options, option_config

    model = run.data.tags.get("airush.model", "")
    defaults = option_config("model", model) if model in group_options("model") else {}
    parts = [
        f"{key[len('model.') :]}={value}"
        for key, value in sorted(run.data.params.items())
        if key.startswith("model.") and key != "model._target_"
        if not _same_value(value, defaults.get(key[len("model.") :], _MISSING))
    ]
    for override in run.data.tags.get("hydra.overrides", "").split():
        key = override.lstrip("+~").split("=", 1)[0]
        if key not in NOT_KEY_OVERRIDES and not key.startswith(("model.", "mlflow.", "hydra.", "paths.")):
            parts.append(override)
    return " ".join(parts)


_MISSING = object()


def _same_value(logged: str, default: Any) -> bool:
    """A logged param (str of the resolved value) against a yaml default; numbers compare as numbers, since
    yaml reads `1e-3` as text where the resolved config has 0.001."""
    if default is _MISSING:
        return False
    if isinstance(default, list):
        return logged == json.dumps(default)
    if isinstance(default, bool) or default is None:
        return logged == str(default)
    try:
        return float(logged) == float(default)
    except (TypeError, ValueError):
        return logged == str(default)


def metric_value(run, metric: str) -> float | None:
    value = run.data.metrics.get(metric)
    return None if value is None or math.isnan(value) else float(value)


@dataclass
class Group:
    """Runs with one config, one per seed (the latest), that all report the ranking metric."""

    task: str
    model: str
    data: str
    metric: str
    runs: list = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [metric_value(r, self.metric) for r in self.runs]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (ddof=1); None for a single seed."""
        return statistics.stdev(self.values) if len(self.runs) > 1 else None

    @property
    def best_run(self):
        sign = 1 if higher_is_better(self.metric) else -1
        return max(self.runs, key=lambda r: sign * metric_value(r, self.metric))

    @property
    def latest_start_ms(self) -> int:
        return max(r.info.start_time for r in self.runs)

    def mean_of(self, metric: str) -> float | None:
        values = [v for r in self.runs if (v := metric_value(r, metric)) is not None]
        return statistics.fmean(values) if values else None


def group_runs(runs: Iterable, metric: str) -> list[Group]:
    """Finished runs reporting `metric` -> groups by (task, config without seed); per seed the latest run."""
    by_config: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        if run.info.status != "FINISHED" or is_sweep_parent(run) or metric_value(run, metric) is None:
            continue
        seeds = by_config.setdefault((task_of(run) or "?", config_key(run.data.params)), {})
        seed = seed_of(run)
        if seed not in seeds or run.info.start_time > seeds[seed].info.start_time:
            seeds[seed] = run
    groups = []
    for (task, _), seeds in by_config.items():
        first = next(iter(seeds.values()))
        model = first.data.tags.get("airush.model", "?")
        groups.append(Group(task, model, data_name(first), metric, sorted(seeds.values(), key=seed_of)))
    return groups


def rank_groups(groups: list[Group], best_per_model: bool = True) -> list[Group]:
    """Best first by the metric's direction (ties: more seeds, then newer); optionally one group per model."""
    sign = 1 if not groups or higher_is_better(groups[0].metric) else -1
    ranked = sorted(groups, key=lambda g: (-sign * g.mean, -len(g.runs), -g.latest_start_ms))
    if not best_per_model:
        return ranked
    seen: set[tuple[str, str]] = set()
    out = []
    for group in ranked:
        if (group.task, group.model) not in seen:
            seen.add((group.task, group.model))
            out.append(group)
    return out


def board_rows(groups: list[Group], experiment_names: dict[str, str]) -> list[dict[str, Any]]:
    """Ranked groups as plain rows (what --format csv/json prints and the table shows); `run_id` is the best
    seed's run, `date` the group's latest start."""
    rows = []
    for rank, group in enumerate(groups, 1):
        best = group.best_run
        row = {
            "task": group.task,
            "rank": rank,
            "run_id": best.info.run_id,
            "model": group.model,
            "data": group.data,
            "key_params": key_params(best),
            "metric": group.metric,
            "mean": group.mean,
            "std": group.std,
            "n": len(group.runs),
            "seeds": [seed_of(r) for r in group.runs],
            "run_ids": [r.info.run_id for r in group.runs],
        }
        for name in HEADLINE.get(group.task, ()):
            if name != group.metric:
                row[name] = group.mean_of(name)
        row["date"] = _date(group.latest_start_ms)
        row["experiment"] = experiment_names.get(best.info.experiment_id, best.info.experiment_id)
        rows.append(row)
    return rows


def running_runs(runs: Iterable) -> tuple[list, list]:
    """(alive, dead) among RUNNING runs: dead ones have lost their process (SIGKILL, reboot)."""
    from airush.tracking import run_is_dead

    alive, dead = [], []
    for run in runs:
        if run.info.status == "RUNNING" and not is_sweep_parent(run):
            (dead if run_is_dead(run) else alive).append(run)
    return alive, dead


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="airush leaderboard",
        description="Best recorded runs per task, mean ± std over seeds, ranked by the primary metric.",
    )
    parser.add_argument("--task", choices=sorted(PRIMARY), help="one task (default: a table per task)")
    parser.add_argument("--experiment", nargs="+", metavar="NAME", help="MLflow experiments (default: all)")
    parser.add_argument("--data", metavar="NAME", help="data config, e.g. synthetic_music or lastfm")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    parser.add_argument("--metric", help="rank by this metric (default: the task's primary metric)")
    parser.add_argument("--all", action="store_true", help="every config, not only each model's best")
    parser.add_argument("--top", type=_positive, metavar="N", help="at most N rows per task")
    parser.add_argument("--show-dead", action="store_true", help="list RUNNING runs whose process is gone")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument(
        "--tracking-uri", help="default: MLFLOW_TRACKING_URI or sqlite:///./outputs/mlflow.db"
    )
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got '{text}'")
    return int(text)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    uri = args.tracking_uri or default_tracking_uri()
    client = open_store(uri)
    from mlflow.exceptions import MlflowException

    try:
        names = experiments(client, args.experiment)
        runs = search_all(client, names, run_filter(args.task, args.tag))
    except MlflowException as err:
        raise store_error(uri, err) from None
    runs = [r for r in runs if task_of(r) and not is_sweep_parent(r)]
    if args.data:
        runs = [r for r in runs if args.data in (data_name(r), r.data.params.get("data._target_"))]

    tables = []
    for task in [args.task] if args.task else sorted({task_of(r) for r in runs}):
        task_runs = [r for r in runs if task_of(r) == task]
        metric = args.metric or _primary_metric(task, task_runs)
        groups = rank_groups(group_runs(task_runs, metric), best_per_model=not args.all)
        rows = board_rows(groups[: args.top] if args.top else groups, names)
        tables.append(
            {"task": task, "metric": metric, "higher_is_better": higher_is_better(metric), "rows": rows}
        )
    if args.metric and runs and not any(t["rows"] for t in tables):
        recorded = sorted({m for r in runs for m in r.data.metrics})
        raise UserError(f"no finished run has metric '{args.metric}'; recorded: {', '.join(recorded)}")
    alive, dead = running_runs(runs)
    failed = sum(r.info.status in ("FAILED", "KILLED") for r in runs)

    if args.format == "json":
        payload = {
            "tables": tables,
            "running": len(alive) + len(dead),
            "dead": [dead_row(r, names) for r in dead],
            "failed_or_killed": failed,
        }
        sys.stdout.write(json.dumps(payload, indent=1) + "\n")
    elif args.format == "csv":
        write_csv([row for t in tables for row in t["rows"]], sys.stdout)
    else:
        print_tables(tables, uri, HEADLINE)
        print_footer(len(alive), [dead_row(r, names) for r in dead], failed, args.show_dead)
    return 0


def _primary_metric(task: str, runs: list) -> str:
    tagged = [r.data.tags["airush.primary_metric"] for r in runs if "airush.primary_metric" in r.data.tags]
    return max(set(tagged), key=tagged.count) if tagged else PRIMARY.get(task, "")


def dead_row(run, names: dict[str, str]) -> dict[str, str]:
    tags = run.data.tags
    return {
        "run_id": run.info.run_id,
        "task": task_of(run) or "?",
        "model": tags.get("airush.model", "?"),
        "experiment": names.get(run.info.experiment_id, run.info.experiment_id),
        "host": tags.get("airush.host", "?"),
        "pid": tags.get("airush.pid", "?"),
        "started": _date(run.info.start_time),
    }
