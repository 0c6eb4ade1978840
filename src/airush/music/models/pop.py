"""Popularity: every user gets the items most users played. The baseline every model must beat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from airush.music.models import Recommender


class PopularityRecommender(Recommender):
    def __init__(self, seed: int = 0) -> None:
        self.seed = seed  # unused: popularity is deterministic

    def fit(self, train: sp.csr_matrix, bar=None) -> PopularityRecommender:
        self.popularity_ = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float32)
        self.history_: dict = {}
        if bar is not None:
            bar.advance()
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(users), len(self.popularity_))).copy()

    def save(self, directory: Path) -> None:
        self.save_params(directory)
        np.savez(directory / "popularity.npz", popularity=self.popularity_)

    @classmethod
    def load(cls, directory: Path) -> PopularityRecommender:
        model = cls.from_params(directory)
        with np.load(directory / "popularity.npz", allow_pickle=False) as data:
            model.popularity_ = data["popularity"]
        return model
