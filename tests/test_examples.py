"""The out-of-tree plugin of examples/airush-example-plugin, used as a user would: copied to a folder outside
the repo and run with `--config-dir`, installed as a package (its search-path plugin), and through the Python
API; its runs sweep, tune, log, serve, reproduce and show on the leaderboard with no edit to airush."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from airush.errors import DataError

from conftest import AIRUSH, REPO, SMALL

EXAMPLE = REPO / "examples" / "airush-example-plugin"
ABUSE = ["model=sklearn_logreg", *SMALL["abuse"]]
TRUSTED = {"AIRUSH_TRUSTED_PACKAGES": "airush_example"}


def environment(uri: str | None, pythonpath: Path | None, extra: dict[str, str] | None = None) -> dict:
    """run_airush's environment (no TTY width surprises, the test's store) plus the user's PYTHONPATH; never
    this machine's trust list or tracking URI."""
    drop = ("MLFLOW_TRACKING_URI", "AIRUSH_TRUSTED_PACKAGES", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    env["COLUMNS"] = "200"
    return env | (extra or {})


def airush(args, cwd, uri, pythonpath, extra=None, timeout=600) -> subprocess.CompletedProcess:
    """The installed console script, as `conftest.run_airush` runs it, with the user's code importable."""
    return subprocess.run(
        [AIRUSH, *args],
        cwd=cwd,
        env=environment(uri, pythonpath, extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def python(script: str, args, cwd, uri, pythonpath, extra=None) -> subprocess.CompletedProcess:
    """`script` (reading `args` as sys.argv[1:]) in a fresh interpreter, as a user's notebook would run it."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env=environment(uri, pythonpath, extra),
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


def run_id_of(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("MLflow run: ")]
    return line.split()[2]


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def example_module(name: str):
    """An example module loaded from its file under a name of its own: putting the example on this process's
    sys.path would let its search-path plugin into every other test's Hydra."""
    spec = importlib.util.spec_from_file_location(
        f"_example_{name}", EXAMPLE / "airush_example" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def user(tmp_path_factory) -> Path:
    """A user's folder outside the repo: the example package (code + conf/) and their own play logs."""
    folder = tmp_path_factory.mktemp("user")
    shutil.copytree(EXAMPLE / "airush_example", folder / "airush_example")
    write_play_logs(folder / "data")
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, str]:
    """(working directory, tracking URI) shared by the runs of this module that are looked at together."""
    cwd = tmp_path_factory.mktemp("work")
    return cwd, f"sqlite:///{cwd / 'mlflow.db'}"


@pytest.fixture(scope="module")
def abuse_run(user, store) -> str:
    """The sklearn detector, run once from the user's folder with --config-dir: its MLflow run id."""
    cwd, uri = store
    return run_id_of(airush(["--config-dir", str(user / "airush_example" / "conf"), *ABUSE], cwd, uri, user))


def write_play_logs(folder: Path) -> None:
    """plays.csv / items.csv in the `data=plays` schema: 150 users with text ids, each playing ~12 of the 40
    tracks of their favourite of 4 genres and a few others."""
    rng = np.random.default_rng(7)
    folder.mkdir()
    items = pd.DataFrame(
        {"item": [f"t{i:03d}" for i in range(160)], "genre": [f"g{i % 4}" for i in range(160)]}
    )
    rows = []
    for u in range(150):
        liked = np.flatnonzero(np.arange(160) % 4 == u % 4)
        picks = np.r_[rng.choice(liked, 12, replace=False), rng.choice(160, 3, replace=False)]
        rows += [(f"u{u:03d}", f"t{i:03d}", int(rng.integers(1, 20))) for i in np.unique(picks)]
    pd.DataFrame(rows, columns=["user", "item", "plays"]).to_csv(folder / "plays.csv", index=False)
    items.to_csv(folder / "items.csv", index=False)


# --- the example's code, in this process -------------------------------------------------------------------


def test_detector_imputes_missing_features_and_saves_without_pickle(tmp_path):
    detector_module = example_module("sklearn_detector")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=["a", "b", "c", "never"])
    X.loc[::7, "b"] = np.nan
    X.loc[::5, "c"] = np.inf
    X["never"] = np.nan  # measured on no training session
    y = (X["a"] + rng.normal(scale=0.5, size=300) > 1).astype(int).to_numpy()
    before = X.copy()
    detector = detector_module.SklearnLogRegDetector(C=0.5).fit(X, y, X, y)
    pd.testing.assert_frame_equal(X, before)  # the caller's frame is not changed
    scores = detector.predict_proba(X[["never", "c", "b", "a"]])  # columns by name
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()
    assert detector.feature_importance().index[0] == "a"

    detector.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logreg.json", "logreg.npz", "params.json"]
    loaded = detector_module.SklearnLogRegDetector.load(tmp_path)
    assert loaded.get_params() == detector.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), scores)


def test_coplay_recommends_what_the_same_users_play_and_round_trips(tmp_path):
    recommender_module = example_module("recommender")
    # users 0-2 play items 0-2 together; user 3 played item 0 only; item 3 is played once, alone
    train = sp.csr_matrix(np.array([[1, 5, 1, 0], [2, 1, 1, 0], [1, 1, 0, 0], [3, 0, 0, 0], [0, 0, 0, 1]]))
    model = recommender_module.CoPlayRecommender(neighbours=2, shrinkage=0.0, popularity_weight=0.0).fit(
        train
    )
    scores = model.score(np.array([3]))
    assert scores.dtype == np.float32 and scores.shape == (1, 4)
    assert scores[0, 1] > scores[0, 2] > scores[0, 3] == 0  # item 1 shares more players with item 0
    assert model.similar_.getnnz(axis=1).max() <= 2
    model.save(tmp_path)
    loaded = recommender_module.CoPlayRecommender.load(tmp_path)
    np.testing.assert_array_equal(loaded.score(np.arange(5)), model.score(np.arange(5)))

    kept = recommender_module.top_per_row(sp.csr_matrix(np.array([[0, 3.0, 3.0, 1.0], [2.0, 0, 0, 5.0]])), 2)
    np.testing.assert_array_equal(kept.toarray(), [[0, 3, 3, 0], [2, 0, 0, 5]])  # ties: the lower column


def test_idle_features_measure_gaps_between_events_in_ms():
    features = example_module("features").IdleFeatures(pause_ms=1000.0, idle_ms=10000.0)
    events = pd.DataFrame({"session_id": [1, 1, 1, 1, 3, 3, 5], "t_ms": [0, 100, 2100, 20000, 0, 10, 0.0]})
    out = features.chunk_features(events, np.array([1, 2, 3, 5]))
    assert list(out.index) == [1, 2, 3, 5]
    first = out.loc[1]
    assert first["idle_gap_median_ms"] == 2000.0 and first["idle_longest_s"] == 17.9
    assert first["idle_pauses"] == 2 and first["idle_periods"] == 1
    assert first["idle_pause_share"] == pytest.approx((2000 + 17900) / 20000)
    assert first["idle_pauses_per_min"] == pytest.approx(2 / (20000 / 60000))
    assert out.loc[3, "idle_pauses"] == 0
    assert out.loc[[2, 5]].isna().all().all()  # no events, one event: no gaps to measure


# --- the user's folder, through --config-dir ---------------------------------------------------------------


def test_help_lists_the_users_options_under_their_task(user, tmp_path):
    result = airush(["--config-dir", str(user / "airush_example" / "conf"), "--help"], tmp_path, None, user)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # help wraps long lines
    models = text.split("model: ", 1)[1].split(" data: ", 1)[0]
    abuse, music = models.split("; ")
    assert "sklearn_logreg" in abuse and "coplay" in music
    assert "with_idle" in text.split("features: ", 1)[1].split("; music", 1)[0]
    assert "abuse_sklearn_logreg" in text.split("hparams_search: ", 1)[1]


def test_wrong_task_and_bad_settings_are_refused_in_one_line(user, tmp_path):
    conf = str(user / "airush_example" / "conf")
    result = airush(["--config-dir", conf, "task=music", "model=sklearn_logreg"], tmp_path, None, user)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("airush: error: model 'sklearn_logreg' is for task abuse, not music;")
    assert "coplay" in line.split("music model choices: ", 1)[1]

    # the user's settings are checked like airush's: the class's annotations and `ranges`
    result = airush(["--config-dir", conf, "model=sklearn_logreg", "model.C=-1"], tmp_path, None, user)
    assert result.returncode == 2 and result.stderr == "airush: error: model.C must be > 0, got -1\n"


@pytest.mark.slow
def test_the_users_model_runs_and_is_recorded(abuse_run, store):
    _, uri = store
    run = client(uri).get_run(abuse_run)
    assert run.info.status == "FINISHED"
    assert run.data.tags["airush.model"] == "sklearn_logreg"
    assert run.data.params["model._target_"] == "airush_example.sklearn_detector.SklearnLogRegDetector"
    assert 0.5 < run.data.metrics["roc_auc"] <= 1.0 and "valid_roc_auc" in run.data.metrics
    evaluation = {a.path for a in client(uri).list_artifacts(abuse_run, "evaluation")}
    assert {"evaluation/test_predictions.parquet", "evaluation/feature_importance.csv"} <= evaluation


# A fresh interpreter serves the run's MLflow Model the raw events of the run's first 5 test sessions (its data
# generated again from the run's resolved config) and prints the scores next to the ones the run recorded.
SERVE_ABUSE = """
import json, sys
import mlflow, pandas as pd
from hydra.utils import instantiate
from omegaconf import OmegaConf
run_id = sys.argv[1]
cfg = OmegaConf.load(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="hydra/config_resolved.yaml"))
recorded = pd.read_parquet(mlflow.artifacts.download_artifacts(
    run_id=run_id, artifact_path="evaluation/test_predictions.parquet")).head(5)
events = instantiate(cfg.data).load(seed=int(cfg.seed)).events
events = events[events["session_id"].isin(recorded["session_id"])].astype({"event": str, "button": str})
served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(events).set_index("session_id")["score"]
print(json.dumps({"served": served.loc[recorded["session_id"]].tolist(), "recorded": recorded["score"].tolist()}))
"""


@pytest.mark.slow
def test_the_runs_model_serves_its_test_scores_only_when_trusted(abuse_run, store, user):
    cwd, uri = store
    trusted = python(SERVE_ABUSE, [abuse_run], cwd, uri, user, TRUSTED)
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    scores = json.loads(trusted.stdout.strip().splitlines()[-1])
    assert len(scores["served"]) == 5
    np.testing.assert_allclose(scores["served"], scores["recorded"], rtol=1e-12)

    refused = python(SERVE_ABUSE, [abuse_run], cwd, uri, user)
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert "airush_example.sklearn_detector.SklearnLogRegDetector" in last
    assert "outside the packages airush trusts" in last and "AIRUSH_TRUSTED_PACKAGES" in last


@pytest.mark.slow
def test_the_leaderboard_shows_the_users_model(abuse_run, store):
    cwd, uri = store
    result = airush(["leaderboard", "--task", "abuse", "--format", "csv"], cwd, uri, None)
    assert result.returncode == 0, result.stderr
    rows = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert "sklearn_logreg" in set(rows["model"])


@pytest.mark.slow
def test_reproducing_the_users_run_gives_identical_metrics_once_trusted(abuse_run, store, user):
    cwd, uri = store
    search_path = f"hydra.searchpath=[file://{user / 'airush_example' / 'conf'}]"
    refused = airush(["reproduce", abuse_run, search_path], cwd, uri, user)
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "outside the packages airush trusts" in line and "AIRUSH_TRUSTED_PACKAGES" in line

    result = airush(["reproduce", abuse_run, search_path], cwd, uri, user, TRUSTED)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"metrics identical to run {abuse_run}" in result.stdout


@pytest.mark.slow
def test_reproducing_a_config_dir_run_needs_no_search_path(abuse_run, store, user):
    """A teammate reproduces from the store alone: the user's options are rebuilt from the recorded config
    (the code must still be importable and trusted)."""
    cwd, uri = store
    result = airush(["reproduce", abuse_run], cwd, uri, user, TRUSTED)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"metrics identical to run {abuse_run}" in result.stdout


@pytest.mark.slow
def test_the_users_features_add_their_columns(abuse_run, store, user):
    cwd, uri = store
    conf = str(user / "airush_example" / "conf")
    run_id = run_id_of(airush(["--config-dir", conf, *ABUSE, "features=with_idle"], cwd, uri, user))
    mlflow_client = client(uri)
    base = int(mlflow_client.get_run(abuse_run).data.params["dataset.features"])
    assert int(mlflow_client.get_run(run_id).data.params["dataset.features"]) == base + 7
    folder = mlflow_client.download_artifacts(run_id, "evaluation/feature_importance.csv", str(cwd))
    names = set(pd.read_csv(folder, index_col=0).index)
    assert {"idle_gap_median_ms", "idle_pauses_per_min", "key_hold_mean"} <= names


@pytest.mark.slow
def test_combined_features_need_no_convert_flag(user, tmp_path, tracking_uri):
    text = (user / "airush_example" / "conf" / "features" / "with_idle.yaml").read_text()
    plain = "\n".join(line for line in text.splitlines() if not line.startswith("_convert_"))
    (tmp_path / "conf" / "features").mkdir(parents=True)
    (tmp_path / "conf" / "features" / "with_idle_plain.yaml").write_text(plain)
    args = ["--config-dir", str(tmp_path / "conf"), "features=with_idle_plain", "model.num_boost_round=20"]
    run_id_of(airush([*args, *SMALL["abuse"]], tmp_path, tracking_uri, user))


@pytest.mark.slow
def test_a_sweep_over_the_users_model_records_a_parent_and_its_children(user, tmp_path, tracking_uri):
    uri = tracking_uri
    conf = str(user / "airush_example" / "conf")
    result = airush(["--config-dir", conf, "-m", *ABUSE, "model.C=0.1,1.0"], tmp_path, uri, user)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = client(uri).search_runs([client(uri).get_experiment_by_name("abuse").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("airush.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(c.data.params["model.C"] for c in children) == ["0.1", "1.0"]
    assert {c.info.status for c in children} == {"FINISHED"}
    assert parent.data.tags["best.run_id"] in {c.info.run_id for c in children}


@pytest.mark.slow
def test_the_users_search_space_tunes_the_users_model(user, tmp_path, tracking_uri):
    import yaml

    uri = tracking_uri
    conf = str(user / "airush_example" / "conf")
    sweep_dir = tmp_path / "tune"
    args = ["--config-dir", conf, "-m", "hparams_search=abuse_sklearn_logreg", "hydra.sweeper.n_trials=2"]
    result = airush([*args, *SMALL["abuse"], f"hydra.sweep.dir={sweep_dir}"], tmp_path, uri, user)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = client(uri).search_runs([client(uri).get_experiment_by_name("abuse").experiment_id])
    children = [r for r in runs if r.data.tags.get("airush.sweep") != "parent"]
    assert len(children) == 2 and {c.data.tags["airush.model"] for c in children} == {"sklearn_logreg"}
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) <= {"model.C", "model.balance_classes"}


# A fresh interpreter serves every user of the run's MLflow Model the run's own top 10 (recommendations.csv).
SERVE_MUSIC = """
import sys
import mlflow, pandas as pd
run_id = sys.argv[1]
written = pd.read_csv(mlflow.artifacts.download_artifacts(
    run_id=run_id, artifact_path="evaluation/recommendations.csv"), dtype={"user": str, "item": str})
served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(
    pd.DataFrame({"user": written["user"].unique()}), params={"k": 10})
pd.testing.assert_frame_equal(served.astype({"user": str, "item": str}), written)
print("served", len(served))
"""


@pytest.mark.slow
def test_the_users_recommender_on_the_users_play_logs_serves_the_runs_top_n(user, tmp_path, tracking_uri):
    uri = tracking_uri
    data = user / "data"
    args = [
        "--config-dir",
        str(user / "airush_example" / "conf"),
        "task=music",
        "model=coplay",
        "data=plays",
        f"data.interactions={data / 'plays.csv'}",
        f"data.items={data / 'items.csv'}",
        "task.recommend.top_n=10",
    ]
    run_id = run_id_of(airush(args, tmp_path, uri, user))
    run = client(uri).get_run(run_id)
    assert run.data.tags["airush.model"] == "coplay" and run.data.metrics["ndcg_at_10"] > 0.1
    served = python(SERVE_MUSIC, [run_id], tmp_path, uri, user, TRUSTED)
    assert served.returncode == 0, served.stderr[-3000:]
    assert served.stdout.split()[-1] == str(150 * 10)


LISTENS_USERS = 120


def write_listens(path: Path) -> None:
    """A ListenBrainz export: each user listens mostly to the tracks of one of 4 artists, some more than once."""
    rng = np.random.default_rng(3)
    with path.open("w") as out:
        for u in range(LISTENS_USERS):
            for i in rng.choice(10, 8, replace=False):
                for _ in range(int(rng.integers(1, 4))):
                    listen = {
                        "user_name": f"listener{u}",
                        "listened_at": 1_700_000_000 + int(rng.integers(0, 10**6)),
                        "track_metadata": {
                            "artist_name": f"artist {u % 4}",
                            "track_name": f"song {i}",
                            "release_name": f"album {u % 4}-{i // 5}",
                        },
                    }
                    out.write(json.dumps(listen) + "\n")


def test_the_users_data_source_reads_listens_and_names_a_bad_line(tmp_path):
    listens = example_module("listens")
    path = tmp_path / "listens.jsonl"
    write_listens(path)
    plays = listens.ListenBrainzListens(str(path)).load()
    assert plays.n_users == LISTENS_USERS and plays.n_items == 40
    assert plays.interactions["plays"].min() >= 1 and plays.interactions["timestamp"].min() >= 1_700_000_000
    assert plays.items["artist"].nunique() == 4 and plays.items["album"].nunique() == 8
    assert "artist 0 - song 0" in set(plays.item_ids)
    twice = listens.ListenBrainzListens(str(path), min_listens=2).load()
    assert len(twice.interactions) < len(plays.interactions) and twice.interactions["plays"].min() >= 2

    lines = path.read_text().splitlines()
    for bad, expected in [
        ("{not json", "row 3: not JSON"),
        ('{"user_name": "x", "listened_at": 1}', "row 3: expected an object with track_metadata"),
        (
            '{"user_name": "", "listened_at": 1, "track_metadata": {"artist_name": "a", "track_name": "t"}}',
            "row 3, column 'user_name': expected a non-empty string",
        ),
        (
            '{"user_name": "x", "listened_at": "yesterday", "track_metadata": {"artist_name": "a", "track_name": "t"}}',
            "row 3, column 'listened_at': expected unix seconds",
        ),
    ]:
        broken = tmp_path / "broken.jsonl"
        broken.write_text("\n".join([*lines[:2], bad, *lines[2:]]))
        with pytest.raises(DataError, match=expected):
            listens.ListenBrainzListens(str(broken)).load()


@pytest.mark.slow
def test_the_users_data_source_runs_and_a_bad_file_is_one_line(user, tmp_path, tracking_uri):
    uri = tracking_uri
    path = tmp_path / "listens.jsonl"
    write_listens(path)
    conf = str(user / "airush_example" / "conf")
    args = ["--config-dir", conf, "task=music", "model=coplay", "data=listenbrainz", f"data.path={path}"]
    run_id = run_id_of(airush(args, tmp_path, uri, user))
    run = client(uri).get_run(run_id)
    assert run.data.tags["airush.data"] == "listenbrainz" and run.data.metrics["ndcg_at_10"] > 0.1

    path.write_text(path.read_text() + "[1, 2]\n")
    bad = airush(args, tmp_path, uri, user)
    assert bad.returncode == 2
    (line,) = bad.stderr.strip().splitlines()
    assert line.startswith(f"airush: error: {path}, row ") and "track_metadata" in line
    assert len(client(uri).search_runs([run.info.experiment_id])) == 1  # no FAILED run recorded


# --- the Python API ---------------------------------------------------------------------------------------

API_RUN = """
import json, sys
import airush
cfg = airush.compose(json.loads(sys.argv[1]), config_dir=sys.argv[2])
print(json.dumps(airush.run(cfg)))
"""


@pytest.mark.slow
def test_the_python_api_runs_the_users_model(user, tmp_path, tracking_uri):
    uri = tracking_uri
    conf = str(user / "airush_example" / "conf")
    result = python(API_RUN, [json.dumps(ABUSE), conf], tmp_path, uri, user)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0.5 < metrics["roc_auc"] <= 1.0
    (run,) = client(uri).search_runs([client(uri).get_experiment_by_name("abuse").experiment_id])
    assert run.data.tags["airush.model"] == "sklearn_logreg"


# --- installed as a package: found through its search-path plugin, no --config-dir --------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`pip install` of the example into a folder of its own (this venv stays as it is), from a copy of its
    source (pip builds in the source tree); the folder to put on PYTHONPATH."""
    root = tmp_path_factory.mktemp("installed")
    shutil.copytree(
        EXAMPLE, root / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*pip, "--target", str(root / "site"), str(root / "src")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "site"


@pytest.mark.slow
def test_the_installed_plugin_is_found_without_config_dir(installed, tmp_path, tracking_uri):
    help_text = airush(["--help"], tmp_path, None, installed)
    assert help_text.returncode == 0, help_text.stderr
    assert "sklearn_logreg" in help_text.stdout and "coplay" in help_text.stdout

    uri = tracking_uri
    run_id = run_id_of(airush([*ABUSE, "features=with_idle"], tmp_path, uri, installed))
    assert client(uri).get_run(run_id).data.tags["airush.model"] == "sklearn_logreg"
    again = airush(["reproduce", run_id], tmp_path, uri, installed, TRUSTED)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"metrics identical to run {run_id}" in again.stdout
