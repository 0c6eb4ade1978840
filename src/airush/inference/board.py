"""Boards: NSML's dataset leaderboard on an MLflow store, for both tasks.

A board is the inputs every submission predicts on (data overrides composed as `airush predict` composes
them, with a fixed seed for generated data), a labels file the organiser keeps and training never reads, and
a metric. It is recorded as its own MLflow experiment, `board/NAME`, its settings in the experiment's tags,
so everyone on a shared store sees the same board; each submission is a run in that experiment.

Labels (CSV or Parquet): abuse `session_id, label` (0 human, 1 bot); music `user, item` (the plays held out
from the inputs, in the data set's own ids). An optional `part` column (public / private) says which labels
the public score uses; without it a session (music: a user) is public when a hash of the board's name and
its id falls below `public_share`, the same on every machine and for every submission. The public score is
computed at submission and shown at once; the private one only by `airush leaderboard --board NAME --final`,
from the predictions each submission stored (verified by their sha256).

What a board's tags hold is untrusted like any recorded run: its inputs are data overrides only, built
from trusted targets (`airush.trust`), its scoring module must be trusted too, and its labels file is checked
against the sha256 recorded at creation. What is scored is the task's own: the `board` module beside the
task's class (`airush.abuse.board`, `airush.music.board`): label columns and types, metrics, `score`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from airush.errors import DataError, UserError

EXPERIMENT_PREFIX = "board/"
TAG = "airush.board"  # experiment tags airush.board.<field>; submission runs: airush.board = NAME
PARTS = ("public", "private")


@dataclass(frozen=True)
class Board:
    name: str
    task: str  # the task's name: "abuse", "music", ...
    scoring: str  # the task's board module (`airush.abuse.board`): labels, metrics, score
    metric: str  # abuse: roc_auc, ...; music: e.g. ndcg_at_10 (the scoring module's)
    inputs: tuple[str, ...]  # data overrides: data=<option> data.key=value ...
    labels: Path
    labels_sha256: str
    public_share: float = 0.5
    seed: int = 0  # generated inputs are drawn with it, whatever the submitted run's seed
    top_n: int | None = None  # music: items asked per user (the K of the metric by default)

    @property
    def experiment(self) -> str:
        return EXPERIMENT_PREFIX + self.name

    @property
    def rules(self):
        """The task's board module, imported only when trusted (a board's tags are untrusted input)."""
        import importlib

        from airush.trust import check_trusted

        check_trusted(self.scoring, f"board '{self.name}' scoring")
        try:
            return importlib.import_module(self.scoring)
        except ImportError:
            raise UserError(
                f"board '{self.name}': task {self.task} has no board rules ({self.scoring})"
            ) from None

    @property
    def higher_is_better(self) -> bool:
        return self.rules.higher_is_better(self.metric)

    @property
    def k(self) -> int | None:
        """The items per user a music board asks for (its top_n, else its metric's K); None for abuse."""
        return self.top_n or self.rules.check_metric(self.metric, self.top_n)

    def tags(self) -> dict[str, str]:
        fields = {
            "task": self.task,
            "scoring": self.scoring,
            "metric": self.metric,
            "inputs": json.dumps(list(self.inputs)),
            "labels": str(self.labels),
            "labels_sha256": self.labels_sha256,
            "public_share": repr(self.public_share),
            "seed": str(self.seed),
            "top_n": "" if self.top_n is None else str(self.top_n),
        }
        return {f"{TAG}.{key}": value for key, value in fields.items()}

    @classmethod
    def from_tags(cls, name: str, tags: dict[str, str]) -> Board:
        try:
            board = cls(
                name=name,
                task=tags[f"{TAG}.task"],
                scoring=tags[f"{TAG}.scoring"],
                metric=tags[f"{TAG}.metric"],
                inputs=tuple(str(o) for o in json.loads(tags[f"{TAG}.inputs"])),
                labels=Path(tags[f"{TAG}.labels"]),
                labels_sha256=tags[f"{TAG}.labels_sha256"],
                public_share=float(tags[f"{TAG}.public_share"]),
                seed=int(tags[f"{TAG}.seed"]),
                top_n=int(tags[f"{TAG}.top_n"]) if tags.get(f"{TAG}.top_n") else None,
            )
        except (KeyError, ValueError, TypeError) as err:
            raise UserError(
                f"board '{name}': its experiment's tags are incomplete or malformed ({err})"
            ) from None
        board.check()
        return board

    def check(self) -> None:
        """Settings that make a board at all; one line each."""
        from airush.inference.predict import check_overrides

        if not self.name or any(c in self.name for c in "/\\ \t\n"):
            raise UserError(f"board name {self.name!r}: a word without slashes or spaces")
        try:
            self.rules.check_metric(self.metric, self.top_n)  # the metric fits the task
        except UserError as err:
            raise UserError(f"board '{self.name}': {err}") from None
        if not 0.0 < self.public_share <= 1.0:
            raise UserError(f"board '{self.name}': public_share {self.public_share} must be in (0, 1]")
        check_overrides(list(self.inputs))  # data overrides only: nothing else of a config comes from a board


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_labels(board: Board, verify: bool = True) -> pd.DataFrame:
    """The labels (the task's two columns) with a `part` column (public/private), ids as text (as they are
    compared with predictions); one line naming file, row and column for anything outside the schema."""
    from airush.data.tables import fail_where, read_table

    path, rules = board.labels, board.rules
    if not path.is_file():
        raise UserError(
            f"board '{board.name}': its labels file {path} is not on this machine (submissions are scored "
            "where the organiser keeps the labels)"
        )
    if verify and file_sha256(path) != board.labels_sha256:
        raise UserError(f"board '{board.name}': {path} changed since the board was created (sha256 differs)")
    frame = read_table(path, [rules.KEY, rules.VALUE], ["part"])
    keys = frame[rules.KEY].astype(str).str.strip()
    fail_where(frame, (keys == "").to_numpy(), rules.KEY, path, "an id")
    out = rules.typed_labels(frame, keys, path)
    if "part" in frame.columns:
        part = frame["part"].astype(str).str.strip().str.lower()
        fail_where(frame, ~part.isin(PARTS).to_numpy(), "part", path, "public or private")
        out["part"] = part.loc[out.index].to_numpy()
        mixed = out.groupby(rules.KEY)["part"].nunique()
        if (mixed > 1).any():
            unit = mixed.index[mixed.to_numpy() > 1][0]
            raise DataError(f"{rules.KEY} {unit} is in both parts", path=path, column="part")
    else:
        out["part"] = hashed_parts(board.name, out[rules.KEY].to_numpy(), board.public_share)
    return out.reset_index(drop=True)


def hashed_parts(board_name: str, ids: np.ndarray, public_share: float) -> np.ndarray:
    """public/private per id, from a hash of the board's name and the id: fixed forever, on every machine."""
    unique, inverse = np.unique(ids.astype(str), return_inverse=True)
    draws = np.array(
        [
            int.from_bytes(hashlib.blake2b(f"{board_name}\0{i}".encode(), digest_size=8).digest(), "big")
            / 2.0**64
            for i in unique
        ]
    )
    return np.where(draws < public_share, "public", "private")[inverse]


def check_parts(board: Board, labels: pd.DataFrame) -> None:
    """Each part used can be scored (abuse: both classes; music: enough users), or one line saying why."""
    for part in PARTS:
        rows = labels[labels["part"] == part]
        if part == "private" and rows.empty:
            continue  # a board without a private part ranks by its public score only
        problem = board.rules.check_part(part, rows)
        if problem:
            raise UserError(
                f"board '{board.name}': {problem}; change --public-share or the labels' part column"
            )


def score(board: Board, predictions: pd.DataFrame, labels: pd.DataFrame, part: str) -> tuple[float, int]:
    """(the board's metric on the `part` labels, how many sessions/users it averaged over)."""
    rows = labels[labels["part"] == part]
    if rows.empty:
        raise UserError(f"board '{board.name}' has no {part} labels")
    try:
        value = board.rules.score(board.metric, predictions, rows.drop(columns="part"))
    except UserError as err:
        raise UserError(f"board '{board.name}': {err}") from None
    return value, int(rows[board.rules.KEY].nunique())


def find_board(client, name: str) -> tuple[Board, str]:
    """(the board, its experiment id) from the store; one line listing the boards there when it is not."""
    experiment = client.get_experiment_by_name(EXPERIMENT_PREFIX + name)
    if experiment is None or experiment.lifecycle_stage == "deleted":
        known = sorted(
            e.name.removeprefix(EXPERIMENT_PREFIX)
            for e in client.search_experiments()
            if e.name.startswith(EXPERIMENT_PREFIX)
        )
        listed = (
            f"boards here: {', '.join(known)}" if known else "no boards here yet: airush board create ..."
        )
        raise UserError(f"no board '{name}' in this store ({listed})")
    return Board.from_tags(name, dict(experiment.tags)), experiment.experiment_id
