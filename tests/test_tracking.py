"""Tracking URIs with credentials: probed and used without ever printing or resolving the secret."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from airush.errors import ConfigError
from airush.tracking.store import check_server_reachable, redact_text, split_credentials


def test_redact_text_masks_every_userinfo_and_nothing_else():
    text = "mlflow.tracking_uri=http://ann:s3cret@10.0.0.5:5000 db=postgresql://u:p@db/x sqlite:////tmp/a.db"
    assert redact_text(text) == (
        "mlflow.tracking_uri=http://***@10.0.0.5:5000 db=postgresql://***@db/x sqlite:////tmp/a.db"
    )


def test_split_credentials_unquotes_and_leaves_other_uris_alone():
    assert split_credentials("https://a%40b:p%3Aw@host:8443/mlflow") == (
        "https://host:8443/mlflow",
        "a@b",
        "p:w",
    )
    assert split_credentials("postgresql://u:p@db/x") == ("postgresql://u:p@db/x", None, None)


@pytest.fixture
def auth_server():
    """A loopback HTTP server that answers /health with 401 unless given the right basic auth."""
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            ok = self.headers.get("Authorization") == "Basic " + base64.b64encode(b"ann:s3cret").decode()
            self.send_response(200 if ok else 401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()


def test_the_probe_sends_credentials_as_a_header_not_in_the_host(auth_server):
    port, seen = auth_server
    check_server_reachable(f"http://ann:s3cret@127.0.0.1:{port}")
    assert seen == [("/health", "Basic " + base64.b64encode(b"ann:s3cret").decode())]


def test_an_unreachable_server_with_credentials_is_one_line_without_the_secret():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConfigError) as err:
        check_server_reachable(f"http://ann:s3cret@127.0.0.1:{port}")
    assert "s3cret" not in str(err.value) and f"http://***@127.0.0.1:{port}" in str(err.value)


def test_only_a_failing_store_counts_as_the_store_failing():
    import requests
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    from airush.tracking.store import store_failure

    try:
        try:
            raise requests.exceptions.ConnectionError("Connection refused")
        except requests.exceptions.ConnectionError as cause:
            raise MlflowException("API request to http://h/api/2.0/mlflow/runs/create failed") from cause
    except MlflowException as err:
        wrapped = err
    assert store_failure(wrapped) == "server"
    locked = sqlalchemy.exc.OperationalError("INSERT", {}, Exception("database is locked"))
    assert store_failure(locked) == "database"
    assert (
        store_failure(MlflowException("Changing param values is not allowed", "INVALID_PARAMETER_VALUE"))
        is None
    )
    assert store_failure(BrokenPipeError("a worker went away")) is None
    assert store_failure(ValueError("negative dimensions are not allowed")) is None


def test_credentials_leave_the_uri_runs_use_and_no_other(monkeypatch):
    import os

    from airush.config.command_line import take_credentials_out_of_uris

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://a:b@server1:5000")
    # the override names the server runs go to: its credentials (none here) are the ones to use
    args = take_credentials_out_of_uris(["-m", "mlflow.tracking_uri='http://c:d,e@server2:5000'"])
    assert args[1] == "mlflow.tracking_uri='http://server2:5000'"  # quotes kept, credentials out
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("c", "d,e")

    take_credentials_out_of_uris(["task=music"])
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://server1:5000"
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("a", "b")


def test_the_tracking_uri_fixture_is_a_migrated_store_of_this_test_alone(tmp_path, tracking_uri, monkeypatch):
    """conftest's `tracking_uri` copies one migrated template store: the copy is this test's file, empty, and
    what is logged to it (airush's experiment, and the default experiment a client creates) lands in this
    test's tmp_path, not in the template's folder."""
    import mlflow

    from airush.tracking.store import open_experiment

    monkeypatch.chdir(tmp_path)
    assert tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}" and (tmp_path / "mlflow.db").is_file()
    client, experiment_id = open_experiment(tracking_uri, "abuse", None)
    default = client.get_experiment("0")  # made by this test's first client, as in a new store
    assert default.artifact_location == str(tmp_path / "mlruns" / "0")
    assert [e.name for e in client.search_experiments()] == ["abuse", "Default"]
    assert experiment_id == "1" and not client.search_runs(["0", experiment_id])
    run = client.create_run(experiment_id)
    (tmp_path / "note.txt").write_text("hello")
    client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
    client.set_terminated(run.info.run_id)
    assert (
        tmp_path / "mlartifacts" / "abuse" / run.info.run_id / "artifacts" / "note.txt"
    ).read_text() == "hello"
    in_default = client.create_run("0")
    client.log_artifact(in_default.info.run_id, str(tmp_path / "note.txt"))
    assert (tmp_path / "mlruns" / "0" / in_default.info.run_id / "artifacts" / "note.txt").is_file()
    assert mlflow.MlflowClient(tracking_uri).get_experiment_by_name("abuse").experiment_id == experiment_id
