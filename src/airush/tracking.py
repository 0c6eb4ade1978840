"""The MLflow record of a run: store, experiment, parent/child runs for sweeps, what each run logs.

Every run records its flattened config (params), metrics and per-iteration curves, the composed `.hydra/`
files, the trained model (text/npz, never a pickle) and tags: git commit + dirty flag, data fingerprint, seed,
airush version and the command-line overrides. A `-m` sweep gets one parent run per experiment; its id lives
in the sweep dir (not `MLFLOW_RUN_ID`), so jobs in other processes find it too.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

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


# `scheme://user:password@`, also as Hydra escapes it in overrides (`http\://user\:pw@`)
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*\\?://)[^/@\s]+@")


def redact_text(text: str) -> str:
    """Every `scheme://user:password@` in a text (a config, an override) as `scheme://***@`."""
    return _USERINFO.sub(r"\1***@", text)


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """(uri without user:password, user, password) for http(s) URIs; MLflow takes credentials from
    MLFLOW_TRACKING_USERNAME/PASSWORD, and a URI without them is safe to print (MLflow prints run URLs)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or (parts.username is None and parts.password is None):
        return uri, None, None
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return urlunsplit(parts._replace(netloc=netloc)), user, password


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


def check_server_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail in one line before any work when an http(s) tracking server does not answer at all; MLflow's own
    client would retry for minutes and end in a stack trace. Any HTTP answer (even 401/404) counts as reachable:
    auth and routing are the server's business."""
    import base64
    import urllib.error
    import urllib.request

    if urlsplit(uri).scheme not in ("http", "https"):
        return
    bare, user, password = split_credentials(uri)
    request = urllib.request.Request(bare.rstrip("/") + "/health")
    if user is not None or password is not None:  # never in the URL: urllib would resolve "user:pw@host"
        token = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        urllib.request.urlopen(request, timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ConfigError(
            f"cannot reach MLflow tracking server {redact_uri(uri)}: {reason}; "
            "start it (scripts/mlflow_server.sh) or point MLFLOW_TRACKING_URI elsewhere"
        ) from None


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
    """A client for `uri`; an http(s) URI's user:password go to MLflow's credential variables instead."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=use_credentials(uri))


def use_credentials(uri: str) -> str:
    """Move an http(s) URI's user:password into MLFLOW_TRACKING_USERNAME/PASSWORD (the URI's win over
    values already set: it is the more explicit) and return the URI without them."""
    bare, user, password = split_credentials(uri)
    if user is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = user
    if password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    return bare


def error_line(err: BaseException) -> str:
    """An exception's first line, credentials masked (its type when it has no message)."""
    text = str(err)
    return redact_text(text.splitlines()[0] if text.strip() else type(err).__name__)


def store_failure(err: BaseException) -> str | None:
    """ "server" when a tracking server stopped answering (MLflow's rest client gave up after its retries),
    "database" when a database store failed (locked, disk full), None for anything else, a bug of ours:
    the run cannot be recorded and a traceback would say nothing more."""
    for cause in _causes(err):
        name = f"{type(cause).__module__}.{type(cause).__name__}"
        if name.startswith(("requests.exceptions.", "urllib3.exceptions.")):
            return "server"
        if type(cause).__name__ == "MlflowException" and "API request to" in str(cause):
            return "server"  # "API request to ... failed with exception ..."
        if name == "sqlalchemy.exc.OperationalError":
            return "database"
    return None


def _causes(err: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


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


# The libraries that compute results; their versions are part of what a run's numbers depend on.
RESULT_LIBRARIES = ("numpy", "scipy", "pandas", "scikit-learn", "lightgbm", "implicit", "torch")
# airush modules that only read or show recorded runs: editing them changes no result.
VIEW_MODULES = frozenset(
    {
        *("cli.py", "compare.py", "console.py", "help.py", "leaderboard.py", "leaderboard_output.py"),
        *("registry.py", "reproduce.py", "store.py"),
    }
)


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
        p for p in package.rglob("*.py") if p.relative_to(package).as_posix() not in VIEW_MODULES
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


last_run_id: str | None = None  # the latest run this process started: a failed sweep job names it


def open_experiment(tracking_uri: str, experiment: str, artifact_location: str | None) -> tuple[Any, str]:
    """(client, experiment id), creating the store and the experiment when new; one line when unusable."""
    check_server_reachable(tracking_uri)
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
            f"cannot use MLflow tracking store {redact_uri(tracking_uri)}: {error_line(err)}"
        ) from None
    return client, experiment_id


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


def mark_dead(client, run_id: str) -> None:
    """A RUNNING run whose process is gone ends KILLED, tagged `airush.dead`."""
    client.set_tag(run_id, "airush.dead", "true")
    client.set_terminated(run_id, "KILLED")


def search_all(client, experiment_ids, filter_string: str = "") -> list:
    """Every matching run, page by page (one search returns at most 1000)."""
    ids, runs, token = list(experiment_ids), [], None
    if not ids:
        return runs
    while True:
        page = client.search_runs(ids, filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


@contextmanager
def tracked_run(
    tracking_uri: str,
    experiment: str,
    artifact_location: str | None,
    run_name: str,
    tags: dict[str, str],
    sweep_dir: Path | None = None,
    log_dir: Path | None = None,
) -> Iterator[TrackedRun]:
    """An MLflow run that ends FINISHED, FAILED (traceback logged) or KILLED (Ctrl-C, SIGTERM); the `*.log`
    files in `log_dir` go with it however it ends. Its status is set first: when the store itself is what
    failed, that is one attempt, not one per upload, and the run's own error is what surfaces."""
    global last_run_id
    client, experiment_id = open_experiment(tracking_uri, experiment, artifact_location)
    if sweep_dir is not None:
        from airush.sweeps import sweep_parent_run

        parent_id = sweep_parent_run(client, experiment_id, sweep_dir)
        tags = {**tags, "mlflow.parentRunId": parent_id}
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    last_run_id = run.info.run_id
    tracked = TrackedRun(client, run.info.run_id, experiment_id, tracking_uri)

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
