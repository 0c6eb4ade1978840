"""The MLflow record of a run: store, experiment, parent/child runs for sweeps, what each run logs.

Every run records its flattened config (params), metrics and per-iteration curves, the composed `.hydra/`
files, the trained model (text/npz, never a pickle) and tags: git commit + dirty flag, data fingerprint, seed,
airush version and the command-line overrides. A `-m` sweep gets one parent run per experiment; its id lives
in the sweep dir (not `MLFLOW_RUN_ID`), so jobs in other processes find it too.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import subprocess
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airush.errors import ConfigError

PARENTS_FILE = "mlflow_parents.json"
BATCH_METRICS = 1000  # MLflow's log_batch limits
BATCH_PARAMS = 100
PARAM_VALUE_MAX = 6000


def redact_uri(uri: str) -> str:
    """Drop user:password from a URI so it can be printed and logged."""
    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_tracking_uri(uri: str) -> str:
    """Accept database and server stores; refuse the file store, which MLflow 3.17 no longer supports."""
    scheme = urlsplit(uri).scheme
    if scheme in ("", "file") or re.match(r"^[A-Za-z]:[\\/]", uri):
        raise ConfigError(
            f"tracking URI '{uri}' is a file store, which MLflow 3 refuses; "
            "use sqlite:///path/to/mlflow.db or http(s)://your-server"
        )
    if scheme == "sqlite":
        path = sqlite_path(uri)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///…` URI (None for in-memory)."""
    rest = uri.split("sqlite://", 1)[1]
    if rest in ("", "/", "/:memory:"):
        return None
    return Path(rest[1:] if rest.startswith("/") else rest).resolve()


def default_artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a local sqlite store live beside its file, never in a ./mlruns that flips MLflow's default."""
    if not uri.startswith("sqlite:"):
        return None  # a tracking server decides (its --artifacts-destination)
    path = sqlite_path(uri)
    root = path.parent if path is not None else Path.cwd() / "outputs"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment)
    return (root / "mlartifacts" / slug).as_uri()


def ui_command(uri: str) -> str:
    if uri.startswith("sqlite:"):
        return f"mlflow ui --backend-store-uri '{uri}' --host 127.0.0.1 --port 5000"
    if uri.startswith(("http://", "https://")):
        return f"open {redact_uri(uri)}"
    return f"mlflow ui --backend-store-uri '{redact_uri(uri)}'"


def client_for(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(client, name: str, artifact_location: str | None) -> str:
    """Get or create; a concurrent creator winning the race is fine."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise ConfigError(f"MLflow experiment '{name}' is deleted; restore it or set mlflow.experiment=…")
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


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
    """Unix start time (s) of a live process, None when there is none (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, StopIteration):
        return None
    ticks = float(stat.rsplit(")", 1)[1].split()[19])  # field 22: start time in clock ticks after boot
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

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), BATCH_PARAMS):
            self.client.log_batch(self.run_id, params=items[start : start + BATCH_PARAMS])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        self.log_curves({name: {step: value} for name, value in metrics.items()})

    def log_curves(self, curves: dict[str, dict[int, float]]) -> None:
        """Per-iteration values, sent in batches of 1000 (not one request per point)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(name, float(value), now, int(step))
            for name, points in curves.items()
            for step, value in points.items()
        ]
        for start in range(0, len(items), BATCH_METRICS):
            self.client.log_batch(self.run_id, metrics=items[start : start + BATCH_METRICS])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifacts(self, local_dir: Path, artifact_path: str) -> None:
        if local_dir.is_dir() and any(local_dir.iterdir()):
            self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)


@contextmanager
def tracked_run(
    tracking_uri: str,
    experiment: str,
    artifact_location: str | None,
    run_name: str,
    tags: dict[str, str],
    sweep_dir: Path | None = None,
) -> Iterator[TrackedRun]:
    """An MLflow run that ends FINISHED, FAILED (traceback logged) or KILLED (Ctrl-C)."""
    try:
        with store_lock(check_tracking_uri(tracking_uri)):  # concurrent first runs race on schema migrations
            client = client_for(tracking_uri)  # creates/migrates the store, inside the lock
            experiment_id = ensure_experiment(
                client, experiment, artifact_location or default_artifact_location(tracking_uri, experiment)
            )
    except ConfigError:
        raise
    except Exception as err:
        raise ConfigError(
            f"cannot use MLflow tracking store {redact_uri(tracking_uri)}: {str(err).splitlines()[0]}"
        ) from None
    if sweep_dir is not None:
        parent_id = sweep_parent_run(client, experiment_id, sweep_dir)
        tags = {**tags, "mlflow.parentRunId": parent_id}
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    tracked = TrackedRun(client, run.info.run_id, experiment_id, tracking_uri)
    try:
        yield tracked
    except KeyboardInterrupt:
        client.set_terminated(tracked.run_id, "KILLED")
        raise
    except BaseException as err:
        tracked.log_text("".join(traceback.format_exception(err)), "traceback.txt")
        tracked.set_tags({"airush.error": str(err).splitlines()[0][:500] if str(err) else type(err).__name__})
        client.set_terminated(tracked.run_id, "FAILED")
        raise
    else:
        client.set_terminated(tracked.run_id, "FINISHED")


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock between processes on this machine."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialise store creation for a local sqlite file; servers and other databases handle their own."""
    path = sqlite_path(uri) if uri.startswith("sqlite:") else None
    if path is None:
        yield
        return
    with _locked(path.with_name(path.name + ".lock")):
        yield


def read_parents(sweep_dir: Path) -> dict[str, str]:
    path = sweep_dir / PARENTS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def sweep_parent_run(client, experiment_id: str, sweep_dir: Path) -> str:
    """The sweep's parent run in this experiment, created by whichever job gets here first."""
    with _locked(sweep_dir / ".mlflow.lock"):
        parents = read_parents(sweep_dir)
        if experiment_id not in parents:
            info_path = sweep_dir / "sweep.json"
            info = json.loads(info_path.read_text()) if info_path.exists() else {}
            commit, dirty = git_state(Path(__file__).parent)
            run = client.create_run(
                experiment_id,
                run_name=f"sweep {sweep_dir.name}",
                tags={
                    "airush.sweep": "parent",
                    "airush.sweep_dir": str(sweep_dir),
                    "hydra.overrides": " ".join(info.get("overrides", [])),
                    "git.commit": commit,
                    "git.dirty": dirty,
                    "mlflow.source.git.commit": commit,
                },
            )
            parents[experiment_id] = run.info.run_id
            (sweep_dir / PARENTS_FILE).write_text(json.dumps(parents, indent=1))
        return parents[experiment_id]


def close_sweep(tracking_uri: str, sweep_dir: Path) -> None:
    """End each parent run: FINISHED if every child finished, else FAILED; tag the best child."""
    parents = read_parents(sweep_dir)
    if not parents:
        return
    client = client_for(tracking_uri)
    for experiment_id, parent_id in parents.items():
        children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
        summary = sweep_summary(children)
        client.log_text(parent_id, json.dumps(summary, indent=1), "sweep_summary.json")
        best = summary.get("best")
        if best:
            for key in ("run_id", "metric", "value"):
                client.set_tag(parent_id, f"best.{key}", str(best[key]))
        all_done = children and all(c.info.status == "FINISHED" for c in children)
        client.set_terminated(parent_id, "FINISHED" if all_done else "FAILED")


def sweep_summary(children: list) -> dict[str, Any]:
    """Every child (status, overrides, primary metric) and the best one by its task's primary metric."""
    rows = []
    for child in children:
        metric = child.data.tags.get("airush.primary_metric")
        rows.append(
            {
                "run_id": child.info.run_id,
                "status": child.info.status,
                "overrides": child.data.tags.get("hydra.overrides", ""),
                "metric": metric,
                "value": child.data.metrics.get(metric) if metric else None,
            }
        )
    scored = [r for r in rows if r["value"] is not None and r["status"] == "FINISHED"]
    best = max(scored, key=lambda r: r["value"]) if scored else None
    return {"children": rows, "best": best}


try:  # Hydra callbacks run in the launching process, around the whole sweep.
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra is a hard dependency
    Callback = object  # type: ignore[assignment,misc]


class SweepParentCallback(Callback):
    """Records the sweep's overrides for the parent run and closes the parent runs when the sweep ends."""

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        _ensure_hydra_config(config)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        overrides = list(config.hydra.overrides.task)
        (sweep_dir / "sweep.json").write_text(json.dumps({"overrides": overrides}, indent=1))

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        _ensure_hydra_config(config)
        close_sweep(str(config.mlflow.tracking_uri), Path(config.hydra.sweep.dir))


def _ensure_hydra_config(config) -> None:
    """Let `${hydra:…}` in the sweep dir resolve: Hydra sets its config only once jobs start."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        HydraConfig.instance().set_config(config)
