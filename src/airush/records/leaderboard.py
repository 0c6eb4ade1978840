"""`airush leaderboard`: the best recorded runs per task, ranked by the task's primary metric.

Runs that share a config except the seed form one group, shown as mean ± std over its seeds (one run per seed:
the latest), so a lucky seed does not top the board. Groups are ranked only against groups with the same data
setup (one table each): the same data and the same params that decide the test set. By default each model keeps
its best group per setup; FAILED and KILLED runs are left out, RUNNING ones (sweep parents too) only counted,
with those whose process is gone called dead. A metric averaged over fewer users than the run's
`task.min_eval_users` (a music run recorded before that check, a 0 over no users) is never ranked.
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
from typing import Any

from airush.errors import UserError
from airush.records.leaderboard_output import date_text, dead_row, print_footer, print_tables, write_csv
from airush.records.runs import (
    OneLineParser,
    data_name,
    default_tracking_uri,
    experiments,
    is_sweep_parent,
    no_match,
    reading,
    run_filters,
    seed_of,
    task_of,
)

# Fallbacks for runs recorded before the `airush.primary_metric` tag; the tag wins.
PRIMARY = {"abuse": "roc_auc", "music": "ndcg_at_10"}
HEADLINE = {"abuse": ("pr_auc", "eer"), "music": ("recall_at_10",)}
# Fallback for runs recorded before `task.min_eval_users` (its default in conf/task/music.yaml); the param wins.
MIN_EVAL_USERS = 10
# Params that are not config: what the data turned out to be (dataset.*), and the seed a row averages over
# (where a run went is left out by airush.config.identity, the one definition of "same config").
NOT_CONFIG_PREFIXES = ("dataset.",)
NOT_CONFIG_KEYS = {"seed", "run_dir"}
# Overrides already shown elsewhere in a row (model and data columns, model params, the seed), and options
# that only choose values which show as params (a search space, `reproduce`'s recorded config).
NOT_KEY_OVERRIDES = {"task", "model", "data", "seed", "lr", "resume", "hparams_search", "reproduce"}
# A data setup is the data's params and the task's; not these, which say where the data lives or change only
# training or reporting. Everything else (split, k-core filter, scope, ...) changes what the test set is.
NOT_SETUP = (
    "data.root",
    "data.cache_dir",
    "task.name",
    "task.primary_metric",
    "task.ks",
    "task.eval_batch_users",
    "task.min_eval_users",
    "task.recommend",
    "task.impostor_ratio",
)
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


def is_setup_key(key: str) -> bool:
    return key.startswith(("data.", "task.")) and not any(
        key == other or key.startswith(other + ".") for other in NOT_SETUP
    )


def data_setup(run) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(data name, its setup params): runs with equal setups are tested on the same kind of test set. The seed
    is not part of it (it also draws synthetic data), nor the data fingerprint: mean ± std is over seeds."""
    return data_name(run), tuple(sorted((k, v) for k, v in run.data.params.items() if is_setup_key(k)))


def setup_labels(task: str, setups: list[tuple[str, tuple]]) -> dict[tuple, str]:
    """Per data setup, the params that set it apart: those off the yaml defaults (conf/data/<data>.yaml,
    conf/task/<task>.yaml), and any on which setups of the same data disagree ("" for the defaults alone)."""
    from airush.records.runs import option_defaults
    from airush.tracking.run_record import flatten

    task_yaml = (option_defaults("task", task) or {}).get("task", {})
    labels = {}
    for name in {data for data, _ in setups}:
        same = [setup for setup in setups if setup[0] == name]
        params = [dict(setup[1]) for setup in same]
        data_yaml = option_defaults("data", name) or {}
        defaults = flatten({"data": data_yaml, "task": task_yaml})
        keys = {k for p in params for k, v in p.items() if k in defaults and not _same_value(v, defaults[k])}
        keys |= {k for p in params for k in p if len({other.get(k) for other in params}) > 1}
        order = {k: i for i, k in enumerate(defaults)}  # as the yaml lists them
        keys = sorted(keys, key=lambda k: (order.get(k, len(order)), k))
        for setup, p in zip(same, params, strict=True):
            labels[setup] = " ".join(f"{k}={p.get(k, '—')}" for k in keys)
    return labels


def config_key(params: dict[str, str]) -> str:
    """A hash of what a run computes, seed aside: runs with equal keys differ only in their seed."""
    from airush.config.identity import computes

    kept = {
        k: v
        for k, v in params.items()
        if computes(k) and k not in NOT_CONFIG_KEYS and not k.startswith(NOT_CONFIG_PREFIXES)
    }
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:12]


def key_params(run) -> str:
    """What sets this config apart: the model's params that differ from its yaml defaults, then the other
    command-line overrides (features, task settings) but those of the data setup, which heads the table."""
    from airush.records.runs import option_defaults

    model = run.data.tags.get("airush.model", "")
    defaults = option_defaults("model", model) or {} if model else {}
    parts = [
        f"{key[len('model.') :]}={value}"
        for key, value in sorted(run.data.params.items())
        if key.startswith("model.") and key != "model._target_"
        if not _same_value(value, defaults.get(key[len("model.") :], _MISSING))
    ]
    for override in run.data.tags.get("hydra.overrides", "").split():
        key = override.lstrip("+~").split("=", 1)[0]
        if key in NOT_KEY_OVERRIDES or is_setup_key(key):
            continue
        if not key.startswith(("model.", "mlflow.", "hydra.", "paths.")):
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
    """The run's value of `metric`; None when it has none to rank: NaN, or a mean over too few users."""
    value = run.data.metrics.get(metric)
    if value is None or math.isnan(value) or over_too_few_users(run, metric):
        return None
    return float(value)


def over_too_few_users(run, metric: str) -> bool:
    """A music metric whose recorded user count (`cold_test_users` for cold-start metrics, `users_evaluated`
    for test ones) is below the run's `task.min_eval_users` (its default for runs recorded before it)."""
    if metric.startswith("valid_"):  # valid is refused before fitting when it holds too few users
        return False
    users = run.data.metrics.get("cold_test_users" if metric.startswith("cold_") else "users_evaluated")
    if users is None:
        return False
    return users < float(run.data.params.get("task.min_eval_users", MIN_EVAL_USERS))


@dataclass
class Group:
    """Runs with one config, one per seed (the latest), that all report the ranking metric."""

    task: str
    model: str
    setup: tuple[str, tuple]  # see data_setup
    metric: str
    runs: list = field(default_factory=list)

    @property
    def data(self) -> str:
        return self.setup[0]

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
        groups.append(Group(task, model, data_setup(first), metric, sorted(seeds.values(), key=seed_of)))
    return groups


def rank_groups(groups: list[Group], best_per_model: bool = True) -> list[Group]:
    """Best first by the metric's direction (ties: more seeds, then newer); optionally one group per model.
    Give it the groups of one data setup: scores on other data do not compare."""
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


def by_setup(groups: list[Group]) -> dict[tuple, list[Group]]:
    """Groups per data setup, setups by data name, then the most recently run first."""
    out: dict[tuple, list[Group]] = {}
    for group in sorted(groups, key=lambda g: (g.data, -g.latest_start_ms)):
        out.setdefault(group.setup, []).append(group)
    return out


def board_rows(
    groups: list[Group], experiment_names: dict[str, str], data_params: str
) -> list[dict[str, Any]]:
    """Ranked groups of one data setup as plain rows (what --format csv/json prints and the table shows);
    `run_id` is the best seed's run, `date` the group's latest start, `data_params` the setup's label."""
    rows = []
    for rank, group in enumerate(groups, 1):
        best = group.best_run
        row = {
            "task": group.task,
            "rank": rank,
            "run_id": best.info.run_id,
            "model": group.model,
            "data": group.data,
            "data_params": data_params,
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
        row["date"] = date_text(group.latest_start_ms)
        row["experiment"] = experiment_names.get(best.info.experiment_id, best.info.experiment_id)
        rows.append(row)
    return rows


def running_runs(runs: Iterable) -> tuple[list, list]:
    """(alive, dead) among RUNNING runs: dead ones have lost their process (SIGKILL, reboot)."""
    from airush.tracking.run_record import run_is_dead

    alive, dead = [], []
    for run in runs:
        if run.info.status == "RUNNING":
            (dead if run_is_dead(run) else alive).append(run)
    return alive, dead


def parent_tasks(children: Iterable) -> dict[str, str]:
    """{sweep parent's run id: task} for these runs' parents; a parent records no task, data or config of its
    own, so it goes with its children through the filters."""
    return {
        r.data.tags["mlflow.parentRunId"]: task_of(r) for r in children if "mlflow.parentRunId" in r.data.tags
    }


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
    parser.add_argument("--top", type=_positive, metavar="N", help="at most N rows per table")
    parser.add_argument("--show-dead", action="store_true", help="list RUNNING runs whose process is gone")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_tracking_uri()
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got '{text}'")
    return int(text)


def main(argv: list[str]) -> int:
    if any(arg == "--board" or arg.startswith("--board=") for arg in argv):  # a board's submissions
        from airush.records import board_ranking

        return board_ranking.main(argv)
    args = _parser().parse_args(argv)
    uri = args.tracking_uri or default_tracking_uri()
    with reading(uri) as reader:  # a local sqlite store without importing MLflow
        names = experiments(reader, None)
        selected = experiments(reader, args.experiment) if args.experiment else names
        every_run = reader.runs(names)  # all of them: to say which filter matched nothing
    airush_runs = [r for r in every_run if task_of(r) and not is_sweep_parent(r)]
    filters = run_filters(selected if args.experiment else None, args.task, args.data, args.tag)
    runs = [r for r in airush_runs if all(keep(r) for _, keep in filters)]
    if not airush_runs:
        from airush.tracking.store import redact_uri

        message = f"no airush runs in {redact_uri(uri)} yet"
    else:
        message = None if runs else no_match(filters, airush_runs)

    tables = []
    for task in sorted({task_of(r) for r in runs}):
        task_runs = [r for r in runs if task_of(r) == task]
        metric = args.metric or _primary_metric(task, task_runs)
        board = {"task": task, "metric": metric, "higher_is_better": higher_is_better(metric)}
        setups = by_setup(group_runs(task_runs, metric))
        labels = setup_labels(task, list(setups))
        for setup, groups in setups.items():
            ranked = rank_groups(groups, best_per_model=not args.all)[: args.top]
            rows = board_rows(ranked, names, labels[setup])
            tables.append({**board, "data": setup[0], "data_params": labels[setup], "rows": rows})
        if not setups:
            tables.append({**board, "data": None, "data_params": "", "rows": []})
    if args.metric and runs and not any(t["rows"] for t in tables):
        few = sum(args.metric in r.data.metrics and over_too_few_users(r, args.metric) for r in runs)
        if few:
            raise UserError(
                f"no finished run has metric '{args.metric}' over enough users: runs reporting it over fewer "
                f"than task.min_eval_users ({few}) are not ranked"
            )
        recorded = sorted({m for r in runs for m in r.data.metrics})
        raise UserError(f"no finished run has metric '{args.metric}'; recorded: {', '.join(recorded)}")
    tasks_of_parents = parent_tasks(runs)
    # parents that record their launcher's pid, like runs do (older ones cannot be checked: left out)
    parents = [r for r in every_run if r.info.run_id in tasks_of_parents and "airush.pid" in r.data.tags]
    alive, dead = running_runs([*runs, *parents])
    dead_rows = [dead_row(r, names, tasks_of_parents.get(r.info.run_id)) for r in dead]
    failed = sum(r.info.status in ("FAILED", "KILLED") for r in runs)

    if args.format == "table":
        print_tables(tables, HEADLINE, message)
        print_footer(len(alive), dead_rows, failed, args.show_dead)
        return 0
    if message:
        print(f"airush leaderboard: {message}", file=sys.stderr)
    if args.format == "json":
        payload = {
            "tables": tables,
            "running": len(alive) + len(dead),
            "dead": dead_rows,
            "failed_or_killed": failed,
        }
        sys.stdout.write(json.dumps(payload, indent=1) + "\n")
    else:
        write_csv([row for t in tables for row in t["rows"]], sys.stdout)
    return 0


def _primary_metric(task: str, runs: list) -> str:
    tagged = [r.data.tags["airush.primary_metric"] for r in runs if "airush.primary_metric" in r.data.tags]
    return max(set(tagged), key=tagged.count) if tagged else PRIMARY.get(task, "")
