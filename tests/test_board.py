"""Boards and submissions (NSML's dataset board): an organiser creates a board from inputs and hidden labels, a
competitor submits recorded runs, the board ranks best per submitter; scores are checked against scikit-learn
and ranx on the submissions' own stored predictions, the public/private split against its definition."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from test_predict import assert_one_line_refusal, last_run_id

from conftest import SHARED_DATA, SMALL, run_airush

pytestmark = pytest.mark.slow

ABUSE_INPUTS = [
    "data=synthetic_abuse",
    "data.n_users=40",
    "data.sessions_per_user=5",
    "data.bot_share=0.3",
    "data.mouse_actions=[3,8]",
]
BOARD_SEED = 7


def public_of(board: str, ids, share: float = 0.5) -> np.ndarray:
    """The board's public ids by its definition (blake2b of name NUL id, as a fraction of 2**64)."""
    draws = [
        int.from_bytes(hashlib.blake2b(f"{board}\0{i}".encode(), digest_size=8).digest(), "big") / 2.0**64
        for i in ids
    ]
    return np.asarray(draws) < share


def stored_predictions(uri: str, submission: str, folder) -> pd.DataFrame:
    import mlflow

    path = mlflow.artifacts.download_artifacts(
        run_id=submission, artifact_path="predictions.parquet", dst_path=str(folder), tracking_uri=uri
    )
    return pd.read_parquet(path)


def ranking(folder, uri, board: str, *more) -> pd.DataFrame:
    import io

    result = run_airush(["leaderboard", "--board", board, "--format", "csv", *more], folder, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    return pd.read_csv(io.StringIO(result.stdout))


def submitted(result) -> tuple[str, float]:
    assert result.returncode == 0, result.stderr[-3000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("airush: submission ")][-1]
    words = line.split()
    return words[2], float(words[words.index("public") + 2])


@pytest.fixture(scope="module")
def abuse_board(tmp_path_factory):
    """(folder, uri, labels frame, [run ids]) with a synthetic abuse board 'synth' and two trained runs."""
    from airush.abuse.data.synthetic import SyntheticSessions

    folder = tmp_path_factory.mktemp("board")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    runs = []
    for extra in ([], ["model.num_leaves=4", "seed=1"]):
        result = run_airush(["task=abuse", "model=lgbm", *SMALL["abuse"], *extra], folder, uri)
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append(last_run_id(uri))
    generator = SyntheticSessions(n_users=40, sessions_per_user=5, bot_share=0.3, mouse_actions=(3, 8))
    sessions = generator.load(seed=BOARD_SEED).sessions
    labels = sessions[["session_id", "label"]]
    labels.to_csv(folder / "labels.csv", index=False)
    create = ["board", "create", "synth", *ABUSE_INPUTS, "--task", "abuse", "--labels", "labels.csv"]
    result = run_airush([*create, "--metric", "roc_auc", "--seed", str(BOARD_SEED)], folder, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, uri, labels, runs


def test_abuse_submissions_score_what_sklearn_scores_and_rank_best_per_submitter(abuse_board, tmp_path):
    from sklearn.metrics import roc_auc_score

    folder, uri, labels, (first, second) = abuse_board
    alice_1 = submitted(
        run_airush(["submit", first[:8], "--board", "synth", "--submitter", "alice"], folder, uri)
    )
    alice_2 = submitted(
        run_airush(["submit", second, "--board", "synth", "--submitter", "alice"], folder, uri)
    )
    bob = submitted(run_airush(["submit", second, "--board", "synth", "--submitter", "bob"], folder, uri))
    public = public_of("synth", labels["session_id"].astype(str))
    assert 0 < public.sum() < len(labels)
    for submission, score in (alice_1, alice_2, bob):
        predictions = stored_predictions(uri, submission, tmp_path / submission)
        # every session of the board's inputs scored once, the labelled ones among them
        assert predictions["session_id"].is_unique
        assert set(labels["session_id"]) <= set(predictions["session_id"])
        merged = labels.merge(predictions, on="session_id")
        expected = roc_auc_score(merged["label"][public], merged["score"][public])
        assert score == pytest.approx(expected, abs=5e-5)  # printed with 4 decimals

    board = ranking(folder, uri, "synth")
    assert board["submitter"].tolist() == sorted(
        ["alice", "bob"], key=lambda w: -board.set_index("submitter").loc[w, "public"]
    )
    by = board.set_index("submitter")
    assert by.loc["alice", "submissions"] == 2 and by.loc["bob", "submissions"] == 1
    assert by.loc["alice", "public"] == pytest.approx(max(alice_1[1], alice_2[1]), abs=5e-5)
    assert board["rank"].tolist() == [1, 2]

    final = ranking(folder, uri, "synth", "--final")
    for row in final.itertuples():
        predictions = stored_predictions(uri, row.submission, tmp_path / f"final-{row.submission}")
        merged = labels.merge(predictions, on="session_id")
        expected = roc_auc_score(merged["label"][~public], merged["score"][~public])
        assert row.private == pytest.approx(expected, rel=1e-9)
    assert final["private"].is_monotonic_decreasing

    # the submission run: who, which run, the model's hash, linked to the board
    import mlflow

    client = mlflow.MlflowClient(uri)
    run = client.get_run(bob[0])
    assert run.data.tags["airush.submitter"] == "bob" and run.data.tags["airush.source_run"] == second
    assert run.data.tags["airush.board"] == "synth"
    assert run.data.tags["airush.model_sha256"] == client.get_run(second).data.tags["airush.model_sha256"]
    assert client.get_experiment(run.info.experiment_id).name == "board/synth"


def test_board_refusals_are_one_line(abuse_board, tmp_path):
    from airush.errors import UserError
    from airush.inference import board_admin, submit

    folder, uri, labels, (first, _) = abuse_board
    # through the installed command: one line, exit 2
    assert_one_line_refusal(
        run_airush(["submit", first, "--board", "nope"], folder, uri), "no board 'nope'", "synth"
    )
    good, bad, humans = tmp_path / "good.csv", tmp_path / "bad.csv", tmp_path / "humans.csv"
    labels.to_csv(good, index=False)
    wrong = labels.astype(object)
    wrong.loc[2, "label"] = 2  # file row 4
    wrong.to_csv(bad, index=False)
    labels[labels["label"] == 0].to_csv(humans, index=False)
    create = ["create", "bad", *ABUSE_INPUTS, "--task", "abuse", "--tracking-uri", uri]
    refused = {  # in-process, the same code path after argument parsing
        "row 4": [*create, "--metric", "roc_auc", "--labels", str(bad)],
        "not an abuse board metric": [*create, "--metric", "accuracy", "--labels", str(good)],
        "both humans and bots": [*create, "--metric", "roc_auc", "--labels", str(humans)],
        "data overrides only": ["create", "x", "model=lgbm", "--task", "abuse", "--metric", "eer",
                                "--labels", str(good), "--tracking-uri", uri],
        "say create or show": ["list"],
    }  # fmt: skip
    for words, argv in refused.items():
        with pytest.raises(UserError, match=words):
            board_admin.main(argv)
    # the organiser's labels changed after the board was made: no score against other labels
    assert board_admin.main([*create, "--metric", "roc_auc", "--labels", str(good)]) == 0
    with pytest.raises(UserError, match="exists with other settings"):
        board_admin.main([*create, "--metric", "eer", "--labels", str(good)])
    labels.iloc[::-1].to_csv(good, index=False)
    with pytest.raises(UserError, match="changed since the board was created"):
        submit.main([first, "--board", "bad", "--tracking-uri", uri])


def hold_out(plays: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The organiser's split: `share` of each user's items become hidden labels (users with 5+ items)."""
    rng = np.random.default_rng(seed)
    draw = rng.random(len(plays))
    rich = plays.groupby("user")["item"].transform("size") >= 5
    hidden = rich.to_numpy() & (draw < share)
    return plays[~hidden], plays.loc[hidden, ["user", "item"]]


def music_board_roundtrip(folder, plays: pd.DataFrame, model: list[str], metric: str = "ndcg_at_10"):
    """Organiser: inputs + labels + board; competitor: trains on the inputs, submits. (submission, score,
    labels, uri)."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    inputs, labels = hold_out(plays, 0.2, seed=3)
    inputs.to_csv(folder / "inputs.csv", index=False)
    labels.to_csv(folder / "labels.csv", index=False)
    data = ["data=plays", f"data.interactions={folder / 'inputs.csv'}"]
    create = [
        "board",
        "create",
        "music",
        *data,
        "--task",
        "music",
        "--labels",
        "labels.csv",
        "--metric",
        metric,
    ]
    result = run_airush(create, folder, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    trained = run_airush(["task=music", *model, *data], folder, uri)
    assert trained.returncode == 0, trained.stderr[-3000:]
    submission, score = submitted(run_airush(["submit", last_run_id(uri), "--board", "music"], folder, uri))
    return submission, score, labels, uri


def assert_ranx_agrees(
    uri, submission, score, labels: pd.DataFrame, folder, metric: str, board: str = "music"
):
    from ranx import Qrels, Run, evaluate

    predictions = stored_predictions(uri, submission, folder / "stored")
    users = labels["user"].astype(str).unique()
    public = set(users[public_of(board, users)])
    labels = labels[labels["user"].astype(str).isin(public)]
    predictions = predictions[predictions["user"].astype(str).isin(public) & (predictions["rank"] <= 10)]
    qrels = {u: {str(i): 1 for i in g["item"]} for u, g in labels.groupby(labels["user"].astype(str))}
    run = {
        u: {str(i): float(10 - r) for i, r in zip(g["item"], g["rank"], strict=True)}
        for u, g in predictions.groupby(predictions["user"].astype(str))
    }
    name = metric.replace("_at_", "@")
    expected = evaluate(Qrels(qrels), Run(run), name)
    assert score == pytest.approx(expected, abs=5e-5)


def test_a_synthetic_music_board_scores_what_ranx_scores(tmp_path):
    from airush.music.data.synthetic import SyntheticPlays

    plays = SyntheticPlays(n_users=300, n_items=400, n_artists=40).load(seed=5).interactions
    plays = plays.assign(user=plays["user"].map(lambda u: f"u{u}"), item=plays["item"].map(lambda i: f"t{i}"))
    submission, score, labels, uri = music_board_roundtrip(
        tmp_path, plays[["user", "item", "plays"]], ["model=pop"]
    )
    assert_ranx_agrees(uri, submission, score, labels, tmp_path, "ndcg_at_10")
    # an abuse model on a music board is refused in one line
    trained = run_airush(["task=abuse", "model=lgbm", *SMALL["abuse"]], tmp_path, uri)
    assert trained.returncode == 0
    assert_one_line_refusal(
        run_airush(["submit", last_run_id(uri), "--board", "music"], tmp_path, uri),
        "task abuse",
        "music board",
    )


@pytest.mark.skipif(
    not (SHARED_DATA / "lastfm-hetrec2k").is_dir(), reason="Last.fm HetRec 2K not in ../shared/data"
)
def test_a_lastfm_music_board_scores_what_ranx_scores(tmp_path):
    raw = pd.read_csv(SHARED_DATA / "lastfm-hetrec2k" / "user_artists.dat", sep="\t")
    plays = raw.rename(columns={"userID": "user", "artistID": "item", "weight": "plays"})
    submission, score, labels, uri = music_board_roundtrip(
        tmp_path, plays, ["model=als", "model.factors=32", "model.iterations=5"], metric="recall_at_10"
    )
    assert_ranx_agrees(uri, submission, score, labels, tmp_path, "recall_at_10")
    assert score > 0.05  # ALS on Last.fm finds held-out artists far above chance (10 of 17,632)
