"""Shared fixtures: configs composed like `airush` does, on a temporary tracking store and run dir."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

# ranx, the independent implementation the ranking metrics are checked against, compiles its metrics with
# numba on first use: ~60 s of one worker per fresh venv (and again per process without a warm cache),
# while the tests' cases are small enough that its plain Python runs in seconds. Same code, not compiled.
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
AIRUSH = shutil.which("airush", path=str(Path(sys.executable).parent)) or "airush"

# Small data so every task x model pair trains in a second or two.
SMALL = {
    "abuse": [
        "data.n_users=60",
        "data.sessions_per_user=5",
        "data.bot_share=0.15",
        "data.mouse_actions=[3,8]",
    ],
    "music": ["data.n_users=300", "data.n_items=400", "data.n_artists=40"],
}


@pytest.fixture(scope="session")
def migrated_empty_store(tmp_path_factory) -> Path:
    """An empty sqlite MLflow store with its schema migrated, made once per pytest worker: migrating a new
    store takes a second or more, copying the file does not. Its default experiment (0) is taken out, so that
    the first client of each copy creates it as in a new store, with the artifact root of that client (a
    copied row would point into this template's folder)."""
    import sqlite3

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = tmp_path_factory.mktemp("empty_store")
    path = folder / "mlflow.db"
    store = SqlAlchemyStore(f"sqlite:///{path}", (folder / "mlartifacts").as_uri())
    store.engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("DELETE FROM experiment_tags")
        db.execute("DELETE FROM experiments")
    return path


@pytest.fixture
def new_tracking_uri(tmp_path: Path) -> str:
    """A sqlite store that does not exist yet: for tests of what creates it (the first runs race on it) or
    refuses a store that is not there."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def tracking_uri(tmp_path: Path, migrated_empty_store: Path) -> str:
    """This test's own sqlite store, `mlflow.db` in its tmp_path, empty (no experiment, no run) but already
    migrated: a copy of `migrated_empty_store`. Artifacts of airush's experiments go beside it, to
    tmp_path/mlartifacts."""
    shutil.copy(migrated_empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def compose_cfg(tmp_path: Path, tracking_uri: str, monkeypatch):
    """compose(overrides) -> cfg ready for `airush.runner.run`, as inside a Hydra job."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import airush.cli  # noqa: F401  (registers the resolvers airush's configs use)

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def _compose(overrides: list[str]):
        GlobalHydra.instance().clear()
        with initialize_config_module("airush.conf", version_base="1.3"):
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.run_dir = str(tmp_path / "run" / "_".join(overrides)[:80])
            cfg.mlflow.tracking_uri = tracking_uri
            del cfg["hydra"]
        return cfg

    yield _compose
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # else a later test's relative paths resolve against this test's cwd


def run_airush(args: list[str], cwd: Path, tracking_uri: str | None = None, timeout: int = 300):
    """The installed console script as a subprocess (no TTY, like CI)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["COLUMNS"] = "200"
    return subprocess.run(
        [AIRUSH, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def pytest_terminal_summary(terminalreporter):
    """tests/test_fuzz.py's table of generated bad inputs by kind: tried / held."""
    fuzz = sys.modules.get("test_fuzz")
    if fuzz is not None and fuzz.TALLY:
        terminalreporter.write_sep("-", f"fuzz cases by kind (AIRUSH_FUZZ_SEED={fuzz.SEED})")
        for line in fuzz.tally_table():
            terminalreporter.write_line(line)


def assert_refused_before_any_run(result, tracking_uri: str, *words: str) -> None:
    """The user's mistake answered as promised: exit 2, one `airush: error:` line holding `words`, no traceback,
    and no MLflow run of any status in the store."""
    import mlflow

    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("airush: error: ")
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    client = mlflow.MlflowClient(tracking_uri)
    assert not [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving_process(command: list[str], ready_url: str, log_path: Path, **popen):
    """`command` started with setsid (its own process group), its output in `log_path`; yields the process
    once `ready_url` answers, and stops the whole group afterwards (every worker of a server goes too).
    The venv's `bin` is taken off PATH, as in CI and for a user who runs `.venv/bin/airush` without activating
    the venv: what the command starts by name must still be found."""
    import time
    import urllib.request

    venv_bin = str(Path(sys.executable).parent)
    env = dict(popen.pop("env", os.environ))
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)

    log = open(log_path, "w")  # noqa: SIM115  (held open for the process's lifetime)
    proc = subprocess.Popen(
        ["setsid", *command], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, **popen
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{command[0]} did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield proc
    finally:
        stop_process_group(proc)
        log.close()


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the group, SIGKILL if it lingers; a group that is already gone is fine (a server that died on
    start must fail the test with its log, not with ProcessLookupError)."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
