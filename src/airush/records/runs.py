"""Reading what runs recorded: where the store is, a client that never creates one, every run, what a run says
about itself (task, model, data, seed), and the filters that pick runs.

Shared by the commands that look at past runs (`leaderboard`, `compare`, `reproduce`, `register`).
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from airush.errors import UserError

Filter = tuple[str, Callable[..., bool]]  # (the option as typed, run -> kept?)


def default_tracking_uri() -> str:
    """Where `airush` run from this directory records: MLFLOW_TRACKING_URI, else ./outputs/mlflow.db
    (the same rule as `mlflow.tracking_uri` in conf/config.yaml with paths.outputs = <cwd>/outputs)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'outputs' / 'mlflow.db'}"


def open_store(uri: str):
    """A client on an existing store. Reading never creates one: a mistyped path must not show an empty board."""
    from urllib.parse import urlsplit

    from airush.tracking import store

    scheme = urlsplit(uri).scheme
    if scheme == "sqlite":
        require_sqlite_file(uri)
    elif scheme in ("http", "https"):
        store.check_server_reachable(uri)
    else:
        store.check_tracking_uri(uri)  # refuses the ./mlruns file store in one line
    return store.client_for(uri)


def reader_for(uri: str):  # -> SqliteReader | MlflowReader
    """The fast reader (`store_reader.SqliteReader`) for an existing local sqlite store of a known schema,
    else MLflow's client through `open_store`. A missing store, or one MLflow cannot read either: one line."""
    from urllib.parse import urlsplit

    from airush.records.store_reader import READER_ENV, MlflowReader, SqliteReader

    if urlsplit(uri).scheme == "sqlite" and os.environ.get(READER_ENV, "") != "mlflow":
        reader = SqliteReader.open(require_sqlite_file(uri))
        if reader is not None:
            return reader
    from mlflow.exceptions import MlflowException

    try:
        return MlflowReader(open_store(uri))
    except MlflowException as err:  # a schema MLflow cannot read either: its own message, in one line
        raise store_error(uri, err) from None


@contextmanager
def reading(uri: str) -> Iterator:
    """`reader_for(uri)` for the block, closed after it; a store error inside the block is one line."""
    reader = reader_for(uri)
    try:
        yield reader
    except reader.errors as err:
        raise store_error(uri, err) from None
    finally:
        reader.close()


def require_sqlite_file(uri: str) -> Path:
    """The file of a `sqlite:///` store, which must exist: reading never creates a store."""
    from airush.tracking.store import sqlite_path

    path = sqlite_path(uri)
    if path is None or not path.is_file():
        raise UserError(
            f"no MLflow store at {path or uri}; run `airush` here first, or pass --tracking-uri "
            "(or set MLFLOW_TRACKING_URI)"
        )
    return path


def store_error(uri: str, err: Exception) -> UserError:
    from airush.tracking.store import error_line, redact_uri

    return UserError(f"cannot read MLflow store {redact_uri(uri)}: {error_line(err)}")


def experiments(store, names: list[str] | None) -> dict[str, str]:
    """{experiment id: name}: the named ones (each must exist) or every active one. `store`: a reader
    (`records.store_reader`) or an MLflow client."""
    from airush.records.store_reader import as_reader

    reader = as_reader(store)
    if not names:
        return reader.experiments()
    found = {}
    for name in names:
        experiment = reader.experiment_by_name(name)
        if experiment is None or experiment[2] != "active":
            known = ", ".join(sorted(reader.experiments().values())) or "none"
            raise UserError(f"no MLflow experiment '{name}'; experiments: {known}")
        found[experiment[0]] = experiment[1]
    return found


def task_of(run) -> str | None:
    return run.data.tags.get("airush.task") or run.data.params.get("task.name")


def find_run(store, ref: str, experiment_ids: list[str] | None = None):
    """A run by its full id or by a unique prefix (the leaderboard shows 8 characters); None when there is
    none, one line when a prefix fits several. `store`: a reader (`records.store_reader`) or an MLflow client."""
    from airush.records.store_reader import as_reader

    reader = as_reader(store)
    run = reader.get_run(ref)
    if run is not None:
        return run
    if not 4 <= len(ref) < 32 or not set(ref) <= set("0123456789abcdef"):
        return None
    ids = list(reader.experiments()) if experiment_ids is None else experiment_ids
    found = reader.runs_with_prefix(ref, ids, 3)
    if len(found) > 1:
        listed = ", ".join(r.info.run_id for r in found)
        raise UserError(f"run id prefix '{ref}' is ambiguous ({listed}, ...); give more characters")
    return found[0] if found else None


def is_sweep_parent(run) -> bool:
    return run.data.tags.get("airush.sweep") == "parent"


def model_of(run) -> str:
    return run.data.tags.get("airush.model") or ("sweep parent" if is_sweep_parent(run) else "?")


def data_name(run) -> str:
    """The data config a run used (`synthetic_music`), from its `data._target_` param: the conf/data option
    with that target when exactly one has it, else the module name."""
    if "airush.data" in run.data.tags:
        return run.data.tags["airush.data"]
    target = run.data.params.get("data._target_", "")
    options = _data_options_by_target().get(target, [])
    if len(options) == 1:
        return options[0]
    return target.rsplit(".", 2)[-2] if target.count(".") >= 2 else target or "?"


@functools.cache
def option_defaults(group: str, option: str) -> dict | None:
    """The yaml of one of airush's own config options as written (what `config.choices.option_config`
    gives), None when `group` has no such option. Read straight from the packaged file when there is one:
    asking Hydra's config repository costs the leaderboard ~0.3 s (its plugin scan), and an option only a
    Hydra plugin provides is still found through it."""
    from airush.config.choices import conf_dir

    path = conf_dir() / group / f"{option}.yaml"
    if path.is_file():
        from omegaconf import OmegaConf

        loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
        loaded.pop("defaults", None)  # Hydra's defaults list, not config
        return loaded
    from airush.config.choices import group_options, option_config

    return option_config(group, option) if option in group_options(group) else None


@functools.cache
def _data_options_by_target() -> dict[str, list[str]]:
    from airush.config.choices import group_options, option_config

    out: dict[str, list[str]] = {}
    for option in group_options("data"):
        out.setdefault(str(option_config("data", option).get("_target_", "")), []).append(option)
    return out


def seed_of(run) -> str:
    return run.data.tags.get("seed") or run.data.params.get("seed", "?")


def run_filters(
    experiment_ids: dict[str, str] | None, task: str | None, data: str | None, tags: list[str]
) -> list[Filter]:
    """(the option as typed, run -> bool) per filter given (`experiment_ids`: {id: name}); a run is shown when it
    passes them all."""
    filters: list[Filter] = []
    if experiment_ids:
        names = " ".join(experiment_ids.values())
        filters.append((f"--experiment {names}", lambda r: r.info.experiment_id in experiment_ids))
    if task:
        filters.append((f"--task {task}", lambda r: task_of(r) == task))
    if data:
        filters.append(
            (f"--data {data}", lambda r: data in (data_name(r), r.data.params.get("data._target_")))
        )
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise UserError(f"--tag takes KEY=VALUE (e.g. --tag git.dirty=false), got '{tag}'")
        filters.append((f"--tag {tag}", lambda r, key=key, value=value: r.data.tags.get(key) == value))
    return filters


def no_match(filters: list[Filter], runs: list) -> str:
    """Why no run is shown although the store has runs: the filters that match no run on their own, else the
    combination. An unknown --data is a mistake (exit 2): it names no data set in the store."""
    alone = [flag for flag, keep in filters if not any(keep(r) for r in runs)]
    data_flags = [flag for flag in alone if flag.startswith("--data ")]
    if data_flags:
        present = ", ".join(sorted({data_name(r) for r in runs}))
        raise UserError(f"no runs match {data_flags[0]}; data sets in this store: {present}")
    if alone:
        tasks = ", ".join(sorted({task_of(r) for r in runs}))
        hint = f" (tasks in this store: {tasks})" if any(f.startswith("--task ") for f in alone) else ""
        return f"no runs match {', '.join(alone)}{hint}"
    return f"no runs match {' and '.join(flag for flag, _ in filters)} together (each matches some runs)"


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes become a UserError: one line and exit 2, like every other airush mistake."""

    def error(self, message: str):
        raise UserError(f"{self.prog}: {message} (see `{self.prog} --help`)")

    def add_model(self) -> None:
        """MODEL, as every command on a trained model takes it (`airush.inference.trained` resolves it)."""
        self.add_argument("model", help="a run id (or unique prefix) or models:/NAME/VERSION")

    def add_tracking_uri(self) -> None:
        """`--tracking-uri`, which every command on recorded runs takes (`default_tracking_uri` otherwise)."""
        self.add_argument(
            "--tracking-uri",
            help="default: MLFLOW_TRACKING_URI, else sqlite:///./outputs/mlflow.db (where `airush` records)",
        )
