"""What one run records in MLflow: a run that always ends with a status, its params, metrics, curves, tags,
files and log, and the facts (code fingerprint, git state, liveness) that tell runs apart.

Every run records its flattened config (params), metrics and per-iteration curves, the composed `.hydra/`
files, the trained model (text/npz, never a pickle) and tags: git commit + dirty flag, data fingerprint, seed,
airush version and the command-line overrides.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airush.tracking.store import error_line, mark_dead, search_all, set_runs_view, store_failure

BATCH_METRICS = 1000  # MLflow's log_batch limits
BATCH_PARAMS = 100
PARAM_VALUE_MAX = 6000


def git_state(path: Path) -> tuple[str, str]:
    """(commit, dirty) of the git checkout holding `path`; ("unknown", "unknown") outside one."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown", "unknown"
    return commit, "true" if dirty else "false"


# The libraries that compute results; their versions are part of what a run's numbers depend on.
RESULT_LIBRARIES = ("numpy", "scipy", "pandas", "scikit-learn", "lightgbm", "implicit", "torch")
# airush modules that only read or show recorded runs: editing them changes no result.
VIEW_MODULES = frozenset({"cli.py", "console.py", "config/help.py", "config/command_line.py"})
VIEW_PACKAGES = ("records/",)  # leaderboard, compare, reproduce, registry


@functools.cache
def code_fingerprint() -> str:
    """What computes a run besides its config and data: airush's own source files (views aside) and the
    versions of the libraries above, as 16 hex digits. Resume reuses a run only when this matches too: a fixed bug or an
    upgraded library means training again, whatever git says (an installed wheel has no git)."""
    import hashlib
    from importlib import metadata

    package = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(
        p
        for p in package.rglob("*.py")
        if p.relative_to(package).as_posix() not in VIEW_MODULES
        and not p.relative_to(package).as_posix().startswith(VIEW_PACKAGES)
    ):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    for name in RESULT_LIBRARIES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{name}=={version}\n".encode())
    return digest.hexdigest()[:16]


def run_is_dead(run) -> bool:
    """A RUNNING run whose process is gone (SIGKILL, reboot): its host is this machine and its pid is no
    longer alive, or now belongs to a process started after the run. Runs from other hosts cannot be
    checked from here and count as alive."""
    if run.info.status != "RUNNING" or run.data.tags.get("airush.host") != socket.gethostname():
        return False
    try:
        pid = int(run.data.tags.get("airush.pid", ""))
    except ValueError:
        return False
    started = process_start_time(pid)
    return started is None or started > run.info.start_time / 1000 + 1.0


def process_start_time(pid: int) -> float | None:
    """Unix start time (s) of a live process, None when there is none (Linux /proc). A zombie (exited, not yet
    waited for by its parent) is not live: its run has ended, whatever its status says."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, StopIteration):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    if fields[0] == "Z":  # field 3: state
        return None
    ticks = float(fields[19])  # field 22: start time in clock ticks after boot
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Nested config -> {"model.learning_rate": "0.05", ...}; lists stay one param."""
    if isinstance(tree, dict):
        out: dict[str, str] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    value = json.dumps(tree) if isinstance(tree, list) else str(tree)
    return {prefix[:-1]: value[:PARAM_VALUE_MAX]}


@dataclass
class TrackedRun:
    client: Any
    run_id: str
    experiment_id: str
    tracking_uri: str
    # what the logged model carries of the run: its params, final metrics (step 0) and dataset
    params: dict[str, str] = field(default_factory=dict)
    final_metrics: list[Any] = field(default_factory=list)
    dataset: Any = None  # airush.tracking.datasets.RunDataset, once logged
    primary_metric: str = (
        ""  # the task's (tag `airush.primary_metric`): what the experiment's runs view shows
    )

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        self.params.update(params)
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), BATCH_PARAMS):
            self.client.log_batch(self.run_id, params=items[start : start + BATCH_PARAMS])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        """A run's results; the logged model is linked to those at step 0 (`log_model`)."""
        items = self.log_curves({name: {step: value} for name, value in metrics.items()})
        if step == 0:
            self.final_metrics.extend(items)

    def log_curves(self, curves: dict[str, dict[int, float]]) -> list[Any]:
        """Per-iteration values, sent in batches of 1000 (not one request per point); returns them."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(name, float(value), now, int(step))
            for name, points in curves.items()
            for step, value in points.items()
        ]
        self._log_metric_batches(items)
        return items

    def _log_metric_batches(self, items: list[Any]) -> None:
        for start in range(0, len(items), BATCH_METRICS):
            self.client.log_batch(self.run_id, metrics=items[start : start + BATCH_METRICS])

    def log_dataset(self, dataset) -> None:
        """The run's data as an MLflow dataset input (`airush.tracking.datasets.run_dataset`)."""
        from airush.tracking.datasets import dataset_input

        self.client.log_inputs(self.run_id, datasets=[dataset_input(dataset)])
        self.dataset = dataset

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifacts(self, local_dir: Path, artifact_path: str) -> None:
        if local_dir.is_dir() and any(local_dir.iterdir()):
            self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_model(self, mlflow_model: Path) -> None:
        """Log the run's MLflow Model folder as its logged model `model` (`mlflow_model.log_logged_model`),
        with the run's params, linked to its final metrics (and those to its dataset); tag the run with the
        model's id (`airush.model_id`) and content hash (`airush.model_sha256`), which airush's loading paths
        check a download against. The local folder goes once stored: the store's is the one copy."""
        import shutil

        from mlflow.entities import Metric

        from airush.tracking.mlflow_model import log_logged_model
        from airush.tracking.model_integrity import MODEL_ID_TAG, MODEL_SHA256_TAG

        logged, sha = log_logged_model(
            self.client, self.run_id, self.experiment_id, Path(mlflow_model), self.params, {}
        )
        self.set_tags({MODEL_SHA256_TAG: sha, MODEL_ID_TAG: logged.model_id})
        dataset = (
            {"dataset_name": self.dataset.name, "dataset_digest": self.dataset.digest} if self.dataset else {}
        )
        linked = [
            Metric(
                m.key, m.value, m.timestamp, m.step, model_id=logged.model_id, run_id=self.run_id, **dataset
            )
            for m in self.final_metrics
        ]
        self._log_metric_batches(linked)  # the same points as the run's: MLflow keeps one of each
        shutil.rmtree(mlflow_model, ignore_errors=True)
        if self.primary_metric:
            metrics = {m.key for m in self.final_metrics}
            set_runs_view(self.client, self.experiment_id, self.primary_metric, metrics)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)


last_run_id: str | None = None  # the latest run this process started: a failed sweep job names it


def finished_run_with_config(client, experiment_id: str, config_hash: str, code: str):
    """The latest FINISHED run of this experiment with the same config hash and code fingerprint, or None."""
    runs = client.search_runs(
        [experiment_id],
        f"tags.`airush.config_hash` = '{config_hash}' and tags.`airush.code` = '{code}' "
        "and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def close_dead_runs_with_config(client, experiment_id: str, config_hash: str) -> list[str]:
    """End as KILLED (tagged airush.dead) the RUNNING runs of this config whose process is gone: a rerun
    replaces them, and they stop looking alive in the UI. Returns their ids."""
    runs = search_all(
        client,
        [experiment_id],
        f"tags.`airush.config_hash` = '{config_hash}' and attributes.status = 'RUNNING'",
    )
    dead = [run.info.run_id for run in runs if run_is_dead(run)]
    for run_id in dead:
        mark_dead(client, run_id)
    return dead


@contextmanager
def tracked_run(
    client,
    experiment_id: str,
    tracking_uri: str,
    run_name: str,
    tags: dict[str, str],
    parent_id: str | None = None,
    log_dir: Path | None = None,
) -> Iterator[TrackedRun]:
    """An MLflow run that ends FINISHED, FAILED (traceback logged) or KILLED (Ctrl-C, SIGTERM); the `*.log`
    files in `log_dir` go with it however it ends. Its status is set first: when the store itself is what
    failed, that is one attempt, not one per upload, and the run's own error is what surfaces. `parent_id`:
    the sweep's parent run, for a sweep job."""
    global last_run_id
    if parent_id is not None:
        tags = {**tags, "mlflow.parentRunId": parent_id}
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    last_run_id = run.info.run_id
    tracked = TrackedRun(client, run.info.run_id, experiment_id, tracking_uri)
    tracked.primary_metric = tags.get("airush.primary_metric", "")

    def end(status: str, err: BaseException | None = None) -> None:
        if err is not None:
            tracked.set_tags({"airush.error": error_line(err)[:500]})
        client.set_terminated(tracked.run_id, status)
        if err is not None:  # artifacts may follow the status
            tracked.log_text("".join(traceback.format_exception(err)), "traceback.txt")
        for log_file in sorted(log_dir.glob("*.log")) if log_dir is not None else []:
            client.log_artifact(tracked.run_id, str(log_file))

    try:
        yield tracked
    except BaseException as err:
        status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
        if store_failure(err) == "server":
            raise  # nothing more can be recorded, and each try would cost a retry cycle
        try:
            end(status, None if status == "KILLED" else err)
        except Exception as store_err:  # the store may be what failed; the run's own error still surfaces
            print(
                f"airush: could not mark run {tracked.run_id} {status}: {error_line(store_err)}",
                file=sys.stderr,
            )
        raise
    else:
        end("FINISHED")


REUSES_TAG = "airush.reuses"  # on a sweep's link to the finished run one of its jobs reused


def link_reused_run(client, experiment_id: str, parent_id: str, reused, overrides: str) -> str:
    """A FINISHED child of the new sweep's parent standing for a job that reused `reused` (an earlier
    sweep's run): its metrics and a tag naming the run that holds the model, so the UI shows every job of
    the sweep under its parent. Views of recorded runs skip links (`is_link`): the run itself counts once."""
    from mlflow.entities import Metric

    link = client.create_run(
        experiment_id,
        run_name=f"reused {reused.info.run_name}"[:250],
        tags={
            "mlflow.parentRunId": parent_id,
            REUSES_TAG: reused.info.run_id,
            "hydra.overrides": overrides,
            "mlflow.note.content": f"This job reused run {reused.info.run_id} (identical config, code and data).",
        },
    )
    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, 0) for key, value in sorted(reused.data.metrics.items())]
    for start in range(0, len(metrics), 1000):  # MLflow's batch limit
        client.log_batch(link.info.run_id, metrics=metrics[start : start + 1000])
    # the UI's Dataset and Models columns: the reused run's data and logged model (which stays the reused run's)
    inputs, outputs = getattr(reused, "inputs", None), getattr(reused, "outputs", None)
    if inputs is not None and inputs.dataset_inputs:
        client.log_inputs(link.info.run_id, datasets=list(inputs.dataset_inputs))
    if outputs is not None and outputs.model_outputs:
        client.log_outputs(link.info.run_id, list(outputs.model_outputs))
    client.set_terminated(link.info.run_id, "FINISHED")
    return link.info.run_id


def is_link(run) -> bool:
    return REUSES_TAG in run.data.tags
