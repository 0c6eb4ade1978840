"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) via the `implicit` library's CPU solver.

Confidence is 1 + alpha·w for the training weight w (from the features config). BLAS is held to one
thread during fit: implicit parallelises over users itself, and nested BLAS threads only slow it down.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from airush.music.models import Recommender


class ALSRecommender(Recommender):
    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 15,
        num_threads: int = 2,
        seed: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.num_threads = num_threads
        self.seed = seed

    def fit(self, train: sp.csr_matrix, bar=None) -> ALSRecommender:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        loss: dict[int, float] = {}

        def on_iteration(iteration: int, elapsed: float, value: float) -> None:
            loss[iteration + 1] = float(value)
            if bar is not None:
                bar.advance()

        with threadpool_limits(limits=1, user_api="blas"):  # implicit checks this when constructed
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                calculate_training_loss=True,
                num_threads=self.num_threads,
                random_state=self.seed,
            )
            model.fit(sp.csr_matrix(train, dtype=np.float32), show_progress=False, callback=on_iteration)
        self.user_factors_ = np.asarray(model.user_factors)
        self.item_factors_ = np.asarray(model.item_factors)
        self.history_ = {"train_loss": loss}
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "factors.npz", user_factors=self.user_factors_, item_factors=self.item_factors_)

    @classmethod
    def load(cls, directory: Path) -> ALSRecommender:
        model = cls()
        with np.load(directory / "factors.npz", allow_pickle=False) as data:
            model.user_factors_, model.item_factors_ = data["user_factors"], data["item_factors"]
        model.factors = model.item_factors_.shape[1]
        return model
