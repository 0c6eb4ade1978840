"""`airush --help`, written from the config tree: every choice airush's and the user's yaml files offer
(`--config-dir`, `hydra.searchpath`, installed search-path plugins), by the task each one's class declares.

Hydra's own help composes the config once per config group (about 0.8 s here, over the 0.8 s budget); this
page reads the yaml files and the classes' source (`airush.config.declared`), importing nothing heavy.
`airush --cfg job [overrides]` prints the composed config, `airush --hydra-help` Hydra's own flags.
"""

from __future__ import annotations

import textwrap

from airush.config.choices import TASK_BOUND_GROUPS, ConfigChoices

# Hydra plugin choices we ship configs for or document (tests check them against Hydra's own list).
HYDRA_CHOICES = {
    "hydra/launcher": ("basic", "joblib", "submitit_local", "submitit_slurm", "slurm", "ray"),
    "hydra/sweeper": ("basic", "airush_optuna"),
}
SUBCOMMANDS_HELP = {
    "leaderboard": "best runs per task, mean ± std over seeds",
    "compare": "two or more runs: differing config keys, metrics side by side",
    "reproduce": "run a recorded run's exact config again",
    "register": "register a run (or a sweep's best child) in the MLflow Model Registry",
    "predict": "a run's model on new data: MODEL data=... --out FILE (.csv/.parquet)",
    "serve": "a run's model over HTTP after verifying it (mlflow models serve)",
    "explain": "why a session was flagged: MODEL session=ID data=... (top inputs and a picture)",
    "board": "create or show a board: inputs, hidden labels and a metric (the organiser's side)",
    "submit": "score a run's model on a board: MODEL --board NAME",
    "ui": "MLflow's UI on the store airush records to from here",
    "ps": "running runs: host, pid, age, last log line",
    "logs": "a run's log: RUN [-f] follows it until the run ends",
    "stop": "stop a running run here: it ends KILLED",
}
EXAMPLES = (
    ("airush", "abuse detection, LightGBM, synthetic sessions"),
    ("airush task=music", "music recommendation with the task's default model"),
    ("airush task=music model=twotower gpus=1", "a torch model on one GPU (gpus=N: N DDP ranks)"),
    ("airush -m lr=1e-3,1e-4 seed=1,2,3", "a sweep: one MLflow parent run, one child per job"),
    ("airush -m hparams_search=music_als", "Optuna search over a stored space, the study kept in sqlite"),
    ("airush --cfg job task=music", "print the composed config and exit"),
)


def group_line(choices: ConfigChoices, group: str) -> str:
    """`model: abuse -> lgbm*, seq; music -> als*, ...` (* = the task's default), or a flat list."""
    options = choices.options(group)
    if group not in TASK_BOUND_GROUPS:
        return f"{group}: {', '.join(options)}"
    parts = []
    for task_option in choices.options("task"):
        task = choices.option_task("task", task_option) or task_option
        default = choices.task_defaults(task_option).get(group)
        names = [f"{o}*" if o == default else o for o in choices.options_for_task(group, task)]
        parts.append(f"{task} -> {', '.join(names)}")
    undeclared = [o for o in options if choices.option_task(group, o) is None]
    if undeclared:  # a class that declares no task: listed so the user sees it exists, and why it cannot run
        parts.append(f"no task declared -> {', '.join(undeclared)}")
    return f"{group}: {'; '.join(parts)}"


def wrapped(line: str) -> str:
    return textwrap.fill(line, width=100, subsequent_indent="    ", break_on_hyphens=False)


def help_text(choices: ConfigChoices | None = None) -> str:
    choices = choices or ConfigChoices()
    default_task = choices.default_task()
    width = max(len(command) for command, _ in EXAMPLES) + 2
    lines = [
        "airush: train and evaluate one task x model x data x features, tracked in MLflow.",
        "",
        "usage: airush [group=option ...] [key=value ...]     one run",
        "       airush -m [key=a,b ...] [group=x,y ...]        a sweep (Hydra multirun)",
        "       airush SUBCOMMAND ...                          recorded runs (below; each has --help)",
        "",
        "== Config groups (group=option; * = the task's default) ==",
        f"task: {', '.join(f'{t}*' if t == default_task else t for t in choices.options('task'))}",
        *(
            wrapped(group_line(choices, group))
            for group in (*TASK_BOUND_GROUPS, "experiment", "hparams_search")
        ),
        *(wrapped(f"{group}: {', '.join(options)}") for group, options in HYDRA_CHOICES.items()),
        "",
        "== Top-level shorthands ==",
        "seed=42  gpus=0  lr=null (the model's own)  resume=true (sweeps reuse finished identical runs)",
        "trainer.accelerator=auto  trainer.devices=null  trainer.precision=auto   (torch models)",
        "",
        "== Subcommands ==",
        *(f"airush {name:<12} {text}" for name, text in SUBCOMMANDS_HELP.items()),
        "",
        "== Examples ==",
        *(f"{command:<{width}}{text}" for command, text in EXAMPLES),
        "",
        "Any key of the composed config can be overridden (key=value); see it with `airush --cfg job`.",
        "Hydra's own flags: `airush --hydra-help`. Tracking: MLFLOW_TRACKING_URI, else",
        "sqlite:///<cwd>/outputs/mlflow.db.",
    ]
    return "\n".join(lines) + "\n"
