"""Co-play: recommend what is played by the same people as what the user played (`model=coplay`).

Two items are similar when many users played both: similarity = co-players / (sqrt(players_a * players_b) +
shrinkage), the `neighbours` most similar kept per item. A user's score for an item is the sum of its
similarity to every item they played, plus `popularity_weight` x the item's share of the top item's players
(which also ranks items for users whose items have no co-players). Deterministic; saved as npz.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from airush.music.models import Recommender, csr_arrays, csr_from

ARRAYS = "coplay.npz"


class CoPlayRecommender(Recommender):
    ranges: ClassVar[dict[str, str]] = {
        "neighbours": ">= 1",
        "shrinkage": ">= 0",
        "popularity_weight": ">= 0",
    }

    def __init__(
        self, neighbours: int = 50, shrinkage: float = 10.0, popularity_weight: float = 0.05, seed: int = 0
    ):
        self.neighbours = neighbours
        self.shrinkage = shrinkage  # damps pairs that few users share
        self.popularity_weight = popularity_weight
        self.seed = seed  # unused: nothing is random

    def fit(self, train: sp.csr_matrix, bar=None) -> CoPlayRecommender:
        played = sp.csr_matrix((train > 0).astype(np.float32))  # play counts do not matter, who played does
        players = np.asarray(played.sum(axis=0)).ravel()
        both = sp.csr_matrix(played.T @ played)
        both.setdiag(0)
        both.eliminate_zeros()
        rows = np.repeat(np.arange(both.shape[0]), np.diff(both.indptr))
        both.data = both.data / (np.sqrt(players[rows] * players[both.indices]) + self.shrinkage)
        self.similar_ = top_per_row(both, int(self.neighbours))
        self.popularity_ = (players / max(players.max(initial=0.0), 1.0)).astype(np.float32)
        self.played_ = played
        self.history_: dict = {}
        if bar is not None:
            bar.advance()
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        scores = (self.played_[users] @ self.similar_).toarray()
        return (scores + self.popularity_weight * self.popularity_).astype(np.float32)

    def save(self, directory: Path) -> None:
        self.save_params(directory)
        np.savez(
            directory / ARRAYS,
            popularity=self.popularity_,
            **csr_arrays("similar", self.similar_),
            **csr_arrays("played", self.played_),
        )

    @classmethod
    def load(cls, directory: Path) -> CoPlayRecommender:
        model = cls.from_params(directory)
        with np.load(directory / ARRAYS, allow_pickle=False) as data:
            model.popularity_ = data["popularity"]
            model.similar_, model.played_ = csr_from(data, "similar"), csr_from(data, "played")
        return model


def top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The `k` largest entries of each row (ties: the lower column), without a Python loop over rows."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    order = np.lexsort((matrix.indices, -matrix.data, rows))  # by row, then value descending, then column
    rank = np.arange(len(order)) - matrix.indptr[rows[order]]
    keep = order[rank < k]
    return sp.csr_matrix(
        (matrix.data[keep].astype(np.float32), (rows[keep], matrix.indices[keep])), shape=matrix.shape
    )
