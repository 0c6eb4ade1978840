"""The input paths a data config declares (`airush.data.inputs`): a missing one is one line and exit 2, checked
as soon as the config is composed, before pandas, the task's code or MLflow load (scripts/bench_cli.py times
it against the 1 s goal)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airush.data.inputs import check_inputs, declared_inputs
from airush.errors import DataError

from conftest import run_airush


def test_each_user_file_source_declares_its_paths():
    assert declared_inputs("airush.abuse.data.events.EventFiles") == {"events": "file", "sessions": "file"}
    assert declared_inputs("airush.music.data.files.InteractionFiles") == {
        "interactions": "file",
        "items": "file",
    }
    for target in (
        "airush.abuse.data.balabit.BalabitMouse",
        "airush.music.data.lastfm.LastFMHetRec",
        "airush.music.data.melon.MelonPlaylists",
        "airush.music.data.movielens.MovieLens",
    ):
        assert declared_inputs(target) == {"root": "folder"}, target
    assert declared_inputs("airush.music.data.synthetic.SyntheticPlays") == {}
    assert declared_inputs("no.such.Class") == {}


def test_declarations_are_read_without_importing_the_loader():
    code = (
        "import sys; from airush.data.inputs import declared_inputs; "
        "print(declared_inputs('airush.abuse.data.events.EventFiles'), 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "{'events': 'file', 'sessions': 'file'} False"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data=events", "data.events=nope.csv", "data.sessions=s.csv"], "nope.csv: file not found"),
        (["data=events", "data.events=e.csv", "data.sessions=sub"], "sub: file not found"),  # a folder
        (
            ["task=music", "data=plays", "data.interactions=p.csv", "data.items=nope.csv"],
            "nope.csv: file not found",
        ),
        (["task=music", "data=lastfm", "data.root=nope"], "nope: folder not found (set data.root=...)"),
        (
            ["task=music", "data=movielens"],
            "data/movielens: folder not found (set data.root=... or AIRUSH_DATA_DIR)",
        ),
    ],
)
def test_the_first_missing_input_is_one_error_naming_it(
    overrides, message, compose_cfg, tmp_path, monkeypatch
):
    monkeypatch.delenv("AIRUSH_DATA_DIR", raising=False)
    for name in ("e.csv", "s.csv", "p.csv"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError) as err:
        check_inputs(compose_cfg(overrides))
    assert str(err.value).endswith(message) and str(tmp_path) in str(err.value)


@pytest.mark.parametrize(
    "overrides",
    [
        ["data=events"],  # ??? : the config check asks for them
        ["task=music", "data=plays", "data.interactions=p.csv"],  # items: null
        ["task=music"],  # synthetic: declares nothing
        ["data=events", "data.events=${oc.env:AIRUSH_NOPE}", "data.sessions=s.csv"],  # the config check's
    ],
)
def test_unset_optional_and_undeclared_inputs_are_left_to_the_config_check(overrides, compose_cfg, tmp_path):
    (tmp_path / "p.csv").write_text("x\n")
    (tmp_path / "s.csv").write_text("x\n")
    check_inputs(compose_cfg(overrides))


def test_cli_refuses_a_missing_file_before_the_run_starts(tmp_path, tracking_uri):
    result = run_airush(
        ["data=events", "data.events=nope.csv", "data.sessions=nope.csv"], tmp_path, tracking_uri
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"airush: error: {tmp_path / 'nope.csv'}: file not found"
    assert result.stdout == ""  # no config summary: nothing of the run was started
    assert "Traceback" not in result.stderr
