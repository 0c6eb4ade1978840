"""Reading what runs recorded: where the store is, a client that never creates one, every matching run.

Shared by the commands that look at past runs (`leaderboard`, `compare`, `reproduce`, `register`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path

from airush.errors import UserError


def default_tracking_uri() -> str:
    """Where `airush` run from this directory records: MLFLOW_TRACKING_URI, else ./outputs/mlflow.db
    (the same rule as `mlflow.tracking_uri` in conf/config.yaml with paths.outputs = <cwd>/outputs)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'outputs' / 'mlflow.db'}"


def open_store(uri: str):
    """A client on an existing store. Reading never creates one: a mistyped path must not show an empty board."""
    from urllib.parse import urlsplit

    from airush import tracking

    scheme = urlsplit(uri).scheme
    if scheme == "sqlite":
        path = tracking.sqlite_path(uri)
        if path is None or not path.is_file():
            raise UserError(
                f"no MLflow store at {path or uri}; run `airush` here first, or pass --tracking-uri "
                "(or set MLFLOW_TRACKING_URI)"
            )
    elif scheme in ("http", "https"):
        tracking.check_server_reachable(uri)
    else:
        tracking.check_tracking_uri(uri)  # refuses the ./mlruns file store in one line
    return tracking.client_for(uri)


def store_error(uri: str, err: Exception) -> UserError:
    from airush.tracking import redact_uri

    return UserError(f"cannot read MLflow store {redact_uri(uri)}: {str(err).splitlines()[0]}")


def experiments(client, names: list[str] | None) -> dict[str, str]:
    """{experiment id: name}: the named ones (each must exist) or every active one."""
    if names:
        found = {}
        for name in names:
            experiment = client.get_experiment_by_name(name)
            if experiment is None or experiment.lifecycle_stage != "active":
                known = ", ".join(sorted(experiments(client, None).values())) or "none"
                raise UserError(f"no MLflow experiment '{name}'; experiments: {known}")
            found[experiment.experiment_id] = experiment.name
        return found
    out, token = {}, None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        out.update({e.experiment_id: e.name for e in page})
        token = page.token
        if not token:
            return out


def search_all(client, experiment_ids: Iterable[str], filter_string: str = "") -> list:
    """Every matching run, page by page (one search returns at most `max_results`)."""
    ids, runs, token = list(experiment_ids), [], None
    if not ids:
        return runs
    while True:
        page = client.search_runs(ids, filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes become a UserError: one line and exit 2, like every other airush mistake."""

    def error(self, message: str):
        raise UserError(f"{self.prog}: {message} (see `{self.prog} --help`)")
