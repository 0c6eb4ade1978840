"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) via the `implicit` library's CPU solver.

Confidence is 1 + alpha·w for the training weight w (from the features config). BLAS is held to one
thread during fit: implicit parallelises over users itself, and nested BLAS threads only slow it down.
"""

from __future__ import annotations

from typing import ClassVar

import scipy.sparse as sp

from airush.music.models import FactorRecommender


class ALSRecommender(FactorRecommender):
    ranges: ClassVar[dict[str, str]] = {
        "factors": ">= 1",
        "regularization": ">= 0",
        "alpha": ">= 0",
        "iterations": ">= 1",
        "num_threads": ">= 0 (0 = all cores)",
    }

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

        loss: dict[int, float] = {}

        def on_iteration(iteration: int, elapsed: float, value: float) -> None:
            loss[iteration + 1] = float(value)
            if bar is not None:
                bar.advance()

        self._fit_implicit(
            lambda: AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                calculate_training_loss=True,
                num_threads=self.num_threads,
                random_state=self.seed,
            ),
            train,
            on_iteration,
        )
        self.history_ = {"train_loss": loss}
        return self
