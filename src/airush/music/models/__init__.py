"""Music models: each learns from a users x items weight matrix and scores every item for a user.

Protocol every model implements (settings in __init__, learned state ends in `_`)::

    fit(train_csr, bar=None) -> self          # users x items weights from the features config
    score(users) -> np.ndarray                # (len(users), n_items) float32, higher = better
    recommend(users, k, exclude=None)         # top-k item ids per user (shared, below)
    save(directory) / load(directory)         # plain npz/json, no pickles
    history_: dict[str, dict[int, float]]     # per-iteration curves for MLflow, where the model has them

Four extras are opt-in, each by a class flag; a model without the flag is fitted without the argument:
- `uses_metadata = True`: `fit(..., item_features=csr)`, the items x tokens matrix of
  `airush.music.metadata.item_metadata` (row i = item i; artist/album/genre/decade/tag tokens, plain weights,
  possibly no columns at all). Every item is a row, played in training or not, so such a model can score
  cold-start items.
- `uses_valid = True`: `fit(..., valid=csr)`, the binary valid split (users x items), for early stopping.
- `score_history(history_csr) -> np.ndarray`: scores for users the model never saw, from their weights over
  its items (the features config applied), as item-item models can (ease, itemknn); `airush predict` uses
  it for new users and refuses them for models without it.
- `supports_gpu = True`: `fit(..., devices=DevicePlan)` (`airush.compute.devices`), where `gpus` / `trainer.*` say
  to train: CPU, one GPU, or N DDP ranks. Models without it refuse `gpus > 0` before any work.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from airush.model import Model

if TYPE_CHECKING:
    import scipy.sparse as sp


class Recommender(Model):
    task = "music"
    supports_gpu = False  # True: fit also takes devices (see the module docstring)
    uses_metadata = False  # True: fit also takes item_features
    uses_valid = False  # True: fit also takes valid

    def fit(self, train: sp.csr_matrix, bar=None) -> Recommender:
        raise NotImplementedError

    def score(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
        """Top-k item ids for each user, never an item in that user's `exclude` row (-1 pads short rows);
        scored in blocks, so any number of users fits in memory."""
        from airush.music.ranking import top_k_blocks

        users = np.asarray(users)
        if len(users) == 0:
            return np.empty((0, k), dtype=np.int64)
        n_items = exclude.shape[1] if exclude is not None else len(self.score(users[:1])[0])
        return np.concatenate([top for _, top in top_k_blocks(self.score, users, n_items, k, exclude)])

    def save(self, directory: Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, directory: Path) -> Recommender:
        raise NotImplementedError


class FactorRecommender(Recommender):
    """Users and items as vectors, score = their dot product; what the `implicit` library's models learn."""

    def _fit_implicit(self, build: Callable[[], Any], train: sp.csr_matrix, callback: Callable) -> None:
        """Build and fit an implicit model with BLAS held to one thread: implicit parallelises over users
        itself (and warns when nested BLAS threads would compete), `callback` gets each epoch's report."""
        import scipy.sparse as sp
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):  # implicit checks this when constructed
            model = build()
            model.fit(sp.csr_matrix(train, dtype=np.float32), show_progress=False, callback=callback)
        self.user_factors_ = np.asarray(model.user_factors)
        self.item_factors_ = np.asarray(model.item_factors)

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T

    def training_steps(self) -> int:
        return int(getattr(self, "iterations", 1))

    def save(self, directory: Path) -> None:
        self.save_params(directory)
        np.savez(directory / "factors.npz", user_factors=self.user_factors_, item_factors=self.item_factors_)

    @classmethod
    def load(cls, directory: Path) -> FactorRecommender:
        model = cls.from_params(directory)
        with np.load(directory / "factors.npz", allow_pickle=False) as data:
            model.user_factors_, model.item_factors_ = data["user_factors"], data["item_factors"]
        return model


def csr_arrays(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as plain arrays for np.savez (no pickle)."""
    return {
        f"{prefix}_data": matrix.data,
        f"{prefix}_indices": matrix.indices,
        f"{prefix}_indptr": matrix.indptr,
        f"{prefix}_shape": np.asarray(matrix.shape, dtype=np.int64),
    }


def csr_from(data, prefix: str) -> sp.csr_matrix:
    """The CSR matrix `csr_arrays` stored under `prefix`."""
    import scipy.sparse as sp

    return sp.csr_matrix(
        (data[f"{prefix}_data"], data[f"{prefix}_indices"], data[f"{prefix}_indptr"]),
        shape=tuple(int(n) for n in data[f"{prefix}_shape"]),
    )
