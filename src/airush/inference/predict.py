"""`airush predict MODEL data=... --out FILE`: a recorded run's model on data it has never seen.

MODEL is verified (`trained.py`); the data is composed like `airush task=<the run's task> data=...` would
compose it (the same checks and one-line errors), and built from its (trusted) `_target_`; the run's task
turns it into prediction chunks (`Task.predictions`, i.e. `airush.<task>.predict.predictions`), written as
they come (`output.py`). Labels are never read for predicting.

`explain=true` (abuse only) adds `top_features` to every flagged session: its largest contributions to the
log-odds of bot, `name:+0.421;name:-0.102` (`airush.abuse.explain`), "" for sessions not flagged.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airush.errors import UserError

DATA_KEYS = (
    "data",
    "hydra.searchpath",
)  # what predict's overrides may set: which data, and where configs are


@dataclass(frozen=True)
class PredictOptions:
    """What `Task.predictions` gets besides the model and the data."""

    top_n: int | None = None  # music: items per user (None: the run's task.recommend.top_n or first of ks)
    chunk_size: int = 10_000  # music: users scored and written at a time (at most 4 M scores a block)
    chunk_events: int | None = None  # abuse: events scored at once (None: the task's default)
    buckets: int | None = None  # abuse: session buckets an events file is spilled into (None: by its size)
    seed: int | None = None  # what generated data is drawn with (None: the run's seed)
    skip_unknown_users: bool = False  # music: drop users the model never saw (else refused, unless it can
    # score a new user's play history)
    explain: bool = False  # abuse: `top_features` of each flagged session (`explain=true`)
    top_features: int = 5  # abuse, with explain: contributions named per flagged session
    operating_point: str = "f1"  # abuse: the run's threshold that flags: f1 (F1-best) or target_fpr
    stages: Any = None  # airush.console.Stages for progress bars, or None


def main(argv: list[str]) -> int:
    from airush.records.runs import OneLineParser, default_tracking_uri

    parser = OneLineParser(
        prog="airush predict",
        description="Predict with a recorded run's model on any data config (labels are not read).",
    )
    parser.add_model()
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[],
        help="the data to predict on: data=<option> [data.key=value ...]; abuse: explain=true adds "
        "each flagged session's top_features",
    )
    parser.add_argument("--out", required=True, help="the output file: .csv or .parquet")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--top-n", type=int, help="music: items per user (default: the run's own)")
    parser.add_argument("--chunk-size", type=int, default=10_000, help="music: users per chunk")
    parser.add_argument("--chunk-events", type=int, help="abuse: events per chunk (memory ~1 kB each)")
    parser.add_argument("--top-features", type=int, default=5, help="abuse, explain=true: inputs per session")
    parser.add_argument(
        "--threshold",
        choices=("f1", "target_fpr"),
        default="f1",
        help="abuse: the run's threshold that flags sessions: F1-best on valid (default) or the one flagging "
        "task.target_fpr of valid's humans",
    )
    parser.add_argument(
        "--skip-unknown-users", action="store_true", help="music: drop users the model never saw"
    )
    parser.add_tracking_uri()
    args = parser.parse_intermixed_args(argv)
    if args.top_n is not None and args.top_n < 1:
        raise UserError(f"--top-n {args.top_n}: ask for at least one item per user")
    if args.chunk_size < 1 or (args.chunk_events is not None and args.chunk_events < 1):
        raise UserError("--chunk-size and --chunk-events: at least 1")
    explain, overrides = explain_argument(args.overrides)
    if args.top_features < 1:
        raise UserError(f"--top-features {args.top_features}: name at least one")
    check_overrides(overrides)
    out = Path(args.out)
    from airush.inference.output import check_output

    check_output(out, args.overwrite)  # before anything is downloaded or loaded
    options = PredictOptions(
        top_n=args.top_n,
        chunk_size=args.chunk_size,
        chunk_events=args.chunk_events,
        skip_unknown_users=args.skip_unknown_users,
        explain=explain,
        top_features=args.top_features,
        operating_point=args.threshold,
    )
    rows = predict(
        args.tracking_uri or default_tracking_uri(), args.model, overrides, out, options, args.overwrite
    )
    print(f"airush: wrote {rows} prediction rows to {out}", file=sys.stderr)
    return 0


def explain_argument(overrides: list[str]) -> tuple[bool, list[str]]:
    """(what `explain=true|false` asks, the other overrides); the last one given counts."""
    explain, rest = False, []
    for override in overrides:
        key, _, value = override.partition("=")
        if key != "explain":
            rest.append(override)
        elif value.lower() in ("true", "false"):
            explain = value.lower() == "true"
        else:
            raise UserError(f"{override}: explain=true or explain=false")
    return explain, rest


def check_overrides(overrides: list[str]) -> None:
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if "=" not in override or not any(key == k or key.startswith(f"{k}.") for k in DATA_KEYS):
            raise UserError(
                f"airush predict takes data overrides only (data=<option>, data.key=value), not '{override}'"
            )
    if not any(o.lstrip("+~").split("=", 1)[0].split(".")[0] == "data" for o in overrides):
        raise UserError("airush predict: name the data to predict on, e.g. data=plays data.path=new.csv")


def predict(
    uri: str, ref: str, overrides: list[str], out: Path, options: PredictOptions, overwrite=False
) -> int:
    """Predict with MODEL on the data `overrides` compose and write `out`; the rows written."""
    from airush.console import Stages
    from airush.inference.output import write_predictions
    from airush.inference.trained import trained_model

    with trained_model(uri, ref) as trained:
        task, source = task_and_source(trained, overrides)
        if options.explain and explanations_module(task) is None:
            raise UserError(
                f"explain=true explains abuse session scores; run {trained.run_id} is a {trained.task} model"
            )
        with Stages() as stages:
            options = dataclasses.replace(options, stages=stages)
            return write_predictions(out, task.predictions(trained, source, options), overwrite)


def explanations_module(task) -> str | None:
    """The module explaining the task's scores (`explain` beside its `predict` module, e.g.
    `airush.abuse.explain`), or None when the task has none."""
    import importlib.util

    package = type(task).__module__.rpartition(".")[0]
    module = f"{package}.explain"
    return module if package and importlib.util.find_spec(module) is not None else None


def task_and_source(trained, overrides: list[str]):
    """The run's task object and the data source `overrides` name, composed and checked as `airush` would."""
    from hydra.utils import instantiate

    from airush.api import compose
    from airush.errors import ConfigError
    from airush.runner import build, instantiate_error, split_job
    from airush.trust import check_trusted

    cfg, job = split_job(compose([f"task={trained.task}", *overrides]), None)
    built = build(cfg, job)  # nothing unset, values in range, the data fitting the run's task
    target = str(built.cfg.data.get("_target_", ""))
    check_trusted(target, "data._target_")
    try:
        source = instantiate(built.cfg.data)
    except Exception as err:
        raise ConfigError(f"data._target_ {target}: {instantiate_error(err)}") from None
    return built.task, source
