"""Failures of the machine and secrets of the user: one line naming what and where, exit 1 for the
environment (disk full, read-only), never SQL or parameter values; a database password in no file or line.

The full and read-only filesystems are real tmpfs mounts (root in CI); where mounting is not permitted the
tests skip and say so."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import SMALL, run_airush

ARGS = ["task=abuse", "model=lgbm", *SMALL["abuse"]]
SQL_WORDS = ("SELECT", "INSERT", "UPDATE ", "parameters", "sqlalchemy", "Traceback")


@pytest.fixture
def mount(tmp_path):
    """mount(options) -> a fresh tmpfs mounted with `options` under tmp_path; unmounted afterwards."""
    mounted: list[Path] = []

    def _mount(options: str) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
        mounted.append(point)
        return point

    yield _mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def fill(folder: Path) -> None:
    """Write until the filesystem refuses: ENOSPC from now on."""
    with (folder / "filler").open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass


def assert_environment_line(result, *words: str) -> str:
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-3000:]
    (line,) = lines
    assert line.startswith("airush: error: ")
    for word in words:
        assert word in line, line
    assert not any(word in result.stdout + result.stderr for word in SQL_WORDS)
    return line


@pytest.mark.slow
def test_a_full_run_dir_names_the_folder(tmp_path, tracking_uri, mount):
    full = mount("size=2m")
    fill(full)
    result = run_airush([*ARGS, f"paths.run_dir={full / 'run'}"], tmp_path, tracking_uri)
    assert_environment_line(result, "no space left on the device (disk full)", str(full / "run"))


@pytest.mark.slow
def test_a_full_store_names_the_database(tmp_path, mount):
    full = mount("size=2m")
    fill(full)
    uri = f"sqlite:///{full / 'mlflow.db'}"
    result = run_airush(ARGS, tmp_path, uri)
    assert_environment_line(result, "disk full", str(full / "mlflow.db"))


@pytest.mark.slow
def test_a_read_only_run_dir_or_working_directory_is_one_line(tmp_path, tracking_uri, mount):
    read_only = mount("ro,size=1m")
    result = run_airush([*ARGS, f"paths.run_dir={read_only / 'run'}"], tmp_path, tracking_uri)
    assert_environment_line(result, "read-only file system", str(read_only / "run"))

    in_read_only = run_airush(ARGS, read_only, tracking_uri)
    assert_environment_line(in_read_only, "read-only file system", str(read_only))


@pytest.mark.slow
def test_a_database_password_is_in_no_line_and_no_file(tmp_path):
    """The override holding it is printed and recorded in `.hydra/`, and names a server that is not there: the
    password shows in no console line and no file airush or Hydra wrote (it is kept as an environment
    reference, so no file needs to be private)."""
    secret = "Pw-s3cret-4711"
    uri = f"postgresql://eve:{secret}@127.0.0.1:9/mlflow"
    result = run_airush([*ARGS, f"mlflow.tracking_uri={uri}"], tmp_path)
    assert result.returncode in (1, 2), result.stderr[-2000:]
    assert secret not in result.stdout + result.stderr
    assert "postgresql://***@127.0.0.1:9/mlflow" in result.stdout + result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.parent.name == ".hydra" for p in written)  # Hydra recorded the job: the check has teeth
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
