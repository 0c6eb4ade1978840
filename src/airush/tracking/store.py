"""The MLflow store a run goes to: its URI (credentials kept out of every text), reachability, the
experiment, and locks so that several processes can share one local sqlite file."""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from airush.errors import ConfigError, EnvironmentFailure, causes, environment_error_line


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


UI_PORT = 5000  # where `mlflow ui` listens by default


def ui_command(uri: str, experiment_id: str | None = None) -> str:
    """How to see the store in MLflow's UI; with an experiment, the page to open: its runs view."""
    if uri.startswith(("http://", "https://")):
        return f"open {experiment_url(redact_uri(uri), experiment_id) if experiment_id else redact_uri(uri)}"
    where = "--host 127.0.0.1 --port 5000 " if uri.startswith("sqlite:") else ""
    command = f"mlflow ui --backend-store-uri '{redact_uri(uri)}' {where}".rstrip()
    if experiment_id is None or not where:
        return command
    return f"{command}, then open {experiment_url(f'http://127.0.0.1:{UI_PORT}', experiment_id)}"


# MLflow 3.17's UI opens an experiment as the sidebar's workflow says ("GenAI", the default, or "Model
# training"), from the URL's `workflowType` or the browser's last choice; `mlflow.experimentKind` is what
# earlier 3.x UIs read. A saved view (experiment tag `mlflow.sharedViewState.<key>`, opened with
# `viewStateShareKey=<key>`) sets the runs table's columns and order: airush keeps one per experiment.
ML_WORKFLOW = "machine_learning"
RUNS_VIEW = "airush"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW}"
# metrics shown beside the primary one when a run reports them (test split; the valid ones choose models)
VIEW_METRICS = (
    "roc_auc",
    "pr_auc",
    "eer",
    "recall_at_1pct_fpr",
    "f1",
    "ndcg_at_10",
    "recall_at_10",
    "map_at_10",
)
VIEW_COLUMNS_MAX = 12


def experiment_url(base: str, experiment_id: str) -> str:
    """The experiment's runs view in MLflow's UI at `base`: "Model training", airush's columns."""
    query = f"viewStateShareKey={RUNS_VIEW}&workflowType={ML_WORKFLOW}"
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def runs_view_columns(primary: str, metrics) -> list[str]:
    """The runs table's columns: dataset, logged model, the primary metric on test and valid, then the
    other headline metrics the run reported."""
    names = [primary, f"valid_{primary}", *VIEW_METRICS]
    shown = [name for name in dict.fromkeys(names) if name in metrics]
    return ["attributes.`Dataset`", "attributes.`Models`", *(f"metrics.`{name}`" for name in shown)]


def set_runs_view(client, experiment_id: str, primary: str, metrics) -> None:
    """Keep the experiment's saved runs view (`RUNS_VIEW_TAG`) showing this run's headline metrics (the
    primary one on valid is what sweeps choose by), newest first; columns other runs (tasks) added stay."""
    import json

    experiment = client.get_experiment(experiment_id)
    try:
        before = json.loads(experiment.tags.get(RUNS_VIEW_TAG, "{}"))
    except ValueError:
        before = {}
    columns = list(dict.fromkeys([*before.get("selectedColumns", []), *runs_view_columns(primary, metrics)]))
    view = {
        "searchFilter": "",
        "orderByKey": "attributes.start_time",  # MLflow nests a sweep's children under it only in this order
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": columns[:VIEW_COLUMNS_MAX],
        "runsExpanded": {},
        "viewMaximized": False,
        "runListHidden": False,
    }
    if view != before:
        client.set_experiment_tag(experiment_id, RUNS_VIEW_TAG, json.dumps(view))


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


# A database URI's password (postgresql://user:PASSWORD@host/db) lives here for the run, never in argv,
# configs or logs: the URI carries `${oc.env:AIRUSH_TRACKING_PASSWORD}` instead, resolved only when used.
DB_PASSWORD_ENV = "AIRUSH_TRACKING_PASSWORD"


def hide_database_password(uri: str) -> str:
    """A database URI with its password swapped for an interpolation of DB_PASSWORD_ENV (set here), so the
    text Hydra records (`.hydra/*.yaml`, overrides, the console) never holds it; other URIs unchanged."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") or not parts.password or "${" in parts.password:
        return uri
    os.environ[DB_PASSWORD_ENV] = parts.password
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:${{oc.env:{DB_PASSWORD_ENV}}}@{host}"))


def has_credentials(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.username is not None or parts.password is not None


def quiet_store_logs() -> None:
    """MLflow logs every database error itself, SQL statement and parameter values included, before raising
    it; the one line airush prints for a failed store says what matters without the user's values."""
    import logging

    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def error_line(err: BaseException) -> str:
    """An exception's first line, credentials masked (its type when it has no message)."""
    text = str(err)
    return redact_text(text.splitlines()[0] if text.strip() else type(err).__name__)


def store_failure(err: BaseException) -> str | None:
    """ "server" when a tracking server stopped answering (MLflow's rest client gave up after its retries),
    "database" when a database store failed (locked, disk full), None for anything else, a bug of ours:
    the run cannot be recorded and a traceback would say nothing more."""
    for cause in causes(err):
        name = f"{type(cause).__module__}.{type(cause).__name__}"
        if name.startswith(("requests.exceptions.", "urllib3.exceptions.")):
            return "server"
        if type(cause).__name__ == "MlflowException" and "API request to" in str(cause):
            return "server"  # "API request to ... failed with exception ..."
        if name == "sqlalchemy.exc.OperationalError":
            return "database"
    return None


# MLflow 3's UI opens an experiment by its kind: without this tag it guesses, and an empty or new experiment
# opens on the GenAI overview (traces) instead of the runs table of "Model training".
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def ensure_experiment(client, name: str, artifact_location: str | None) -> str:
    """Get or create, of the "Model training" kind (an experiment already given a kind keeps it); a concurrent
    creator winning the race is fine."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(
                name, artifact_location=artifact_location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            )
        except MlflowException:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise ConfigError(f"MLflow experiment '{name}' is deleted; restore it or set mlflow.experiment=…")
    if EXPERIMENT_KIND_TAG not in experiment.tags:  # made by an older airush, or by hand
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def open_experiment(tracking_uri: str, experiment: str, artifact_location: str | None) -> tuple[Any, str]:
    """(client, experiment id), creating the store and the experiment when new; one line when unusable."""
    check_server_reachable(tracking_uri)
    quiet_store_logs()
    try:
        with store_lock(check_tracking_uri(tracking_uri)):  # concurrent first runs race on schema migrations
            client = client_for(tracking_uri)  # creates/migrates the store, inside the lock
            experiment_id = ensure_experiment(
                client, experiment, artifact_location or default_artifact_location(tracking_uri, experiment)
            )
    except ConfigError:
        raise
    except Exception as err:
        refused = environment_error_line(err)
        if refused is not None:
            raise EnvironmentFailure(f"{redact_uri(tracking_uri)}: {refused}") from None
        raise ConfigError(
            f"cannot use MLflow tracking store {redact_uri(tracking_uri)}: {error_line(err)}"
        ) from None
    return client, experiment_id


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
