"""EASE^R (Steck 2019): a closed-form item-item linear model, score(users) = X[users] @ B.

B minimises ‖X - XB‖² + l2·‖B‖² subject to diag(B) = 0, which gives B = I - P·diag(1/diag(P)) with
P = (XᵀX + l2·I)⁻¹, i.e. B_ij = -P_ij / P_jj off the diagonal. By default (`binarize: false`) X is the
training weights from the features config (log plays by default), used both to fit B and to score; with
`binarize: true` it is 1 per played item, as in the paper. On the default synthetic data the weights do better
(test NDCG@10 0.076 vs 0.072 at l2 = 250, the best of 10..2000 either way).

Item-count limit: B is a dense items x items float32 matrix, 4·n_items² bytes (3.6 GB at 30 000 items), and
fitting needs up to 16·n_items² bytes (the float64 Gram matrix and its inverse; 14.4 GB at 30 000 items).
Fit refuses catalogues above `max_items` with a ConfigError rather than running out of memory; itemknn keeps
a sparse similarity instead. The inverse is taken in float64 (Cholesky: XᵀX + l2·I is positive definite) and
only the result is stored in float32.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from airush.errors import ConfigError
from airush.music.models import Recommender, csr_arrays, csr_from


class EASERecommender(Recommender):
    ranges: ClassVar[dict[str, str]] = {"l2": "> 0", "max_items": ">= 1"}

    def __init__(
        self, l2: float = 250.0, binarize: bool = False, max_items: int = 30000, seed: int = 0
    ) -> None:
        self.l2 = l2
        self.binarize = binarize
        self.max_items = max_items
        self.seed = seed  # unused: the solution is closed-form

    def fit(self, train: sp.csr_matrix, bar=None) -> EASERecommender:
        n_items = train.shape[1]
        if n_items > self.max_items:
            raise ConfigError(
                f"ease needs a dense items x items matrix ({4 * n_items**2 / 1e9:.1f} GB float32): "
                f"{n_items} items > model.max_items={self.max_items}; raise it or use model=itemknn"
            )
        x = sp.csr_matrix(train, dtype=np.float32, copy=True)  # binarised below: never the caller's
        x.sort_indices()
        if self.binarize:
            x.data[:] = 1.0
        x64 = x.astype(np.float64)
        gram = (x64.T @ x64).toarray()
        gram[np.diag_indices(n_items)] += self.l2
        p = spd_inverse(gram)  # in place: fit peaks at one n x n float64 matrix plus the float32 result
        p /= -np.diag(p)[None, :]
        p[np.diag_indices(n_items)] = 0.0
        self.weights_ = p.astype(np.float32)
        self.user_items_ = x
        self.history_: dict = {}
        if bar is not None:
            bar.advance()
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_items_[users] @ self.weights_, dtype=np.float32)

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        """Scores for users the model never saw, from their weights over its items (rows of `history`)."""
        x = sp.csr_matrix(history, dtype=np.float32, copy=True)
        if self.binarize:
            x.data[:] = 1.0
        return np.asarray(x @ self.weights_, dtype=np.float32)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "ease.npz", weights=self.weights_, **csr_arrays("user_items", self.user_items_))
        settings = {"l2": self.l2, "binarize": self.binarize, "max_items": self.max_items}
        (directory / "settings.json").write_text(json.dumps(settings, indent=2))

    @classmethod
    def load(cls, directory: Path) -> EASERecommender:
        model = cls(**json.loads((directory / "settings.json").read_text()))
        with np.load(directory / "ease.npz", allow_pickle=False) as data:
            model.weights_ = data["weights"]
            model.user_items_ = csr_from(data, "user_items")
        model.history_ = {}
        return model


# OpenBLAS's multi-threaded Cholesky crashes the process (SIGSEGV) on large matrices: seen at 17,632 items
# (Last.fm) with scipy 1.17's bundled OpenBLAS, fine at 3,000. Above this size BLAS runs on one thread:
# slower, but a run must never die.
THREADED_CHOLESKY_MAX = 4096


def spd_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite float64 matrix, computed in `a`'s memory: LAPACK potrf +
    potri (8x faster than scipy.linalg.inv(assume_a="pos") at 3,000 items), mirrored to a full matrix."""
    import scipy.linalg.lapack
    from threadpoolctl import threadpool_limits

    n = a.shape[0]
    with threadpool_limits(limits=1 if n > THREADED_CHOLESKY_MAX else None, user_api="blas"):
        c, info = scipy.linalg.lapack.dpotrf(a, lower=False, overwrite_a=True, clean=False)
        if info != 0:
            raise np.linalg.LinAlgError(f"Gram matrix + l2·I is not positive definite (potrf info {info})")
        inv, info = scipy.linalg.lapack.dpotri(c, lower=False, overwrite_c=True)
        if info != 0:
            raise np.linalg.LinAlgError(f"potri failed (info {info})")
    for lo in range(0, n, 1024):  # potri fills the upper triangle: mirror it in blocks, no n x n temporaries
        hi = min(lo + 1024, n)
        inv[lo:hi, :lo] = inv[:lo, lo:hi].T
        block = inv[lo:hi, lo:hi]
        block[np.tril_indices(hi - lo, -1)] = block.T[np.tril_indices(hi - lo, -1)]
    return inv
