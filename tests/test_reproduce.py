"""`airush reproduce RUN_ID`: the recorded config, run again, gives the same metrics on CPU."""

from __future__ import annotations

import math
import shutil

import pytest

from airush.records.reproduce import metric_differences, replayed_overrides, same_code

from conftest import SMALL, run_airush


def _runs(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], order_by=["start_time ASC"]
    )
    return runs


def _reproduce(run_id: str, tracking_uri: str, cwd, *extra: str):
    return run_airush(["reproduce", run_id, *extra, "--tracking-uri", tracking_uri], cwd)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["task=abuse", "model=lgbm", *SMALL["abuse"]],
        ["task=music", "model=als", *SMALL["music"]],
        ["task=music", "model=ease", "seed=3", *SMALL["music"]],
    ],
    ids=["lgbm", "als", "ease"],
)
def test_reproduce_gives_identical_metrics(args, tmp_path, tracking_uri):
    """pop is reproduced, with these same checks, by the first reproduction of the test below."""
    first = run_airush(args, tmp_path, tracking_uri)
    assert first.returncode == 0, first.stderr
    (original,) = _runs(tracking_uri)

    again = run_airush(["reproduce", original.info.run_id, "--tracking-uri", tracking_uri], tmp_path)
    assert_identical_reproduction(again, tracking_uri)


def assert_identical_reproduction(again, tracking_uri: str) -> None:
    """`again` (the reproduce command) made the store's second run from its first, with the same data and
    metrics."""
    assert again.returncode == 0, again.stderr
    assert "data fingerprint" not in again.stderr
    original, repeat = _runs(tracking_uri)
    assert repeat.data.tags["airush.reproduces"] == original.info.run_id
    assert repeat.data.tags["airush.reproduce.same_data"] == "true"
    assert repeat.data.tags["airush.model"] == original.data.tags["airush.model"]
    assert repeat.data.tags["airush.config_hash"] == original.data.tags["airush.config_hash"]
    assert repeat.data.tags["data.fingerprint"] == original.data.tags["data.fingerprint"]
    assert len(original.data.metrics) > 5
    assert repeat.data.metrics == original.data.metrics
    assert repeat.data.tags["airush.metrics_identical"] == "true"
    assert again.stdout.strip().endswith(
        f"airush: metrics identical to run {original.info.run_id} ({len(original.data.metrics)} metrics)"
    )


@pytest.mark.slow
def test_reproduce_warns_when_the_data_differs(tmp_path, tracking_uri):
    args = ["task=music", "model=pop", *SMALL["music"]]
    assert run_airush(args, tmp_path, tracking_uri).returncode == 0
    (original,) = _runs(tracking_uri)
    again = run_airush(
        ["reproduce", original.info.run_id, "data.n_users=310", "--tracking-uri", tracking_uri], tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert f"differs from run {original.info.run_id}'s" in again.stderr
    _, repeat = _runs(tracking_uri)
    assert repeat.data.tags["airush.reproduce.same_data"] == "false"
    assert repeat.data.tags["airush.metrics_identical"] == "false"
    (verdict,) = [line for line in again.stdout.splitlines() if "metrics differ" in line]
    assert verdict.startswith(f"airush: metrics differ from run {original.info.run_id} in ")
    before, after = original.data.metrics, repeat.data.metrics
    first = min(name for name in before if before[name] != after[name])  # the line lists them sorted
    assert f"): {first}: {before[first]!r} -> {after[first]!r}; " in verdict


@pytest.mark.slow
def test_a_reproduction_of_a_run_with_added_keys_reproduces_again(tmp_path, tracking_uri):
    """`+key=value` overrides and the `+reproduce=run` a reproduction records are both replayable; the first
    reproduction is also test_reproduce_gives_identical_metrics for pop."""
    args = ["task=music", "model=pop", "+mlflow.note=baseline", *SMALL["music"]]
    assert run_airush(args, tmp_path, tracking_uri).returncode == 0
    (original,) = _runs(tracking_uri)
    again = _reproduce(original.info.run_id, tracking_uri, tmp_path)
    assert_identical_reproduction(again, tracking_uri)
    _, first = _runs(tracking_uri)
    twice = _reproduce(first.info.run_id, tracking_uri, tmp_path)
    assert twice.returncode == 0, twice.stderr
    _, first, second = _runs(tracking_uri)
    assert second.data.tags["airush.reproduces"] == first.info.run_id
    assert second.data.tags["mlflow.note.content"] == "baseline"  # the run's description in the UI
    assert second.data.tags["airush.metrics_identical"] == "true"
    assert second.data.metrics == first.data.metrics == original.data.metrics


@pytest.mark.slow
def test_reproduction_lands_in_the_store_it_was_read_from(tmp_path):
    """Recorded overrides naming where the run went (store, outputs) are not replayed: a copied store gets the
    reproduction, the original store and outputs are left alone."""
    first, copy = tmp_path / "first", tmp_path / "copy"
    copy.mkdir()
    args = [
        "task=music",
        "model=pop",
        f"mlflow.tracking_uri=sqlite:///{first / 'mlflow.db'}",
        f"paths.outputs={first / 'outputs'}",
        *SMALL["music"],
    ]
    assert run_airush(args, tmp_path).returncode == 0
    shutil.copy(first / "mlflow.db", copy / "mlflow.db")
    (original,) = _runs(f"sqlite:///{first / 'mlflow.db'}")
    again = _reproduce(original.info.run_id, f"sqlite:///{copy / 'mlflow.db'}", tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(_runs(f"sqlite:///{first / 'mlflow.db'}")) == 1
    _, repeat = _runs(f"sqlite:///{copy / 'mlflow.db'}")
    assert repeat.data.tags["airush.reproduces"] == original.info.run_id
    assert len(list((first / "outputs" / "runs").glob("*/*"))) == 1


@pytest.mark.slow
def test_reproduce_tags_what_it_cannot_vouch_for(tmp_path, tracking_uri):
    """No recorded data fingerprint: same_data is unknown, never true; another commit: same_code is false."""
    from mlflow.tracking import MlflowClient

    args = ["task=music", "model=pop", *SMALL["music"]]
    assert run_airush(args, tmp_path, tracking_uri).returncode == 0
    (original,) = _runs(tracking_uri)
    client = MlflowClient(tracking_uri)
    client.delete_tag(original.info.run_id, "data.fingerprint")
    client.set_tag(original.info.run_id, "git.commit", "0" * 40)
    client.set_tag(original.info.run_id, "airush.code", "0" * 16)  # other source or library versions
    again = _reproduce(original.info.run_id, tracking_uri, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "made at commit 000000000000" in again.stderr
    _, repeat = _runs(tracking_uri)
    assert repeat.data.tags.get("airush.reproduce.same_data", "unknown") == "unknown"
    assert repeat.data.tags["airush.reproduce.same_code"] == "false"
    assert repeat.data.tags["airush.metrics_identical"] == "true"


@pytest.mark.slow
def test_reproduce_mistakes_are_one_line(tmp_path, new_tracking_uri):
    missing = run_airush(["reproduce", "0123abc", "--tracking-uri", new_tracking_uri], tmp_path)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "no MLflow store" in missing.stderr
    args = ["task=music", "model=pop", *SMALL["music"]]
    assert run_airush(args, tmp_path, new_tracking_uri).returncode == 0
    unknown = run_airush(["reproduce", "0123abc", "--tracking-uri", new_tracking_uri], tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.strip() == (
        f"airush: error: no run '0123abc' in MLflow store {new_tracking_uri}"
    )


def test_reproduce_usage_names_only_the_run_id(tmp_path):
    result = run_airush(["reproduce"], tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "required: run_id (" in result.stderr and "overrides" not in result.stderr


@pytest.mark.slow
def test_a_run_without_config_artifacts_is_named_as_such(tmp_path, tracking_uri):
    """A run that never logged its config (here: FAILED, no artifacts at all) is refused in one accurate line."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("music", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    client.set_terminated(run_id, "FAILED")
    result = _reproduce(run_id, tracking_uri, tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == (
        f"airush: error: run {run_id} (FAILED) has no hydra/config_resolved.yaml or hydra/overrides.yaml "
        "artifact: not an airush run, or one that ended before logging it"
    )


def test_replayed_overrides_leave_out_where_the_run_went():
    recorded = [
        "task=music",
        "+mlflow.note=x",
        "++seed=3",
        "+hparams_search=music_als",
        "~lr",
        "mlflow.tracking_uri=sqlite:////elsewhere/mlflow.db",
        "mlflow.run_name=baseline",
        "paths.run_dir=/original/run",
        "hydra.run.dir=/original/run",
        "+reproduce=run",
    ]
    assert replayed_overrides(recorded) == [
        "task=music",
        "++mlflow.note=x",
        "++seed=3",
        "+hparams_search=music_als",
        "~lr",
    ]


@pytest.mark.parametrize(
    "recorded, current, same",
    [
        ({"git.commit": "a", "git.dirty": "false"}, ("a", "false"), "true"),
        ({"git.commit": "a", "git.dirty": "false"}, ("b", "false"), "false"),
        ({"git.commit": "a", "git.dirty": "true"}, ("b", "true"), "false"),
        ({"git.commit": "a", "git.dirty": "true"}, ("a", "false"), "unknown"),
        ({}, ("a", "false"), "unknown"),
        ({"git.commit": "a", "git.dirty": "false"}, ("unknown", "unknown"), "unknown"),
    ],
)
def test_same_code(recorded, current, same):
    assert same_code(recorded, current) == same


def test_same_code_goes_by_the_code_fingerprint_when_the_run_has_one():
    dirty = {"git.commit": "a", "git.dirty": "true", "airush.code": "f00d"}
    assert same_code(dirty, ("a", "true"), "f00d") == "true"  # git alone could not tell
    assert same_code({**dirty, "git.dirty": "false"}, ("a", "false"), "beef") == "false"  # e.g. a new library
    assert same_code({"git.commit": "a", "git.dirty": "false"}, ("a", "false"), "f00d") == "true"  # older run


def test_metric_differences_are_exact():
    nan, next_up = float("nan"), math.nextafter(0.1, 1.0)
    assert metric_differences({"a": 0.1, "b": nan}, {"a": 0.1, "b": nan}) == []
    assert metric_differences({"a": 0.1, "b": 1.0}, {"a": next_up, "c": 2.0}) == [
        f"a: 0.1 -> {next_up!r}",
        "b: 1.0 -> none",
        "c: none -> 2.0",
    ]


def _artifact_file(tracking_uri: str, run_id: str, path: str):
    """The local file behind a run's artifact (sqlite store, artifacts in a folder beside it)."""
    from pathlib import Path
    from urllib.parse import urlparse

    from mlflow.tracking import MlflowClient

    root = urlparse(MlflowClient(tracking_uri).get_run(run_id).info.artifact_uri).path
    return Path(root) / path


PICKLE_PAYLOAD = """
import os, pickle, sys
class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {sys.argv[2]}",))
with open(sys.argv[1], "wb") as out:
    pickle.dump(Payload(), out)
"""


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory):
    """(cwd, tracking URI, run id) of one small abuse run, its artifacts edited by each test on a copy."""
    cwd = tmp_path_factory.mktemp("recorded")
    uri = f"sqlite:///{cwd / 'mlflow.db'}"
    result = run_airush(["task=abuse", "model=lgbm", *SMALL["abuse"]], cwd, uri)
    assert result.returncode == 0, result.stderr
    (run,) = _runs(uri)
    return cwd, uri, run.info.run_id


def _tampered_copy(recorded_run, tmp_path, edit):
    """A copy of the recorded store whose run's artifact `path` is rewritten by `edit(text) -> text`."""
    cwd, _uri, run_id = recorded_run
    copy = tmp_path / "store"
    shutil.copytree(cwd, copy, ignore=shutil.ignore_patterns("runs", "outputs"))
    copy_uri = f"sqlite:///{copy / 'mlflow.db'}"
    import sqlite3

    with sqlite3.connect(copy / "mlflow.db") as db:  # the artifact folder moves with the copy
        db.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)", (str(cwd), str(copy)))
        db.execute(
            "UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)",
            (str(cwd), str(copy)),
        )
    for path, change in edit.items():
        target = _artifact_file(copy_uri, run_id, path)
        target.write_text(change(target.read_text()))
    return copy, copy_uri, run_id


@pytest.mark.slow
@pytest.mark.parametrize(
    "target",
    ["pandas.read_pickle", "joblib.load", "numpy.load", "torch.load"],
)
def test_a_recorded_config_naming_a_loader_runs_nothing(recorded_run, tmp_path, target):
    """A store anyone can write to: a config edited to unpickle a file is refused before anything is built,
    in one line naming the key; the pickle's payload never runs."""
    import subprocess
    import sys

    import yaml

    evil, marker = tmp_path / "evil.pkl", tmp_path / "PAYLOAD_RAN"
    subprocess.run([sys.executable, "-c", PICKLE_PAYLOAD, str(evil), str(marker)], check=True)

    def edit(text: str) -> str:
        config = yaml.safe_load(text)
        config["features"]["scheme"] = {"_target_": target, "_args_": [str(evil)], "allow_pickle": True}
        return yaml.safe_dump(config)

    cwd, uri, run_id = _tampered_copy(recorded_run, tmp_path, {"hydra/config_resolved.yaml": edit})
    result = _reproduce(run_id, uri, cwd)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert "features.scheme._target_" in line and target in line and "AIRUSH_TRUSTED_PACKAGES" in line
    assert not marker.exists()
    assert len(_runs(uri)) == 1  # no reproduction recorded


@pytest.mark.slow
@pytest.mark.parametrize(
    ("artifact", "text", "expected"),
    [
        ("hydra/choices.yaml", "model: ../../../tmp/x\n", "is not a config name"),
        ("hydra/overrides.yaml", "- features.scheme._target_=builtins.eval\n", "builtins.eval"),
        ("hydra/config_resolved.yaml", "seed: ${oc.env:HOME}\n", "interpolation at seed"),
    ],
    ids=["choice-path", "override-target", "interpolation"],
)
def test_other_edits_of_a_recorded_run_are_refused(recorded_run, tmp_path, artifact, text, expected):
    import yaml

    def edit(current: str) -> str:
        if artifact == "hydra/config_resolved.yaml":
            return yaml.safe_dump({**yaml.safe_load(current), **yaml.safe_load(text)}).replace("'", "")
        return text

    cwd, uri, run_id = _tampered_copy(recorded_run, tmp_path, {artifact: edit})
    result = _reproduce(run_id, uri, cwd)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert expected in line
    assert len(_runs(uri)) == 1
