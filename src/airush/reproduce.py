"""`airush reproduce RUN_ID`: run a recorded run again from the config it logged, not from today's defaults.

The run's resolved config (artifact `hydra/config_resolved.yaml`) becomes a config option laid over a normal
composition with the run's own command-line overrides (so group choices such as `model=als` are the same), and
`airush` runs as usual: a new run, tagged `airush.reproduces`. On CPU the metrics come out identical; a different
git commit is warned about before the run, a different data fingerprint after the data is loaded.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import yaml

from airush.errors import UserError
from airush.store import OneLineParser, default_tracking_uri, open_store

CONFIG_ARTIFACT = "hydra/config_resolved.yaml"
OVERRIDES_ARTIFACT = "hydra/overrides.yaml"
# Where a run went, not what it computed: taken from today's command, not from the recorded run.
NOT_REPRODUCED = ("paths", "hydra")


def main(argv: list[str]) -> int:
    parser = OneLineParser(
        prog="airush reproduce",
        description="Run a recorded MLflow run again with exactly its config (a new run, same store).",
    )
    parser.add_argument("run_id", help="the run to reproduce")
    parser.add_argument(
        "overrides", nargs="*", help="extra key=value overrides (the result is then not exact)"
    )
    parser.add_argument(
        "--tracking-uri", help="default: MLFLOW_TRACKING_URI or sqlite:///./outputs/mlflow.db"
    )
    args = parser.parse_args(argv)
    uri = args.tracking_uri or default_tracking_uri()
    run, config, overrides = recorded_run(uri, args.run_id)
    warn_if_code_differs(run)
    with tempfile.TemporaryDirectory(prefix="airush-reproduce-") as config_dir:
        write_reproduce_option(Path(config_dir), config, run)
        os.environ["MLFLOW_TRACKING_URI"] = uri  # the new run lands beside the one it reproduces
        sys.argv = ["airush", "--config-dir", config_dir, *overrides, "+reproduce=run", *args.overrides]
        from airush.cli import hydra_main

        hydra_main()
    return 0


def recorded_run(uri: str, run_id: str):
    """(run, its resolved config, its command-line overrides) from the store."""
    from mlflow.exceptions import MlflowException

    client = open_store(uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise UserError(f"no run '{run_id}' in MLflow store {uri}") from None
    if run.data.tags.get("airush.sweep") == "parent":
        raise UserError(
            f"run {run_id} is a sweep's parent; reproduce one of its children (or its best.run_id)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            config_path = client.download_artifacts(run_id, CONFIG_ARTIFACT, tmp)
            overrides_path = client.download_artifacts(run_id, OVERRIDES_ARTIFACT, tmp)
        except (MlflowException, OSError):
            raise UserError(
                f"run {run_id} has no {CONFIG_ARTIFACT} artifact (not an airush run, or it failed before "
                "logging its config)"
            ) from None
        config = yaml.safe_load(Path(config_path).read_text())
        overrides = yaml.safe_load(Path(overrides_path).read_text()) or []
    return run, config, [str(o) for o in overrides]


def warn_if_code_differs(run) -> None:
    import airush
    from airush.tracking import git_state

    recorded = run.data.tags.get("git.commit", "unknown")
    commit, dirty = git_state(Path(airush.__file__).parent)
    if recorded != commit or dirty == "true" or run.data.tags.get("git.dirty") == "true":
        print(
            f"airush: warning: run {run.info.run_id} was made at commit {recorded[:12]} "
            f"(dirty={run.data.tags.get('git.dirty', 'unknown')}); this checkout is {commit[:12]} "
            f"(dirty={dirty}): results may differ",
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
