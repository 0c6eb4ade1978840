"""Content-based recommender: a user's profile is the metadata of what they played, score = cosine similarity.

Item vectors v_i: the items x tokens metadata matrix (`airush.music.metadata`: artist, album, genre, decade,
tags), minus tokens only one item has (they link no two items: the one item they match is already the user's,
so it is masked), weighted by idf_t = log(n_items / items with token t) and L2-normalised per item. A user's
profile is p_u = Σ_i w_ui · v_i over their training weights w (the features config: log plays by default),
L2-normalised, and

    score(u, i) = cos(p_u, v_i) + popularity_weight · pop_i,   pop_i = log(1 + n_i) / log(1 + max_j n_j)

with n_i the users who played item i in training, so both terms lie in [0, 1]. An item nobody played in
training (cold start) scores through its metadata twice: its cosine with the profile, and as pop_i the mean
popularity of the played items weighted by their cosine to it (Σ_j cos(i, j)·pop_j / Σ_j cos(i, j), computed
through token sums in O(nnz), never an items x items matrix); 0 if it shares no token with a played item.
Without that estimate any popularity weight would rank every cold item below every played one.
Pure scipy: scoring multiplies a block of sparse profiles by the sparse item vectors, so memory is the
(users x items) float32 block.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from airush.errors import ConfigError
from airush.music.models import Recommender, csr_arrays, csr_from


class ContentRecommender(Recommender):
    uses_metadata = True
    ranges: ClassVar[dict[str, str]] = {"popularity_weight": ">= 0"}

    def __init__(self, popularity_weight: float = 0.0, seed: int = 0) -> None:
        self.popularity_weight = popularity_weight
        self.seed = seed  # unused: the model is deterministic

    def fit(
        self, train: sp.csr_matrix, bar=None, item_features: sp.csr_matrix | None = None
    ) -> ContentRecommender:
        if item_features is None or item_features.nnz == 0:
            raise ConfigError(
                "model=content needs item metadata (artist, album, genre, year or tags); this data has none"
            )
        if item_features.shape[0] != train.shape[1]:
            raise ValueError(f"item_features has {item_features.shape[0]} rows for {train.shape[1]} items")
        self.check_params()
        items = tfidf_item_vectors(item_features)
        profiles = sp.csr_matrix(train, dtype=np.float32) @ items
        self.user_profiles_ = l2_normalised_rows(profiles)
        self.item_vectors_ = items
        played_by = np.bincount(train.indices, minlength=train.shape[1])
        self.popularity_ = popularity_with_cold_estimate(played_by, items)
        self.history_: dict = {}
        if bar is not None:
            bar.advance()
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        scores = (self.user_profiles_[users] @ self.item_vectors_.T).toarray().astype(np.float32, copy=False)
        if self.popularity_weight:
            scores += np.float32(self.popularity_weight) * self.popularity_
        return scores

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(
            directory / "content.npz",
            popularity=self.popularity_,
            **csr_arrays("user_profiles", self.user_profiles_),
            **csr_arrays("item_vectors", self.item_vectors_),
        )
        (directory / "settings.json").write_text(
            json.dumps({"popularity_weight": self.popularity_weight}, indent=2)
        )

    @classmethod
    def load(cls, directory: Path) -> ContentRecommender:
        model = cls(**json.loads((directory / "settings.json").read_text()))
        with np.load(directory / "content.npz", allow_pickle=False) as data:
            model.popularity_ = data["popularity"]
            model.user_profiles_ = csr_from(data, "user_profiles")
            model.item_vectors_ = csr_from(data, "item_vectors")
        model.history_ = {}
        return model


def popularity_with_cold_estimate(played_by: np.ndarray, items: sp.csr_matrix) -> np.ndarray:
    """log(1 + n_i) / log(1 + max n) for played items; for the others the cosine-weighted mean of that over
    played items (item vectors are non-negative and unit length, so v_i·v_j = cos(i, j) >= 0)."""
    popularity = np.log1p(played_by.astype(np.float64)) / max(np.log1p(float(played_by.max())), 1e-12)
    played = played_by > 0
    weighted = items[played].T @ popularity[played]  # per token: Σ_j v_jt · pop_j
    mass = np.asarray(items[played].sum(axis=0), dtype=np.float64).ravel()  # per token: Σ_j v_jt
    numerator, denominator = items @ weighted, items @ mass
    estimate = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
    return np.where(played, popularity, estimate).astype(np.float32)


def tfidf_item_vectors(item_features: sp.csr_matrix) -> sp.csr_matrix:
    """items x tokens: weights · log(n_items / df) on tokens at least two items share, L2 rows (float32)."""
    features = sp.csr_matrix(item_features, dtype=np.float64, copy=True)
    features.eliminate_zeros()
    n_items = features.shape[0]
    df = np.bincount(features.indices, minlength=features.shape[1])
    idf = np.where(df >= 2, np.log(n_items / np.maximum(df, 1)), 0.0)
    features.data *= idf[features.indices]
    features.eliminate_zeros()  # single-item tokens, and tokens every item has (idf 0)
    return l2_normalised_rows(features)


def l2_normalised_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit length (all-zero rows stay zero), float32 with sorted indices."""
    matrix = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    matrix.data /= np.repeat(np.where(norms > 0, norms, 1.0), np.diff(matrix.indptr))
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sort_indices()
    return matrix
