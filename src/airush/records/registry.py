"""`airush register RUN_ID --name NAME`: put a run's MLflow Model in the Model Registry, so it can be served as
`models:/NAME/<version>` without remembering run ids.

RUN_ID may be a sweep's parent run: then its best FINISHED child is registered (the child the sweep tagged as
`best.run_id` when it closed, else the best FINISHED child found now), best by the primary metric on valid, as
the sweep chooses: choosing on test would leak the test set into the choice. The version is tagged with the
metric, its test value and its valid value, the run and the git commit it was trained at, and the model's
content hash: the run's model is downloaded and checked first (a flavor airush wrote, the files the run
recorded, `airush.tracking.model_integrity`), so a model edited in the store is never given a name.
"""

from __future__ import annotations

from pathlib import Path

from airush.errors import UserError
from airush.records.runs import OneLineParser, default_tracking_uri, find_run, is_sweep_parent, open_store
from airush.tracking.model_integrity import MODEL_SHA256_TAG, run_model_source
from airush.tracking.run_record import is_link
from airush.tracking.store import redact_uri, search_all
from airush.tracking.sweeps import sweep_summary


def main(argv: list[str]) -> int:
    parser = OneLineParser(
        prog="airush register",
        description="Register a run's model (or a sweep's best child's) in the MLflow Model Registry.",
    )
    parser.add_argument("run_id", help="a run id, or a sweep's parent run id (its best child is registered)")
    parser.add_argument("--name", required=True, help="registered model name; a new version if it exists")
    parser.add_tracking_uri()
    args = parser.parse_args(argv)
    uri = args.tracking_uri or default_tracking_uri()
    version = register(uri, args.run_id, args.name)
    tags = version.tags
    print(
        f"registered '{version.name}' version {version.version}: run {tags['run_id']}, "
        f"{tags['metric']}={shown(tags['value'])} on test, {shown(tags['valid_value'])} on valid\n"
        f"load it with mlflow.pyfunc.load_model('models:/{version.name}/{version.version}')"
    )
    return 0


def shown(value: str | None) -> str:
    """A recorded metric as the console shows metrics (4 decimals); the version's tag keeps every digit."""
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return value or "none"


def register(uri: str, run_id: str, name: str):
    """Create a version of registered model `name` from the run (or the sweep's best child); returns it."""
    from mlflow.exceptions import MlflowException

    open_store(uri)  # an existing store, or one line
    client = _client(uri)
    run = _get_run(client, run_id, uri)
    parent = None
    if is_sweep_parent(run):
        parent, run = run, best_child(client, run, uri)
    _check_registrable(client, run)
    # what the version points at: the run's logged model (`models:/<id>`), or an older run's `model` artifact
    source, model_id = run_model_source(client, run)
    model_sha256 = _verified_model(client, run.info.run_id)
    metric = run.data.tags.get("airush.primary_metric", "")
    tags = {
        "metric": metric,
        "value": str(run.data.metrics.get(metric, "")),  # on test
        "valid_value": str(run.data.metrics.get(f"valid_{metric}", "")),
        "run_id": run.info.run_id,
        "git.commit": run.data.tags.get("git.commit", "unknown"),
        "git.dirty": run.data.tags.get("git.dirty", "unknown"),
        "airush.task": run.data.tags.get("airush.task", ""),
        "airush.model": run.data.tags.get("airush.model", ""),
        MODEL_SHA256_TAG: model_sha256,
    }
    if parent is not None:
        tags["sweep_run_id"] = parent.info.run_id
    how = f"best child of sweep {parent.info.run_id}" if parent is not None else "registered run"
    try:
        try:
            client.create_registered_model(name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        return client.create_model_version(
            name,
            source,
            run_id=run.info.run_id,
            model_id=model_id,
            tags=tags,
            description=f"{how}: {metric}={tags['value']} on test, {tags['valid_value'] or 'none'} on valid",
        )
    except MlflowException as err:
        raise UserError(f"cannot register '{name}': {err.message.splitlines()[0]}") from None


def best_child(client, parent, uri: str):
    """The sweep's best FINISHED child: the one it tagged `best.run_id`, else the one
    `sweeps.sweep_summary` picks now (on valid)."""
    best_id = parent.data.tags.get("best.run_id")
    if best_id:
        return _get_run(client, best_id, uri)
    children = search_all(
        client,
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent.info.run_id}' and attributes.status = 'FINISHED'",
    )
    children = [child for child in children if not is_link(child)]  # a reused job's link holds no model
    best = sweep_summary(children)["best"]
    if best is None:
        raise UserError(f"sweep {parent.info.run_id} has no FINISHED child with its primary metric yet")
    return next(child for child in children if child.info.run_id == best["run_id"])


def _check_registrable(client, run) -> None:
    run_id = run.info.run_id
    if run.info.status != "FINISHED":
        raise UserError(f"run {run_id} is {run.info.status}; only FINISHED runs can be registered")


def _verified_model(client, run_id: str) -> str:
    """The content hash of the run's model, after checking a download of it against the run's tag."""
    import tempfile

    from airush.tracking.model_integrity import fetch_run_model

    with tempfile.TemporaryDirectory(prefix="airush-register-") as folder:
        return fetch_run_model(client, run_id, Path(folder))[1]


def _get_run(client, run_id: str, uri: str):
    run = find_run(client, run_id)
    if run is None:
        raise UserError(f"no run '{run_id}' in {redact_uri(uri)}")
    return run


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    from airush.tracking.store import use_credentials

    bare = use_credentials(uri)  # credentials to MLflow's variables: no message can show them
    return MlflowClient(tracking_uri=bare, registry_uri=bare)
