"""The package ships its configs: a built wheel, installed non-editable, composes every task."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile

import pytest

from conftest import REPO


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO / "src").parts) for init in (REPO / "src").rglob("__init__.py")
    } | {"airush.conf"}
    # namespace parents (hydra_plugins) have no __init__.py but must be listed, or an editable install hides
    # our sweeper from Hydra's plugin scan
    found |= {name.rsplit(".", 1)[0] for name in found if name.startswith("hydra_plugins.")}
    assert found == listed


@pytest.mark.slow
def test_non_editable_install_finds_its_configs(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheel_dir), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheel_dir.glob("airush-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in (REPO / "conf").rglob("*.yaml"):
        assert f"airush/conf/{config.relative_to(REPO / 'conf').as_posix()}" in names, config
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = (
        "import airush, airush.cli\n"
        "from hydra import compose, initialize_config_module\n"
        "assert 'site' in airush.__file__, airush.__file__\n"
        "with initialize_config_module('airush.conf', version_base='1.3'):\n"
        "    cfg = compose('config', overrides=['task=music'])\n"
        "print(cfg.model._target_)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "airush.music.models.als.ALSRecommender"
