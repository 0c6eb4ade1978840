"""`airush leaderboard --board NAME [--final]`: a board's submissions, best per submitter, like NSML's board.

Each submitter's best public submission (ties: the earlier one), how many they made and when the last was;
`--final` scores those same submissions on the private labels, from the predictions each stored (verified by
their sha256), and ranks by that.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from airush.errors import UserError
from airush.inference.board import TAG, Board, file_sha256, find_board, read_labels, score
from airush.inference.submit import PREDICTIONS


def main(argv: list[str]) -> int:
    """`airush leaderboard --board NAME [--final]`."""
    from airush.records.runs import OneLineParser, default_tracking_uri, open_store

    parser = OneLineParser(prog="airush leaderboard --board", description="Rank a board's submissions.")
    parser.add_argument("--board", required=True)
    parser.add_argument(
        "--final", action="store_true", help="rank by the private labels (the organiser's end)"
    )
    parser.add_argument("--format", choices=("table", "csv"), default="table")
    parser.add_tracking_uri()
    args = parser.parse_args(argv)
    client = open_store(args.tracking_uri or default_tracking_uri())
    board, experiment_id = find_board(client, args.board)
    ranking = board_ranking(client, board, experiment_id, args.final)
    if args.format == "csv":
        ranking.to_csv(sys.stdout, index=False)
        return 0
    print_ranking(board, ranking, args.final)
    return 0


def board_ranking(client, board: Board, experiment_id: str, final: bool = False) -> pd.DataFrame:
    """One row per submitter: the best public submission (ties: the earlier), how many, the last time; with
    `final`, that submission's private score, and the rows ranked by it."""
    from airush.tracking.store import search_all

    metric = f"public_{board.metric}"
    rows = [
        {
            "submitter": r.data.tags.get("airush.submitter", "?"),
            "submission": r.info.run_id,
            "source_run": r.data.tags.get("airush.source_run", ""),
            "public": r.data.metrics[metric],
            "time": r.info.start_time,
        }
        for r in search_all(client, [experiment_id], "attributes.status = 'FINISHED'")
        if metric in r.data.metrics and r.data.tags.get(TAG) == board.name
    ]
    columns = ["rank", "submitter", "public", "submissions", "last", "submission", "source_run"]
    if not rows:
        return pd.DataFrame(columns=columns + (["private"] if final else []))
    frame = pd.DataFrame(rows)
    counts = frame.groupby("submitter").agg(submissions=("submission", "size"), last=("time", "max"))
    better = frame.sort_values(
        ["public", "time"], ascending=[not board.higher_is_better, True], kind="stable"
    )
    best = better.drop_duplicates("submitter").set_index("submitter").join(counts).reset_index()
    best["last"] = [datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d %H:%M") for t in best["last"]]
    key = "public"
    if final:
        labels = read_labels(board)
        best["private"] = [private_score(client, board, labels, run_id) for run_id in best["submission"]]
        key = "private"
        columns.insert(3, "private")
    best = best.sort_values(key, ascending=not board.higher_is_better, kind="stable").reset_index(drop=True)
    best["rank"] = range(1, len(best) + 1)
    return best[columns]


def private_score(client, board: Board, labels: pd.DataFrame, run_id: str) -> float:
    """A submission's stored predictions, verified by the sha256 it recorded, scored on the private labels."""
    if not (labels["part"] == "private").any():
        return float("nan")
    with tempfile.TemporaryDirectory(prefix="airush-final-") as folder:
        path = Path(client.download_artifacts(run_id, PREDICTIONS, folder))
        if file_sha256(path) != client.get_run(run_id).data.tags.get("airush.predictions_sha256"):
            raise UserError(f"submission {run_id}: its stored predictions changed since it was scored")
        predictions = pd.read_parquet(path)
    return score(board, predictions, labels, "private")[0]


def print_ranking(board: Board, ranking: pd.DataFrame, final: bool) -> None:
    from rich.table import Table

    from airush.console import console

    out = console()
    direction = "higher" if board.higher_is_better else "lower"
    part = "private (final)" if final else "public"
    out.print(
        f"board {board.name} · {board.task} · by {part} {board.metric} ({direction} is better)", markup=False
    )
    if ranking.empty:
        out.print(f"no submissions yet: airush submit RUN --board {board.name}", markup=False)
        return
    table = Table()
    for column in ranking.columns:
        table.add_column(
            column, justify="right" if column in ("rank", "public", "private", "submissions") else "left"
        )
    for row in ranking.itertuples(index=False):
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    out.print(table)
