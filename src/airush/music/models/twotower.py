"""Two-tower recommender over plays and item metadata (model=twotower): a torch model that scores cold items.

Item tower: x_i = keep_i · E[i] + Σ_t a_it · T[t], with E the item-id embedding, T the token embedding and
a_it item i's metadata weights (`airush.music.metadata`: artist, album, genre, decade, tags) scaled to sum
to 1, so the metadata part is a weighted mean of the item's token vectors; z_i = normalise(x_i + MLP(x_i)).
keep_i = 0 for items nobody played in training, which are scored from metadata alone (cold start), and, in
training only, 0 with probability `id_dropout` for the others, so the metadata path learns to stand in for
the id. User tower: h_u = the training-weight mean of the inputs x_j of the user's training items (ids
kept), z_u = normalise(h_u + MLP'(h_u)). No per-user parameters: a user is their history (a user with none
gets MLP'(0)), and the towers share E and T. score(u, i) = z_u · z_i / temperature.

Training: in-batch sampled softmax. A batch is `batch_size` (user, played item) pairs; each user's item is
the positive and the batch's other items the negatives (a repeat of the positive item is left out), logits
minus log q_j, where q_j is item j's share of training pairs, the chance it lands in a batch (logQ
correction, Yi et al. 2019): without it the softmax punishes popular items for being sampled often. The
positive is taken out of its user's history h_u (else the user tower finds it there), and the id part of
h_u also loses a random `history_dropout` share of the rest (the metadata part keeps them): predicting an
item from part of the history is the regulariser that mattered (valid NDCG@10 on the default synthetic
data 0.071 without it, 0.076 at 0.8; dropping the metadata part too cost cold recall). Adam; after each
epoch rank 0 computes valid NDCG@10 by full ranking with train masked (the task's `full_ranking_metrics`),
training stops after `patience` epochs without a better one, and the best epoch's weights are kept. The
user and item vectors are then computed once; `score` is a matrix product of the stored vectors.

Runs on CPU, one GPU or N DDP ranks (`airush.compute.distributed`: `gpus=N`, `trainer.devices=N`); batch_size is
per rank, and negatives come from the rank's own batch, so the effective batch grows with ranks and results
differ between rank counts (identical for identical commands at any one count on CPU). Saved as a state
dict (`twotower.pt`, loaded with weights_only=True), the vectors (`vectors.npz`) and `meta.json`.
The network, batches and per-rank training live in `towers.py`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from airush.compute.devices import DevicePlan
from airush.errors import ConfigError
from airush.music.models import Recommender
from airush.music.models.towers import Settings, encode_all, tower_arrays, train_rank, two_towers


class TwoTowerRecommender(Recommender):
    uses_metadata = True
    uses_valid = True  # fit(..., valid=csr): early stopping on the task's valid split
    supports_gpu = True
    supports_distributed = True
    ranges: ClassVar[dict[str, str]] = {
        "dim": ">= 1",
        "hidden": ">= 0 (0 = no MLP)",
        "temperature": "> 0",
        "id_dropout": "[0, 1)",
        "history_dropout": "[0, 1)",
        "learning_rate": "> 0",
        "weight_decay": ">= 0",
        "batch_size": ">= 1",
        "max_epochs": ">= 1",
        "patience": ">= 1",
        "num_threads": ">= 1",
    }

    def __init__(
        self,
        dim: int = 64,
        hidden: int = 128,
        temperature: float = 0.1,
        id_dropout: float = 0.5,
        history_dropout: float = 0.8,
        learning_rate: float = 0.003,
        weight_decay: float = 0.0,
        batch_size: int = 1024,
        max_epochs: int = 30,
        patience: int = 3,
        num_threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.dim = dim
        self.hidden = hidden
        self.temperature = temperature
        self.id_dropout = id_dropout
        self.history_dropout = history_dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.num_threads = num_threads
        self.seed = seed

    def settings(self) -> Settings:
        self.check_params()
        return Settings(**{name: getattr(self, name) for name in Settings.__dataclass_fields__})

    def training_steps(self) -> int:
        return int(self.max_epochs)

    def fit(
        self,
        train: sp.csr_matrix,
        bar=None,
        item_features: sp.csr_matrix | None = None,
        valid: sp.csr_matrix | None = None,
        devices: DevicePlan | None = None,
    ) -> TwoTowerRecommender:
        """Train on `devices` (default: this process, CPU); `valid` (binary, users x items) drives early
        stopping, none = train `max_epochs` and keep the last; `bar` advances once per epoch."""
        import torch

        from airush.compute.distributed import torch_threads, train_in_ranks

        settings = self.settings()
        train = sp.csr_matrix(train, dtype=np.float32)
        if item_features is None:
            item_features = sp.csr_matrix((train.shape[1], 0), dtype=np.float32)
        if item_features.shape[0] != train.shape[1]:
            raise ValueError(f"item_features has {item_features.shape[0]} rows for {train.shape[1]} items")
        if train.nnz == 0:
            raise ConfigError("model=twotower needs training plays; the train split is empty")
        arrays = tower_arrays(train, item_features, valid)
        plan = devices or DevicePlan()

        def with_arrays(workdir: Path) -> dict:
            source: dict | str = arrays
            if plan.distributed:
                for name, array in arrays.items():
                    np.save(workdir / f"{name}.npy", array)
                source = str(workdir)
            return {
                "settings": settings,
                "arrays": source,
                "shape": train.shape,
                "n_tokens": item_features.shape[1],
            }

        trained = train_in_ranks(
            train_rank, with_arrays, plan, settings.seed, settings.num_threads, bar, "airush-twotower-"
        )
        self.history_, self.best_epoch_, self.epochs_ = trained.history, trained.best_epoch, trained.epochs
        self.rank_checksums_ = trained.rank_checksums
        self.n_tokens_ = item_features.shape[1]
        self.network_ = two_towers(train.shape[1], self.n_tokens_, settings)
        self.network_.load_state_dict(trained.state)
        self.network_.eval()
        with torch_threads(self.num_threads), torch.no_grad():
            users, items = encode_all(self.network_, arrays, train.shape, "cpu")
        self.user_vectors_ = (users / np.float32(self.temperature)).astype(np.float32)
        self.item_vectors_ = items
        self.warm_items_ = arrays["warm"]
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.user_vectors_[users] @ self.item_vectors_.T

    def save(self, directory: Path) -> None:
        import torch

        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.network_.state_dict(), directory / "twotower.pt")
        np.savez(
            directory / "vectors.npz",
            user_vectors=self.user_vectors_,
            item_vectors=self.item_vectors_,
            warm_items=self.warm_items_,
        )
        meta = {
            "settings": asdict(self.settings()),
            "n_items": int(self.item_vectors_.shape[0]),
            "n_tokens": int(self.n_tokens_),
            "best_epoch": self.best_epoch_,
            "epochs": self.epochs_,
        }
        (directory / "meta.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, directory: Path) -> TwoTowerRecommender:
        import torch

        meta = json.loads((directory / "meta.json").read_text())
        model = cls(**meta["settings"])
        with np.load(directory / "vectors.npz", allow_pickle=False) as data:
            model.user_vectors_, model.item_vectors_ = data["user_vectors"], data["item_vectors"]
            model.warm_items_ = data["warm_items"]
        model.n_tokens_, model.best_epoch_, model.epochs_ = (
            meta["n_tokens"],
            meta["best_epoch"],
            meta["epochs"],
        )
        model.network_ = two_towers(meta["n_items"], meta["n_tokens"], model.settings())
        model.network_.load_state_dict(
            torch.load(directory / "twotower.pt", weights_only=True, map_location="cpu")
        )
        model.network_.eval()
        model.history_ = {}
        return model
