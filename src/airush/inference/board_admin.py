"""`airush board create NAME DATA... --task T --labels FILE --metric M` and `airush board show NAME`.

The organiser's side of a board (`board.py`): the board is recorded in the store as its own experiment, after
its labels are read and checked, each part can be scored, and its inputs compose for the task as
`airush predict` composes them. Creating a board again with the same settings is a no-op; other settings are
refused (a board's scores must stay comparable).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from airush.errors import UserError
from airush.inference.board import TAG, Board, check_parts, file_sha256, find_board, read_labels


def main(argv: list[str]) -> int:
    from airush.records.runs import OneLineParser, default_tracking_uri

    action = argv[0] if argv else ""
    if action not in ("create", "show"):
        raise UserError(
            "airush board: say create or show (airush board create NAME DATA... --task ... ; "
            "airush board show NAME)"
        )
    parser = OneLineParser(prog=f"airush board {action}", description="A board (the organiser's side).")
    parser.add_argument("name")
    if action == "create":
        parser.add_argument(
            "inputs", nargs="+", help="the data submissions predict on: data=<option> [data.key=v]"
        )
        parser.add_argument("--task", required=True, help="the task's config option: abuse, music, ...")
        parser.add_argument(
            "--labels", required=True, help="hidden labels: abuse session_id,label; music user,item"
        )
        parser.add_argument(
            "--metric", required=True, help="abuse: roc_auc, pr_auc, f1, eer, ...; music: ndcg_at_10"
        )
        parser.add_argument("--public-share", type=float, default=0.5, help="labels scored at once (0.5)")
        parser.add_argument("--seed", type=int, default=0, help="generated inputs are drawn with it (0)")
        parser.add_argument("--top-n", type=int, help="music: items asked per user (default: the metric's K)")
    parser.add_tracking_uri()
    args = parser.parse_intermixed_args(argv[1:])
    args.action = action
    uri = args.tracking_uri or default_tracking_uri()
    if args.action == "show":
        from airush.records.runs import open_store

        board, _ = find_board(open_store(uri), args.name)
        for field in dataclasses.fields(board):
            print(f"{field.name}: {getattr(board, field.name)}")
        return 0
    labels = Path(args.labels).resolve()
    if not labels.is_file():
        raise UserError(f"--labels {args.labels}: file not found")
    from airush.inference.predict import check_overrides

    check_overrides(args.inputs)  # data overrides only, before anything is composed
    board = Board(
        name=args.name,
        task=args.task,
        scoring=scoring_module(args.task, args.inputs),
        metric=args.metric,
        inputs=tuple(args.inputs),
        labels=labels,
        labels_sha256=file_sha256(labels),
        public_share=args.public_share,
        seed=args.seed,
        top_n=args.top_n,
    )
    board.check()
    check_parts(board, read_labels(board))
    experiment_id = create_board(uri, board)
    print(
        f"airush: board '{board.name}' ({board.task}, {board.metric}) is experiment {experiment_id} of this store"
    )
    return 0


def scoring_module(task: str, inputs: list[str]) -> str:
    """The task's board module (`airush.abuse.board` beside `airush.abuse.task`), after checking that the
    inputs compose for the task as `airush predict` composes them (one line otherwise)."""
    from airush.api import compose
    from airush.runner import build, split_job
    from airush.trust import check_trusted

    cfg, job = split_job(compose([f"task={task}", *inputs]), None)
    built = build(cfg, job)
    check_trusted(str(built.cfg.data.get("_target_", "")), "data._target_")
    return f"{type(built.task).__module__.rpartition('.')[0]}.board"


def create_board(uri: str, board: Board) -> str:
    from airush.tracking.store import open_experiment

    client, experiment_id = open_experiment(uri, board.experiment, None)
    existing = client.get_experiment(experiment_id).tags
    if f"{TAG}.task" in existing and Board.from_tags(board.name, dict(existing)) != board:
        raise UserError(f"board '{board.name}' exists with other settings (airush board show {board.name})")
    for key, value in board.tags().items():
        client.set_experiment_tag(experiment_id, key, value)
    client.set_experiment_tag(experiment_id, "mlflow.note.content", board_description(board))
    return experiment_id


def board_description(board: Board) -> str:
    return (
        f"Board **{board.name}** ({board.task}): submissions ranked by `{board.metric}` on hidden labels.\n\n"
        f"Submit with `airush submit RUN --board {board.name}`; rank with `airush leaderboard --board {board.name}`."
    )
