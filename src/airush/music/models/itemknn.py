"""Item-item nearest neighbours: a user's score for item j sums the similarities of j to the items they played.

Each item is a vector over users. `similarity: cosine` compares the training weights' item columns directly;
`similarity: bm25` first reweights them like implicit's `bm25_weight` (items as documents, users as terms:
idf per user, length normalisation per item with k1, b) and then takes their cosine, so both kinds share the
same scale and `shrinkage`. With shrinkage h the similarity is a·b / (‖a‖‖b‖ + h), which damps pairs seen
together by only a few users. Each item keeps its `neighbours` most similar other items (never itself; ties ->
lower item id), so row i of S holds item i's neighbours and score(users) = train[users] @ S.

Memory: S holds at most n_items·neighbours entries (8 bytes each: float32 value + int32 column). Fit computes
XᵀX in blocks of item rows bounded by BLOCK_PAIRS candidate pairs (about 60 bytes a pair while a block is
pruned: ~250 MB, unless one item row alone has more pairs), so only the kept neighbours accumulate. Scoring
makes a dense len(users) x n_items float32 block. The model keeps its (float32 copy of the) training matrix
to score with, and saves both matrices as plain npz arrays (data, indices, indptr, shape).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from airush.model import one_of
from airush.music.models import Recommender, csr_arrays, csr_from

SIMILARITIES = ("cosine", "bm25")
BLOCK_PAIRS = 1 << 22  # upper bound on co-occurring item pairs computed at once during fit


class ItemKNNRecommender(Recommender):
    ranges: ClassVar[dict[str, str]] = {
        "neighbours": ">= 1",
        "similarity": one_of(SIMILARITIES),
        "shrinkage": ">= 0",
        "k1": ">= 0",
        "b": "[0, 1]",
    }

    def __init__(
        self,
        neighbours: int = 100,
        similarity: str = "cosine",
        shrinkage: float = 50.0,
        k1: float = 1.2,
        b: float = 0.75,
        seed: int = 0,
    ) -> None:
        self.neighbours = neighbours
        self.similarity = similarity
        self.shrinkage = shrinkage
        self.k1 = k1  # bm25 only: term-frequency saturation
        self.b = b  # bm25 only: item length normalisation
        self.seed = seed  # unused: the model is deterministic

    def fit(self, train: sp.csr_matrix, bar=None) -> ItemKNNRecommender:
        self.check_params()
        train = sp.csr_matrix(train, dtype=np.float32, copy=True)  # kept to score with
        train.sort_indices()
        columns = bm25_weight(train, self.k1, self.b) if self.similarity == "bm25" else train
        self.similarity_ = top_k_cosine(columns.tocsc(), int(self.neighbours), float(self.shrinkage))
        self.user_items_ = train
        self.history_: dict = {}
        if bar is not None:
            bar.advance()
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return (self.user_items_[users] @ self.similarity_).toarray().astype(np.float32, copy=False)

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        """Scores for users the model never saw, from their weights over its items (rows of `history`)."""
        rows = sp.csr_matrix(history, dtype=np.float32)
        return (rows @ self.similarity_).toarray().astype(np.float32, copy=False)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(
            directory / "itemknn.npz",
            **csr_arrays("similarity", self.similarity_),
            **csr_arrays("user_items", self.user_items_),
        )
        settings = {k: getattr(self, k) for k in ("neighbours", "similarity", "shrinkage", "k1", "b")}
        (directory / "settings.json").write_text(json.dumps(settings, indent=2))

    @classmethod
    def load(cls, directory: Path) -> ItemKNNRecommender:
        model = cls(**json.loads((directory / "settings.json").read_text()))
        with np.load(directory / "itemknn.npz", allow_pickle=False) as data:
            model.similarity_ = csr_from(data, "similarity")
            model.user_items_ = csr_from(data, "user_items")
        model.history_ = {}
        return model


def bm25_weight(user_items: sp.csr_matrix, k1: float, b: float) -> sp.csr_matrix:
    """users x items weights w·(k1 + 1) / (k1·L_i + w) · idf_u, as implicit's bm25_weight on items x users.

    idf_u = log(n_items) - log(1 + items of user u); L_i = (1 - b) + b · total weight of item i / its mean.
    """
    coo = user_items.tocoo()
    n_items = user_items.shape[1]
    idf = np.log(n_items) - np.log1p(np.bincount(coo.row, minlength=user_items.shape[0]))
    item_weight = np.bincount(coo.col, weights=coo.data, minlength=n_items)
    length_norm = (1.0 - b) + b * item_weight / max(item_weight.mean(), 1e-12)
    data = coo.data * (k1 + 1.0) / (k1 * length_norm[coo.col] + coo.data) * idf[coo.row]
    return sp.csr_matrix((data.astype(np.float32), (coo.row, coo.col)), shape=user_items.shape)


def top_k_cosine(columns: sp.csc_matrix, k: int, shrinkage: float) -> sp.csr_matrix:
    """items x items CSR: row i holds the k items most similar to item i (self excluded, > 0 only)."""
    n_items = columns.shape[1]
    norms = np.sqrt(np.asarray(columns.multiply(columns).sum(axis=0)).ravel()).astype(np.float32)
    by_item = columns.T.tocsr()  # items x users
    by_user = columns.tocsr()
    # XᵀX row i has at most Σ_{users u of i} (items of u) entries: cut item rows into blocks by that bound
    user, item = by_user.nonzero()
    bound = np.cumsum(np.bincount(item, weights=np.diff(by_user.indptr)[user], minlength=n_items))
    rows, cols, vals = [], [], []
    lo = 0
    while lo < n_items:
        done = bound[lo - 1] if lo else 0.0
        hi = max(lo + 1, int(np.searchsorted(bound, done + BLOCK_PAIRS, side="right")))
        block = by_item[lo:hi] @ by_user
        block.sort_indices()
        block = block.tocoo()
        r, c = block.row.astype(np.int64), block.col.astype(np.int64)  # r: row within the block
        v = (block.data / (norms[r + lo] * norms[c] + np.float32(shrinkage))).astype(np.float32)
        keep = (r + lo != c) & (v > 0)
        r, c, v = r[keep], c[keep], v[keep]
        # one stable sort on (row, descending similarity): v > 0, so its float32 bits order like v and fit 31
        # bits; stability keeps ascending item ids within ties
        descending = np.uint32(0x7FFFFFFF) - v.view(np.uint32)
        order = np.argsort((r.astype(np.uint64) << np.uint64(31)) | descending, kind="stable")
        r, c, v = r[order], c[order], v[order]
        per_row = np.bincount(r, minlength=hi - lo)
        starts = np.cumsum(per_row) - per_row
        top = np.arange(len(r)) - starts[r] < k  # rank within the row
        r = r + lo
        rows.append(r[top])
        cols.append(c[top])
        vals.append(v[top])
        lo = hi
    similarity = sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
    )
    similarity.sort_indices()
    return similarity
