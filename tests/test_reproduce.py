"""`airush reproduce RUN_ID`: the recorded config, run again, gives the same metrics on CPU."""

from __future__ import annotations

import pytest

from conftest import SMALL, run_airush


def _runs(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], order_by=["start_time ASC"]
    )
    return runs


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["task=abuse", "model=lgbm", *SMALL["abuse"]],
        ["task=music", "model=als", *SMALL["music"]],
        ["task=music", "model=pop", *SMALL["music"]],
        ["task=music", "model=ease", "seed=3", *SMALL["music"]],
    ],
    ids=["lgbm", "als", "pop", "ease"],
)
def test_reproduce_gives_identical_metrics(args, tmp_path, tracking_uri):
    first = run_airush(args, tmp_path, tracking_uri)
    assert first.returncode == 0, first.stderr
    (original,) = _runs(tracking_uri)

    again = run_airush(["reproduce", original.info.run_id, "--tracking-uri", tracking_uri], tmp_path)
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


def test_reproduce_mistakes_are_one_line(tmp_path, tracking_uri):
    missing = run_airush(["reproduce", "0123abc", "--tracking-uri", tracking_uri], tmp_path)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "no MLflow store" in missing.stderr
    args = ["task=music", "model=pop", *SMALL["music"]]
    assert run_airush(args, tmp_path, tracking_uri).returncode == 0
    unknown = run_airush(["reproduce", "0123abc", "--tracking-uri", tracking_uri], tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.strip() == (
        f"airush: error: no run '0123abc' in MLflow store {tracking_uri}"
    )
