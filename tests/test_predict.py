"""`airush predict` and `airush serve` on recorded runs: music top-N per user equal to what the run's MLflow
Model serves, registry references, refusals in one line that leave no output file, and a real HTTP server."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from conftest import AIRUSH, SMALL, free_port, run_airush, serving_process

MUSIC_DATA = ["data=synthetic_music", *SMALL["music"]]


@pytest.fixture(scope="module")
def music_run(tmp_path_factory):
    """(folder, tracking uri, run id) of a small EASE run."""
    folder = tmp_path_factory.mktemp("music")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    result = run_airush(["task=music", "model=ease", *SMALL["music"]], folder, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, uri, last_run_id(uri)


def last_run_id(uri: str) -> str:
    import mlflow

    client = mlflow.MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, order_by=["attributes.start_time DESC"], max_results=1)[0].info.run_id


def served_model(uri: str, run_id: str, folder: Path):
    """The run's MLflow Model as `mlflow.pyfunc` loads it from `runs:/<run id>/model`, the store named by
    MLFLOW_TRACKING_URI as a user would (MLflow 3.17 resolves a run's logged model against the global store
    whatever `tracking_uri=` says: mlflow/mlflow#18313); no global tracking URI left behind."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        local = mlflow.artifacts.download_artifacts(
            f"runs:/{run_id}/model", dst_path=str(folder / f"served-{run_id}")
        )
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI")
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before
    return mlflow.pyfunc.load_model(local)


def assert_one_line_refusal(result, *words: str) -> None:
    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip() and "━" not in line]
    assert len(lines) == 1 and lines[0].startswith("airush: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def no_partial_files(folder: Path) -> bool:
    return not list(folder.glob(".*.partial"))


def test_write_predictions_appears_only_when_complete(tmp_path):
    from airush.errors import UserError
    from airush.inference.output import write_predictions

    out = tmp_path / "p.csv"

    def failing():
        yield pd.DataFrame({"user": [1], "score": [0.5]})
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_predictions(out, failing())
    assert not out.exists() and no_partial_files(tmp_path)
    chunks = [
        pd.DataFrame({"user": [1, 2], "score": [0.5, 0.25]}),
        pd.DataFrame({"user": [3], "score": [1.0]}),
    ]
    assert write_predictions(out, iter(chunks)) == 3
    assert pd.read_csv(out)["user"].tolist() == [1, 2, 3]
    with pytest.raises(UserError, match="exists"):
        write_predictions(out, iter(chunks))
    parquet = tmp_path / "p.parquet"
    assert write_predictions(parquet, iter(chunks)) == 3
    assert pd.read_parquet(parquet)["score"].tolist() == [0.5, 0.25, 1.0]
    with pytest.raises(UserError, match=r"\.csv or \.parquet"):
        write_predictions(tmp_path / "p.txt", iter(chunks))


@pytest.mark.slow
def test_music_predict_equals_the_served_model_and_skips_played_items(music_run):
    import numpy as np

    folder, uri, run_id = music_run
    out = folder / "top.csv"
    started = time.monotonic()
    result = run_airush(["predict", run_id[:8], *MUSIC_DATA, "--out", str(out), "--top-n", "7"], folder, uri)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    got = pd.read_csv(out)
    assert list(got.columns) == ["user", "rank", "item", "score"]
    users = got["user"].unique()
    assert len(users) == 300 and (got.groupby("user").size() == 7).all()
    assert (got.groupby("user")["score"].diff().dropna() <= 0).all()  # ranked by descending score

    expected = served_model(uri, run_id, folder).predict(pd.DataFrame({"user": users}), params={"k": 7})
    assert got[["user", "rank", "item"]].to_numpy().tolist() == expected.to_numpy().tolist()

    # nothing the user played: the served model excludes train, valid and test items, predict too
    from airush.inference.trained import trained_model

    with trained_model(uri, run_id) as trained:
        maps = trained.model.get_raw_model()
        assert type(trained.bare_model()) is type(maps.model)
        rows = maps.user_index.get_indexer(got["user"].to_numpy())
        columns = pd.Index(maps.item_ids).get_indexer(got["item"].to_numpy())
        assert (rows >= 0).all() and (columns >= 0).all()
        assert not np.asarray(maps.seen[rows, columns]).any()
    print(f"predict on 300 users x 400 items: {seconds:.1f} s")


@pytest.mark.slow
def test_predict_a_registered_version(music_run):
    folder, uri, run_id = music_run
    result = run_airush(["register", run_id, "--name", "tunes"], folder, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    out = folder / "registered.parquet"
    result = run_airush(["predict", "models:/tunes/1", *MUSIC_DATA, "--out", str(out)], folder, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    got = pd.read_parquet(out)
    assert got.groupby("user").size().eq(10).all()  # the run's default: task.ks[0]
    missing = run_airush(
        ["predict", "models:/tunes/9", *MUSIC_DATA, "--out", str(folder / "x.csv")], folder, uri
    )
    assert_one_line_refusal(missing, "models:/tunes/9")
    assert not (folder / "x.csv").exists()


@pytest.mark.slow
def test_refusals_leave_no_output_file(music_run):
    folder, uri, run_id = music_run
    out = folder / "refused.csv"
    unknown = run_airush(["predict", "0123abcd", *MUSIC_DATA, "--out", str(out)], folder, uri)
    assert_one_line_refusal(unknown, "no run '0123abcd'")
    no_data = run_airush(["predict", run_id, "--out", str(out)], folder, uri)
    assert_one_line_refusal(no_data, "data=")
    not_data = run_airush(["predict", run_id, *MUSIC_DATA, "model=pop", "--out", str(out)], folder, uri)
    assert_one_line_refusal(not_data, "model=pop")
    assert not out.exists()

    out.write_text("mine\n")
    exists = run_airush(["predict", run_id, *MUSIC_DATA, "--out", str(out)], folder, uri)
    assert_one_line_refusal(exists, "exists", "--overwrite")
    assert out.read_text() == "mine\n"
    out.unlink()

    import mlflow

    client = mlflow.MlflowClient(uri)
    logged = client.get_logged_model(client.get_run(run_id).data.tags["airush.model_id"])
    weights = Path(logged.artifact_location.removeprefix("file://")) / "data" / "model" / "ease.npz"
    original = weights.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0xFF
    weights.write_bytes(bytes(flipped))
    try:
        tampered = run_airush(["predict", run_id, *MUSIC_DATA, "--out", str(out)], folder, uri)
        assert_one_line_refusal(tampered, "changed since the run recorded them")
    finally:
        weights.write_bytes(original)
    assert not out.exists() and no_partial_files(folder)


@pytest.mark.slow
def test_users_the_model_never_saw(tmp_path, tracking_uri):
    """pop cannot score a new user: refused in one line (or skipped on request); ease scores their history."""
    uri = tracking_uri
    result = run_airush(["task=music", "model=pop", *SMALL["music"]], tmp_path, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    pop = last_run_id(uri)
    more_users = ["data=synthetic_music", "data.n_users=330", "data.n_items=400", "data.n_artists=40"]
    out = tmp_path / "p.csv"
    refused = run_airush(["predict", pop, *more_users, "--out", str(out)], tmp_path, uri)
    assert_one_line_refusal(refused, "unknown to run", "--skip-unknown-users")
    assert not out.exists()
    skipped = run_airush(
        ["predict", pop, *more_users, "--out", str(out), "--skip-unknown-users"], tmp_path, uri
    )
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert pd.read_csv(out)["user"].nunique() < 330

    result = run_airush(["task=music", "model=ease", *SMALL["music"]], tmp_path, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    ease_out = tmp_path / "ease.csv"
    scored = run_airush(["predict", last_run_id(uri), *more_users, "--out", str(ease_out)], tmp_path, uri)
    assert scored.returncode == 0, scored.stderr[-3000:]
    got = pd.read_csv(ease_out)
    assert got["user"].nunique() == 330
    # nothing a user played in the given data, new users included
    from hydra.utils import instantiate

    from airush.api import compose

    plays = instantiate(compose(["task=music", *more_users]).data).load(seed=42)
    inter = plays.interactions
    played = set(zip(plays.user_ids[inter["user"]], plays.item_ids[inter["item"]], strict=True))
    assert not played & set(zip(got["user"], got["item"], strict=True))


@contextmanager
def serving(folder: Path, uri: str, model: str):
    """`airush serve MODEL` on a free loopback port in its own process group, stopped with the whole group."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"MLFLOW_TRACKING_URI": uri}
    url = f"http://127.0.0.1:{port}"
    command = [AIRUSH, "serve", model, "--host", "127.0.0.1", "--port", str(port)]
    with serving_process(command, url + "/ping", folder / f"serve-{port}.log", cwd=folder, env=env):
        yield url


def invoke(url: str, frame: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
    body = {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
    if params:
        body["params"] = params
    request = urllib.request.Request(
        url + "/invocations", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    return pd.DataFrame(answer["predictions"])


@pytest.mark.slow
def test_serve_music_answers_like_the_pyfunc(music_run):

    folder, uri, run_id = music_run
    users = pd.DataFrame({"user": [0, 5, 17]})
    expected = served_model(uri, run_id, folder).predict(users, params={"k": 5})
    with serving(folder, uri, run_id[:8]) as url:
        got = invoke(url, users, {"k": 5})
    assert got[["user", "rank", "item"]].to_numpy().tolist() == expected.to_numpy().tolist()


@pytest.mark.slow
def test_serve_abuse_sequence_model_takes_raw_events(tmp_path, tracking_uri):

    from airush.abuse.serving import example_events

    uri = tracking_uri
    result = run_airush(["task=abuse", "model=seq", "model.max_epochs=2", *SMALL["abuse"]], tmp_path, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = last_run_id(uri)
    events = example_events()
    expected = served_model(uri, run_id, tmp_path).predict(events)
    with serving(tmp_path, uri, run_id) as url:
        got = invoke(url, events)
    expected = pd.DataFrame(expected)
    assert got.columns.tolist() == expected.columns.tolist()
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_dtype=False, atol=1e-6)


@pytest.mark.parametrize("name", ["ease", "itemknn"])
def test_a_known_users_history_scores_like_the_user(name):
    """`score_history` (new users, from their plays) equals `score` for a user's own training row."""
    import numpy as np
    import scipy.sparse as sp

    from airush.music.models.ease import EASERecommender
    from airush.music.models.itemknn import ItemKNNRecommender

    rng = np.random.default_rng(0)
    train = sp.random(40, 30, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    train.data = np.log1p(rng.integers(1, 9, train.nnz)).astype(np.float32)
    model = (EASERecommender() if name == "ease" else ItemKNNRecommender()).fit(train)
    users = np.array([0, 7, 39])
    np.testing.assert_allclose(model.score_history(train[users]), model.score(users), rtol=1e-6)
