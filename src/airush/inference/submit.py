"""`airush submit MODEL --board NAME`: a recorded run's model scored on a board's hidden labels.

The submission predicts on the board's inputs (`board.py`) with the model verified like `airush predict`
verifies it, scores the public labels, and is recorded as a run in the board's experiment: who, when, which
run and model (its sha256), the public score, and the predictions as an artifact (their sha256 in a tag), which
`airush leaderboard --board NAME --final` scores again on the private labels.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import tempfile
from pathlib import Path

import pandas as pd

from airush.errors import UserError
from airush.inference.board import TAG, file_sha256, find_board, read_labels, score

PREDICTIONS = "predictions.parquet"  # a submission's artifact, scored again for --final


def main(argv: list[str]) -> int:
    from airush.records.runs import OneLineParser, default_tracking_uri

    parser = OneLineParser(prog="airush submit", description="Score a recorded run's model on a board.")
    parser.add_model()
    parser.add_argument("--board", required=True, help="the board's name (airush board create)")
    parser.add_argument("--submitter", help="who submits (default: $AIRUSH_SUBMITTER or the login name)")
    parser.add_argument("--message", default="", help="a note kept with the submission")
    parser.add_tracking_uri()
    args = parser.parse_args(argv)
    submitter = args.submitter or os.environ.get("AIRUSH_SUBMITTER") or getpass.getuser()
    result = submit(
        args.tracking_uri or default_tracking_uri(), args.model, args.board, submitter, args.message
    )
    print(
        f"airush: submission {result['run_id']} to board '{args.board}': public {result['metric']} "
        f"{result['public']:.4f} over {result['n']} {result['units']} "
        f"(run {result['source']}, by {submitter})"
    )
    return 0


def submit(uri: str, ref: str, board_name: str, submitter: str, message: str = "") -> dict:
    """Predict on the board's inputs, score the public labels, record the submission run; what it recorded."""
    from airush.console import Stages
    from airush.inference.predict import PredictOptions, task_and_source
    from airush.inference.trained import trained_model
    from airush.records.runs import open_store

    client = open_store(uri)
    board, experiment_id = find_board(client, board_name)
    labels = read_labels(board)
    with trained_model(uri, ref) as trained:
        if trained.task != board.task:
            raise UserError(
                f"run {trained.run_id} holds a model for task {trained.task}; '{board.name}' is a {board.task} board"
            )
        task, source = task_and_source(trained, list(board.inputs))
        options = PredictOptions(top_n=board.k, seed=board.seed)
        with Stages() as stages:
            chunks = task.predictions(trained, source, dataclasses.replace(options, stages=stages))
            predictions = pd.concat(list(chunks), ignore_index=True)
        public, n = score(board, predictions, labels, "public")
        source_run = client.get_run(trained.run_id)
        return record_submission(
            client, experiment_id, board, predictions, public, n, trained, source_run, submitter, message
        )


def record_submission(
    client, experiment_id, board, predictions, public, n, trained, source_run, who, message
):
    model = source_run.data.tags.get("mlflow.runName", trained.run_id[:8])
    tags = {
        TAG: board.name,
        "airush.submitter": who,
        "airush.source_run": trained.run_id,
        "airush.source_experiment": source_run.info.experiment_id,
        "airush.model_sha256": trained.sha256,
        "airush.task": board.task,
        "mlflow.note.content": (
            f"Submission of run `{trained.run_id}` ({model}) by {who} to board {board.name}."
            + (f"\n\n{message}" if message else "")
        ),
    }
    run = client.create_run(experiment_id, run_name=f"{who} · {model}", tags=tags)
    run_id = run.info.run_id
    try:
        with tempfile.TemporaryDirectory(prefix="airush-submission-") as folder:
            path = Path(folder) / PREDICTIONS
            predictions.to_parquet(path, index=False)
            client.set_tag(run_id, "airush.predictions_sha256", file_sha256(path))
            client.log_artifact(run_id, str(path))
        client.log_metric(run_id, f"public_{board.metric}", public)
        client.log_metric(run_id, "public_n", n)
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return {
        "run_id": run_id,
        "public": public,
        "n": n,
        "metric": board.metric,
        "units": board.rules.UNITS,
        "source": trained.run_id,
    }
