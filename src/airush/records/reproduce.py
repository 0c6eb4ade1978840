"""`airush reproduce RUN_ID`: run a recorded run again from the config it logged, not from today's defaults.

The run's resolved config (artifact `hydra/config_resolved.yaml`) becomes a config option laid over a normal
composition with the run's own command-line overrides (so group choices such as `model=als` are the same), and
`airush` runs as usual: a new run in the same store, tagged `airush.reproduces`. On CPU the metrics come out
identical; the end of a reproduction says whether they did (tag `airush.metrics_identical`). A different git
commit is warned about before the run, a different data fingerprint after the data is loaded (tags
`airush.reproduce.same_code`, `airush.reproduce.same_data`).
"""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
from pathlib import Path

import yaml

from airush.errors import UserError
from airush.records.runs import (
    OneLineParser,
    default_tracking_uri,
    find_run,
    is_sweep_parent,
    open_store,
    reading,
    store_error,
)
from airush.tracking.store import redact_uri

CONFIG_ARTIFACT = "hydra/config_resolved.yaml"
OVERRIDES_ARTIFACT = "hydra/overrides.yaml"
CHOICES_ARTIFACT = (
    "hydra/choices.yaml"  # group -> option; runs before it: `hydra.runtime.choices` of hydra.yaml
)
HYDRA_ARTIFACT = "hydra/hydra.yaml"
# Groups whose option is its own config node (`model/als.yaml` -> `model:`): a missing one is rebuilt from it
NODE_GROUPS = ("model", "data", "features")
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# Where a run went, not what it computed: taken from today's command, not from the recorded run.
NOT_REPRODUCED = ("paths", "hydra")
# Recorded overrides not replayed: where the run went (another store, the original's run dir, its name) and
# the option a reproduction adds itself (`+reproduce=run`, recorded when the run was itself a reproduction).
NOT_REPLAYED = (*NOT_REPRODUCED, "mlflow.tracking_uri", "mlflow.run_name", "reproduce")
DIFFERENCES_SHOWN = 10


def main(argv: list[str]) -> int:
    parser = OneLineParser(
        prog="airush reproduce",
        description="Run a recorded MLflow run again with exactly its config (a new run, same store).",
    )
    parser.add_argument("run_id", help="the run to reproduce")
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[],  # without a default argparse counts a `*` positional as required in its usage error
        help="extra key=value overrides (the result is then not exact)",
    )
    parser.add_tracking_uri()
    args = parser.parse_intermixed_args(argv)
    if any(key_of(o) == "mlflow.tracking_uri" for o in args.overrides):
        raise UserError(
            "airush reproduce: a reproduction is recorded in the store its run is read from; "
            "choose that store with --tracking-uri, not mlflow.tracking_uri="
        )
    uri = args.tracking_uri or default_tracking_uri()
    original, config, overrides, choices = recorded_run(uri, args.run_id)
    replayed = replayed_overrides(overrides)
    check_recorded(config, replayed, original.info.run_id, choices)  # before anything is composed or built
    from airush.tracking.run_record import code_fingerprint

    current = current_code()
    code = same_code(original.data.tags, current, code_fingerprint())
    if code != "true":
        warn_code_differs(original, code, current)
    overrides = [*replayed, "+reproduce=run", *args.overrides]
    tags = {"airush.reproduce.same_code": code}
    run_id = run_again(uri, config, original, overrides, tags, choices)
    report_metrics(uri, original, run_id)
    return 0


def check_recorded(config: dict, overrides: list[str], run_id: str, choices: dict | None = None) -> None:
    """A recorded run is untrusted input (anyone who can write to the store can edit its artifacts): every
    `_target_` it names must lie in a trusted package (`airush.trust`), nothing in it may interpolate
    (`${oc.env:...}` would copy a secret of this machine into the new run's record), and its group choices
    must be plain names (they become file names). Checked before anything is composed or built; one line
    naming the key otherwise."""
    from airush.trust import check_trusted

    for group, option in (choices or {}).items():
        if not all(SAFE_NAME.fullmatch(part) for part in [*str(group).split("/"), str(option)]):
            raise UserError(
                f"run {run_id}'s recorded config choice {str(group)[:40]!r}: {str(option)[:40]!r} is not a "
                "config name; not reproducing it"
            )

    def walk(node, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                where = f"{path}.{key}" if path else str(key)
                if key == "_target_":
                    check_trusted(str(value), f"run {run_id}'s recorded config ({where})")
                walk(value, where)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        elif isinstance(node, str) and "${" in node:
            raise UserError(
                f"run {run_id}'s recorded config has an interpolation at {path} ({node[:60]!r}); a recorded "
                "config is resolved, so it was edited: not reproducing it"
            )

    walk(config, "")
    for override in overrides:
        if "${" in override:
            raise UserError(
                f"run {run_id}'s recorded override {override[:80]!r} interpolates; reproduce replays only "
                "literal values"
            )
        key, _, value = override.partition("=")
        if key.lstrip("+~").endswith("_target_"):
            check_trusted(value.strip("'\""), f"run {run_id}'s recorded override {key}")


def run_again(
    uri: str, config: dict, original, overrides: list[str], tags: dict[str, str], choices: dict | None = None
) -> str:
    """Compose the reproduce option with the replayed overrides and run it in this process through the
    Python API (no argv rewriting, no Hydra job); the new run's id. Its provenance tags are set even when
    it fails. Options the run chose that this machine lacks (`choices`) are rebuilt from its config."""
    from airush.api import compose
    from airush.job import job_from_hydra_config
    from airush.runner import run
    from airush.tracking import run_record

    tags = {**tags, "airush.reproduces": original.info.run_id}
    if "data.fingerprint" not in original.data.tags:
        tags["airush.reproduce.same_data"] = "unknown"  # nothing to compare: never claim the data is the same
    before = run_record.last_run_id
    previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with tempfile.TemporaryDirectory(prefix="airush-reproduce-") as config_dir:
            write_reproduce_option(Path(config_dir), config, original)
            write_missing_options(Path(config_dir), config, choices or {})
            os.environ["MLFLOW_TRACKING_URI"] = uri  # the new run lands beside the one it reproduces
            cfg = compose(overrides, config_dir=config_dir)
            job = job_from_hydra_config(cfg.hydra)
            job = type(job)(
                tuple(overrides), job.choices, None, 0
            )  # recorded as typed, not with the search path
            run(cfg, job)
    finally:
        if previous_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_uri
        started = run_record.last_run_id if run_record.last_run_id != before else None
        if started is not None:
            set_tags(uri, started, tags)
    if started is None:
        raise UserError(f"airush reproduce: no MLflow run was started for run {original.info.run_id}")
    return started


def recorded_run(uri: str, run_id: str):
    """(run, its resolved config, its command-line overrides, its group choices) from the store."""

    with reading(uri) as reader:  # an unknown id or a sweep parent is refused before MLflow loads
        run = find_run(reader, run_id)
    if run is None:
        raise UserError(f"no run '{run_id}' in MLflow store {redact_uri(uri)}")
    run_id = run.info.run_id
    if is_sweep_parent(run):
        raise UserError(
            f"run {run_id} is a sweep's parent; reproduce one of its children (or its best.run_id)"
        )
    from mlflow.exceptions import MlflowException

    client = open_store(uri)
    try:
        logged = {a.path for a in client.list_artifacts(run_id, "hydra")}
        missing = [a for a in (CONFIG_ARTIFACT, OVERRIDES_ARTIFACT) if a not in logged]
        if missing:
            raise UserError(missing_config_message(run, missing))
        with tempfile.TemporaryDirectory() as tmp:
            config_path = client.download_artifacts(run_id, CONFIG_ARTIFACT, tmp)
            overrides_path = client.download_artifacts(run_id, OVERRIDES_ARTIFACT, tmp)
            config = yaml.safe_load(Path(config_path).read_text())
            overrides = yaml.safe_load(Path(overrides_path).read_text()) or []
            choices = recorded_choices(client, run_id, logged, tmp)
    except (MlflowException, OSError) as err:
        raise store_error(uri, err) from None
    return run, config, [str(o) for o in overrides], choices


def recorded_choices(client, run_id: str, logged: set[str], tmp: str) -> dict[str, str]:
    """The run's group -> option (hydra/ groups left out); {} for a run that recorded none."""
    if CHOICES_ARTIFACT in logged:
        choices = yaml.safe_load(Path(client.download_artifacts(run_id, CHOICES_ARTIFACT, tmp)).read_text())
    elif HYDRA_ARTIFACT in logged:
        hydra = yaml.safe_load(Path(client.download_artifacts(run_id, HYDRA_ARTIFACT, tmp)).read_text())
        choices = (((hydra or {}).get("hydra") or {}).get("runtime") or {}).get("choices")
    else:
        choices = None
    if not isinstance(choices, dict):
        return {}
    return {str(k): str(v) for k, v in choices.items() if v is not None and not str(k).startswith("hydra/")}


def missing_config_message(run, missing: list[str]) -> str:
    """Why a run has no config to rebuild, true for finished, running and failed runs alike."""
    status = run.info.status
    why = {
        "FINISHED": "not an airush run, or one that did not log it",
        "RUNNING": "not an airush run, or one that has not logged it yet",
    }.get(status, "not an airush run, or one that ended before logging it")
    return f"run {run.info.run_id} ({status}) has no {' or '.join(missing)} artifact: {why}"


def key_of(override: str) -> str:
    """The key or group an override sets (`+mlflow.note=x` -> mlflow.note, `~seed` -> seed)."""
    return override.lstrip("+~").split("=", 1)[0].split("@", 1)[0]


def replayed_overrides(overrides: list[str]) -> list[str]:
    """The recorded overrides to compose with again, minus NOT_REPLAYED. A value added with `+key=value` is
    added with `++`: the reproduce option already holds every recorded value, so a plain `+` would clash."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from airush.config.choices import conf_dir

    replayed = []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if any(key == k or key.startswith((f"{k}.", f"{k}/")) for k in NOT_REPLAYED):
            continue
        is_group = (conf_dir() / key).is_dir() and not isinstance(override.value(), dict)
        line = override.input_line or ""
        replayed.append("+" + line if override.is_add() and not is_group else line)
    return replayed


def current_code() -> tuple[str, str]:
    import airush
    from airush.tracking.run_record import git_state

    return git_state(Path(airush.__file__).parent)


def same_code(recorded_tags: dict[str, str], current: tuple[str, str], fingerprint: str | None = None) -> str:
    """Whether the code that made the run is the code here. A run with an `airush.code` fingerprint (airush's
    source + result-library versions) is compared by it: "true" or "false", dirty checkouts and wheels alike.
    Older runs by git: "true" for one clean commit on both sides, "false" for different commits, "unknown"
    when git could not tell or either side had uncommitted changes (which may or may not touch the code)."""
    if fingerprint is not None and "airush.code" in recorded_tags:
        return str(recorded_tags["airush.code"] == fingerprint).lower()
    recorded = (recorded_tags.get("git.commit", "unknown"), recorded_tags.get("git.dirty", "unknown"))
    (commit, dirty), (now_commit, now_dirty) = recorded, current
    if "unknown" in (commit, now_commit):
        return "unknown"
    if commit != now_commit:
        return "false"
    return "true" if (dirty, now_dirty) == ("false", "false") else "unknown"


def warn_code_differs(run, code: str, current: tuple[str, str]) -> None:
    from airush.tracking.run_record import code_fingerprint

    commit, dirty = current
    tags = run.data.tags
    print(
        f"airush: warning: run {run.info.run_id} was made at commit {tags.get('git.commit', 'unknown')[:12]} "
        f"(dirty={tags.get('git.dirty', 'unknown')}, code {tags.get('airush.code', 'unknown')}); this checkout "
        f"is {commit[:12]} (dirty={dirty}, code {code_fingerprint()}): "
        f"results may differ (airush.reproduce.same_code={code})",
        file=sys.stderr,
    )


def write_reproduce_option(config_dir: Path, config: dict, run) -> None:
    """conf option `reproduce/run.yaml`: the recorded values at the top level, laid over everything else."""
    values = {k: v for k, v in config.items() if k not in NOT_REPRODUCED}
    mlflow = dict(values.get("mlflow") or {})
    mlflow.pop("tracking_uri", None)
    mlflow["run_name"] = None
    values["mlflow"] = mlflow
    values["reproduce_of"] = {
        "run_id": run.info.run_id,
        "data_fingerprint": run.data.tags.get("data.fingerprint"),
    }
    folder = config_dir / "reproduce"
    folder.mkdir(parents=True)
    text = "# @package _global_\n" + yaml.safe_dump(values, sort_keys=False)
    (folder / "run.yaml").write_text(text)


def write_missing_options(config_dir: Path, config: dict, choices: dict[str, str]) -> None:
    """Config options the run chose that this machine's config tree lacks (a `--config-dir` or plugin option
    of another machine), written from the recorded config: a model/data/features option as its recorded
    node, any other (an experiment, a search space) as an option that picks the run's recorded
    model/data/features. The reproduce option lays every recorded value over them, so their content is only
    what makes the composition choose the same options."""
    from airush.config.choices import ConfigChoices

    known = ConfigChoices()
    picks = [f"  - override /{g}: {choices[g]}" for g in NODE_GROUPS if g in choices]
    for group, option in choices.items():
        if group == "reproduce" or option in known.options(group):
            continue
        path = config_dir / group / f"{option}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        if group in NODE_GROUPS and isinstance(config.get(group), dict):
            path.write_text(yaml.safe_dump(config[group], sort_keys=False))
        else:
            path.write_text("\n".join(["# @package _global_", "defaults:", *picks, ""]))


def set_tags(uri: str, run_id: str, tags: dict[str, str]) -> None:
    from mlflow.entities import RunTag

    from airush.tracking.store import client_for

    client_for(uri).log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def report_metrics(uri: str, original, run_id: str) -> None:
    """One line on whether the new run's metrics equal the original's, bit for bit; tagged on the new run."""
    from airush.tracking.store import client_for

    expected = dict(original.data.metrics)
    if not expected:
        print(f"airush: run {original.info.run_id} recorded no metrics: nothing to compare")
        set_tags(uri, run_id, {"airush.metrics_identical": "unknown"})
        return
    got = dict(client_for(uri).get_run(run_id).data.metrics)
    differences = metric_differences(expected, got)
    set_tags(uri, run_id, {"airush.metrics_identical": str(not differences).lower()})
    if not differences:
        print(f"airush: metrics identical to run {original.info.run_id} ({len(expected)} metrics)")
        return
    shown = "; ".join(differences[:DIFFERENCES_SHOWN])
    more = (
        f"; and {len(differences) - DIFFERENCES_SHOWN} more" if len(differences) > DIFFERENCES_SHOWN else ""
    )
    print(
        f"airush: metrics differ from run {original.info.run_id} in {len(differences)} of "
        f"{len(expected.keys() | got.keys())} (original -> reproduction): {shown}{more}"
    )


def metric_differences(expected: dict[str, float], got: dict[str, float]) -> list[str]:
    """`name: a -> b` for each metric not exactly equal (NaN equals NaN; a missing one shows as `none`)."""

    def same(a: float | None, b: float | None) -> bool:
        return a is not None and b is not None and (a == b or (math.isnan(a) and math.isnan(b)))

    def shown(value: float | None) -> str:
        return "none" if value is None else repr(value)

    return [
        f"{name}: {shown(expected.get(name))} -> {shown(got.get(name))}"
        for name in sorted(expected.keys() | got.keys())
        if not same(expected.get(name), got.get(name))
    ]
