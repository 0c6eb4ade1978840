"""How the views of recorded runs read a store: a local sqlite file straight through `sqlite3`, read-only and
without importing MLflow (importing it and opening its store take seconds, the reading itself milliseconds);
any other store (a tracking server, postgres, a sqlite schema this code does not know) through MLflow's client.

Both readers give the same runs, in the same order (MLflow's: newest start first, then run id), with the same
`info` and `data` fields the views use; `tests/test_views.py` checks that both print the same boards.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The MLflow schema revisions (table `alembic_version`) whose runs, params, tags, latest_metrics and experiments
# tables this reader knows; a store at any other revision is read through MLflow's client. The newest is the
# head of the MLflow pinned in pyproject.toml (tests/test_views.py checks it against the installed MLflow).
KNOWN_SCHEMAS = frozenset({"dc11669786a5"})
# `AIRUSH_STORE_READER=mlflow` reads a sqlite store through MLflow's client too (to compare both readers).
READER_ENV = "AIRUSH_STORE_READER"
RUN_COLUMNS = (
    "run_uuid, name, experiment_id, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri"
)
ORDER = "ORDER BY start_time DESC, run_uuid"  # MLflow's own order for search_runs


@dataclass
class RunInfo:
    run_id: str
    run_name: str | None
    experiment_id: str
    user_id: str | None
    status: str
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str | None


@dataclass
class RunData:
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    """What MLflow's `Run` holds that the views read: `info` and `data` (latest metric values)."""

    info: RunInfo
    data: RunData


class SqliteReader:
    """A local MLflow sqlite store, opened read-only (a view never writes, never migrates, never creates)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self.errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    @classmethod
    def open(cls, path: Path) -> SqliteReader | None:
        """A reader on `path`; None when its schema is not one this code knows (MLflow's client reads it)."""
        from urllib.parse import quote

        # autocommit: every statement its own transaction, so no read lock outlives it (a run writing to the
        # store, `airush stop` recording KILLED, would otherwise wait on `airush logs -f`)
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30, isolation_level=None)
        try:
            (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone() or (None,)
            columns = {row[1] for row in db.execute("PRAGMA table_info(experiments)")}
            other_workspaces = (
                "workspace" in columns
                and db.execute("SELECT 1 FROM experiments WHERE workspace != 'default' LIMIT 1").fetchone()
            )
        except sqlite3.Error:
            version, other_workspaces = None, False
        if version not in KNOWN_SCHEMAS or other_workspaces:
            db.close()
            return None
        return cls(db)

    def experiments(self) -> dict[str, str]:
        """{experiment id: name} of every active experiment."""
        rows = self._db.execute(
            "SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active' ORDER BY experiment_id"
        )
        return {str(i): name for i, name in rows}

    def experiment_by_name(self, name: str) -> tuple[str, str, str] | None:
        """(id, name, lifecycle stage) of the experiment called `name`, None when there is none."""
        row = self._db.execute(
            "SELECT experiment_id, name, lifecycle_stage FROM experiments WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else (str(row[0]), row[1], row[2])

    def runs(self, experiment_ids, status: str | None = None) -> list[Run]:
        """Every active run of these experiments (with this status), newest first."""
        ids = [int(i) for i in experiment_ids]
        if not ids:
            return []
        where = f"lifecycle_stage = 'active' AND experiment_id IN ({','.join('?' * len(ids))})"
        if status is not None:
            return self._runs(where + " AND status = ?", [*ids, status])
        return self._runs(where, ids)

    def get_run(self, run_id: str) -> Run | None:
        """The run with this full id, whatever its lifecycle stage (as MLflow's `get_run`)."""
        found = self._runs("run_uuid = ?", [run_id])
        return found[0] if found else None

    def runs_with_prefix(self, prefix: str, experiment_ids, limit: int) -> list[Run]:
        """Active runs of these experiments whose id starts with `prefix` (hexadecimal), at most `limit`."""
        ids = [int(i) for i in experiment_ids]
        if not ids or not set(prefix) <= set("0123456789abcdef"):
            return []
        where = f"lifecycle_stage = 'active' AND experiment_id IN ({','.join('?' * len(ids))}) AND run_uuid LIKE ?"
        return self._runs(where, [*ids, prefix + "%"], limit)

    def _runs(self, where: str, args: list, limit: int | None = None) -> list[Run]:
        query = f"SELECT {RUN_COLUMNS} FROM runs WHERE {where} {ORDER}" + (
            f" LIMIT {int(limit)}" if limit else ""
        )
        runs = {
            row[0]: Run(RunInfo(row[0], row[1], str(row[2]), *row[3:]), RunData())
            for row in self._db.execute(query, args)
        }
        if not runs:
            return []
        # one query per table for all the runs: a temporary table of their ids keeps the IN list out of SQL
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (run_uuid TEXT PRIMARY KEY)")
        self._db.execute("DELETE FROM wanted")
        self._db.executemany("INSERT INTO wanted VALUES (?)", [(run_id,) for run_id in runs])
        join = "JOIN wanted USING (run_uuid)"
        for run_id, key, value in self._db.execute(f"SELECT run_uuid, key, value FROM params {join}"):
            runs[run_id].data.params[key] = value
        for run_id, key, value in self._db.execute(f"SELECT run_uuid, key, value FROM tags {join}"):
            runs[run_id].data.tags[key] = value
        metrics = f"SELECT run_uuid, key, value, is_nan FROM latest_metrics {join}"
        for run_id, key, value, is_nan in self._db.execute(metrics):
            runs[run_id].data.metrics[key] = float("nan") if is_nan else float(value)
        for run in runs.values():
            if not run.info.run_name:
                run.info.run_name = run.data.tags.get("mlflow.runName")
        return list(runs.values())

    def close(self) -> None:
        self._db.close()


class MlflowReader:
    """The same questions asked through MLflow's client (servers, databases, unknown sqlite schemas)."""

    def __init__(self, client: Any) -> None:
        from mlflow.exceptions import MlflowException

        self.client = client
        self.errors = (MlflowException,)

    def experiments(self) -> dict[str, str]:
        out, token = {}, None
        while True:
            page = self.client.search_experiments(max_results=1000, page_token=token)
            out.update({e.experiment_id: e.name for e in page})
            token = page.token
            if not token:
                return out

    def experiment_by_name(self, name: str) -> tuple[str, str, str] | None:
        found = self.client.get_experiment_by_name(name)
        return None if found is None else (found.experiment_id, found.name, found.lifecycle_stage)

    def runs(self, experiment_ids, status: str | None = None) -> list:
        from airush.tracking.store import search_all

        return search_all(self.client, experiment_ids, f"attributes.status = '{status}'" if status else "")

    def get_run(self, run_id: str):
        try:
            return self.client.get_run(run_id)
        except self.errors:
            return None

    def runs_with_prefix(self, prefix: str, experiment_ids, limit: int) -> list:
        ids = list(experiment_ids)
        if not ids or not set(prefix) <= set("0123456789abcdef"):
            return []
        return list(self.client.search_runs(ids, f"attributes.run_id LIKE '{prefix}%'", max_results=limit))

    def close(self) -> None:
        pass


def as_reader(store) -> SqliteReader | MlflowReader:
    """A reader from a reader or an MLflow client (callers that already hold a client)."""
    return store if isinstance(store, SqliteReader | MlflowReader) else MlflowReader(store)
