"""Two-tower recommender over plays and item metadata (model=twotower): a torch model that scores cold items.

Item tower: x_i = keep_i · E[i] + Σ_t a_it · T[t], with E the item-id embedding, T the token embedding and
a_it item i's metadata weights (`airush.music.metadata`: artist, album, genre, decade, tags) scaled to sum
to 1, so the metadata part is a weighted mean of the item's token vectors; z_i = normalise(x_i + MLP(x_i)).
keep_i = 0 for items nobody played in training, which are scored from metadata alone (cold start), and, in
training only, 0 with probability `id_dropout` for the others, so the metadata path learns to stand in for
the id. User tower: h_u = the training-weight mean of the inputs x_j of the user's training items (ids
kept), z_u = normalise(h_u + MLP'(h_u)). No per-user parameters: a user is their history, and the towers
share E and T. score(u, i) = z_u · z_i / temperature.

Training: in-batch sampled softmax. A batch is `batch_size` (user, played item) pairs; each user's item is
the positive and the batch's other items the negatives (a repeat of the positive item is left out), logits
minus log q_j, where q_j is item j's share of training pairs, the chance it lands in a batch (logQ
correction, Yi et al. 2019): without it the softmax punishes popular items for being sampled often. The
positive is taken out of its user's history h_u (else the user tower finds it there). Adam; after each
epoch rank 0 computes valid NDCG@10 by full ranking with train masked (the task's `full_ranking_metrics`),
training stops after `patience` epochs without a better one, and the best epoch's weights are kept. The
user and item vectors are then computed once; `score` is a matrix product of the stored vectors.

Runs on CPU, one GPU or N DDP ranks (`airush.distributed`: `gpus=N`, `trainer.devices=N`); batch_size is
per rank, and negatives come from the rank's own batch, so the effective batch grows with ranks and results
differ between rank counts (identical for identical commands at any one count on CPU). Saved as a state
dict (`twotower.pt`, loaded with weights_only=True), the vectors (`vectors.npz`) and `meta.json`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from airush.devices import DevicePlan
from airush.errors import ConfigError
from airush.music.models import Recommender

VALID_K = 10  # early stopping on valid NDCG at this K
ENCODE_USERS = 4096  # users per encoding batch: bounds the history bags' size in memory


@dataclass(frozen=True)
class Settings:
    """The model's __init__ arguments: what shapes the towers and their training."""

    dim: int
    hidden: int
    temperature: float
    id_dropout: float
    history_dropout: float
    learning_rate: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    num_threads: int
    seed: int


class TwoTowerRecommender(Recommender):
    uses_metadata = True
    uses_valid = True  # fit(..., valid=csr): early stopping on the task's valid split
    supports_gpu = True
    supports_distributed = True

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
        if int(self.hidden) < 0:
            raise ConfigError(f"model.hidden must be >= 0 (0 = no MLP), got {self.hidden!r}")
        for name in ("dim", "batch_size", "max_epochs", "patience", "num_threads"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("id_dropout", "history_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.temperature <= 0 or self.learning_rate <= 0 or self.weight_decay < 0:
            raise ConfigError(
                "model.temperature and model.learning_rate must be > 0 and model.weight_decay >= 0, got "
                f"{self.temperature}, {self.learning_rate}, {self.weight_decay}"
            )
        return Settings(**{name: getattr(self, name) for name in Settings.__dataclass_fields__})

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

        from airush.distributed import launch

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
        workdir = Path(tempfile.mkdtemp(prefix="airush-twotower-"))
        try:
            if plan.distributed:  # ranks memory-map the arrays instead of each unpickling a copy
                for name, array in arrays.items():
                    np.save(workdir / f"{name}.npy", array)
                source: dict | str = str(workdir)
            else:
                source = arrays
            payload = {
                "settings": settings,
                "arrays": source,
                "shape": train.shape,
                "n_tokens": item_features.shape[1],
            }
            results = launch(train_rank, payload, plan, workdir, settings.seed, settings.num_threads, bar)
            state = torch.load(workdir / "best.pt", weights_only=True, map_location="cpu")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        main = results[0]
        self.history_ = {
            name: {int(k): v for k, v in curve.items()}
            for name, curve in main["history"].items()
            if not name.startswith("valid_neg_")  # the minimised twin of valid_ndcg, for train_epochs
        }
        self.best_epoch_, self.epochs_ = int(main["best_epoch"]), int(main["epochs"])
        self.rank_checksums_ = [r["param_checksum"] for r in results]
        self.n_tokens_ = item_features.shape[1]
        self.network_ = two_towers(train.shape[1], self.n_tokens_, settings)
        self.network_.load_state_dict(state)
        self.network_.eval()
        from airush.distributed import torch_threads

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


def tower_arrays(
    train: sp.csr_matrix, item_features: sp.csr_matrix, valid: sp.csr_matrix | None
) -> dict[str, np.ndarray]:
    """Everything the ranks read, as plain arrays: the training weights (CSR), the items' metadata weights
    scaled to sum 1 per item (CSR), each user's sum of those over their training items (CSR), which items
    were played in training, log q per item, and the valid split (CSR; empty without one)."""
    train = sp.csr_matrix(train, dtype=np.float32, copy=True)
    train.sort_indices()
    tokens = sp.csr_matrix(item_features, dtype=np.float32, copy=True)
    tokens.eliminate_zeros()
    row_sum = np.asarray(tokens.sum(axis=1), dtype=np.float64).ravel()
    tokens = sp.csr_matrix(
        sp.diags(np.divide(1.0, row_sum, out=np.zeros_like(row_sum), where=row_sum > 0)) @ tokens,
        dtype=np.float32,
    )
    tokens.sort_indices()
    profiles = sp.csr_matrix(train @ tokens, dtype=np.float32)
    profiles.sort_indices()
    pairs = np.bincount(train.indices, minlength=train.shape[1])
    log_q = np.log(np.maximum(pairs, 1) / train.nnz).astype(np.float32)
    if valid is None:
        valid = sp.csr_matrix(train.shape, dtype=np.float32)
    valid = sp.csr_matrix(valid, dtype=np.float32)
    valid.sort_indices()
    out = {"warm": pairs > 0, "log_q": log_q}
    for name, matrix in (("train", train), ("tokens", tokens), ("profiles", profiles), ("valid", valid)):
        out |= {
            f"{name}_indptr": matrix.indptr.astype(np.int64),
            f"{name}_indices": matrix.indices.astype(np.int64),
            f"{name}_data": matrix.data,
        }
    return out


def rows_of(arrays, name: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR `name`'s `rows` as EmbeddingBag input: (column ids, bag offsets, weights)."""
    indptr = arrays[f"{name}_indptr"]
    starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flat = np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)
    return np.asarray(arrays[f"{name}_indices"][flat]), offsets, np.asarray(arrays[f"{name}_data"][flat])


def two_towers(n_items: int, n_tokens: int, settings: Settings):
    """The network (`item_vectors`, `user_vectors`); torch is imported here, not at import."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Towers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item_id = nn.Embedding(n_items, settings.dim)
            self.token = nn.Embedding(max(n_tokens, 1), settings.dim)
            for table in (self.item_id, self.token):
                nn.init.normal_(table.weight, std=0.1)

            def mlp():
                if not settings.hidden:
                    return None
                return nn.Sequential(
                    nn.Linear(settings.dim, settings.hidden),
                    nn.ReLU(),
                    nn.Linear(settings.hidden, settings.dim),
                )

            self.item_mlp, self.user_mlp = mlp(), mlp()

        def forward(self, history_bag, id_total, profile_bag, token_total, items, keep, weight, token_bag):
            """Unit user and item vectors (B, dim) of a batch of (user, played item) pairs. The item is out
            of its user's history: `history_bag` (weights zeroed in `batch_inputs`) and `id_total` without
            it, `token_total` the rest of the user's weight after taking out its `weight` (B,), its tokens
            taken out here; `keep` (B,) is the item-id dropout mask."""
            ids, tokens = self.item_id(items), self.bag(self.token, token_bag)
            item = self.item_vectors(ids * keep.unsqueeze(1) + tokens)
            minus = tokens * weight.unsqueeze(1)
            return self.user_vectors(history_bag, id_total, profile_bag, token_total, minus), item

        def bag(self, table, bag) -> torch.Tensor:
            ids, offsets, weights = bag
            return F.embedding_bag(ids, table.weight, offsets, mode="sum", per_sample_weights=weights)

        def item_inputs(self, items, keep, token_bag):
            """x_i per item (B, dim): id embedding where `keep` (float 0/1), plus the metadata mean."""
            return self.item_id(items) * keep.unsqueeze(1) + self.bag(self.token, token_bag)

        def item_vectors(self, x):
            return F.normalize(x + self.item_mlp(x) if self.item_mlp is not None else x, dim=1)

        def user_vectors(self, history_bag, id_total, profile_bag, token_total, minus=None):
            """z_u (B, dim): h_u = weighted mean of the history's id embeddings + weighted mean of their
            metadata means (`minus`, (B, dim), taken out of the latter first); an empty part adds 0."""
            tokens = self.bag(self.token, profile_bag)
            if minus is not None:
                tokens = tokens - minus
            h = _mean(self.bag(self.item_id, history_bag), id_total) + _mean(tokens, token_total)
            return F.normalize(h + self.user_mlp(h) if self.user_mlp is not None else h, dim=1)

    def _mean(summed, total):
        total = total.unsqueeze(1)
        return torch.where(total > 0, summed / total.clamp(min=1e-12), torch.zeros_like(summed))

    return Towers()


def _bag_tensors(bag, device: str):
    import torch

    ids, offsets, weights = bag
    return (
        torch.from_numpy(ids).to(device),
        torch.from_numpy(offsets).to(device),
        torch.from_numpy(weights.astype(np.float32, copy=False)).to(device),
    )


def user_totals(arrays, users: np.ndarray) -> np.ndarray:
    """Each user's summed training weight (float64)."""
    indptr, data = arrays["train_indptr"], np.asarray(arrays["train_data"], dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(data)])
    return cumulative[indptr[users + 1]] - cumulative[indptr[users]]


def batch_inputs(arrays, users, items, weights, settings: Settings, rng, device: str) -> tuple:
    """The network's inputs for (user, played item) pairs: histories without the pair's item and, at random,
    without `history_dropout` of their other items (a denoising task: predict an item from part of the
    rest); the item's id embedding dropped with probability `id_dropout`."""
    import torch

    ids, offsets, history_weights = rows_of(arrays, "train", users)
    lengths = np.diff(np.append(offsets, len(ids)))
    bag = np.repeat(np.arange(len(users)), lengths)
    kept = (ids != items[bag]) & (rng.random(len(ids)) >= settings.history_dropout)
    history_weights = np.where(kept, history_weights, 0).astype(np.float32)
    id_total = np.bincount(bag, weights=history_weights, minlength=len(users))
    token_total = user_totals(arrays, users) - weights
    token_total[token_total < 1e-6 * (token_total + weights)] = 0.0  # only the left-out item: rounding noise
    keep = (rng.random(len(users)) >= settings.id_dropout).astype(np.float32)

    def tensor(array, dtype=np.float32):
        return torch.from_numpy(np.ascontiguousarray(array, dtype=dtype)).to(device)

    return (
        _bag_tensors((ids, offsets, history_weights), device),
        tensor(id_total),
        _bag_tensors(rows_of(arrays, "profiles", users), device),
        tensor(token_total),
        tensor(items, np.int64),
        tensor(keep),
        tensor(weights),
        _bag_tensors(rows_of(arrays, "tokens", items), device),
    )


def encode_all(network, arrays, shape: tuple[int, int], device: str) -> tuple[np.ndarray, np.ndarray]:
    """Unit user vectors from full training histories and unit item vectors (ids of warm items only), as
    float32 arrays (n_users, dim) and (n_items, dim); call under torch.no_grad."""
    import torch

    n_users, n_items = shape
    items = np.arange(n_items)
    keep = torch.from_numpy(np.asarray(arrays["warm"], dtype=np.float32)).to(device)
    x = network.item_inputs(
        torch.from_numpy(items).to(device), keep, _bag_tensors(rows_of(arrays, "tokens", items), device)
    )
    item_vectors = network.item_vectors(x).float().cpu().numpy()
    user_vectors = np.empty((n_users, item_vectors.shape[1]), dtype=np.float32)
    for lo in range(0, n_users, ENCODE_USERS):
        users = np.arange(lo, min(lo + ENCODE_USERS, n_users))
        total = torch.from_numpy(user_totals(arrays, users).astype(np.float32)).to(device)
        z = network.user_vectors(
            _bag_tensors(rows_of(arrays, "train", users), device),
            total,
            _bag_tensors(rows_of(arrays, "profiles", users), device),
            total,
        )
        user_vectors[users] = z.float().cpu().numpy()
    return user_vectors, item_vectors


def _csr(arrays, name: str, shape) -> sp.csr_matrix:
    return sp.csr_matrix(
        (arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"]), shape=shape
    )


def _load_arrays(source) -> dict:
    if isinstance(source, dict):
        return source
    return {p.stem: np.load(p, mmap_mode="r") for p in Path(source).glob("*.npy")}


def train_rank(ctx, payload: dict) -> dict:
    """One rank's training (module level so spawned ranks can import it)."""
    import torch
    from torch.nn import functional as F

    from airush.distributed import train_epochs
    from airush.music.metrics import full_ranking_metrics

    settings: Settings = payload["settings"]
    arrays = _load_arrays(payload["arrays"])
    shape = tuple(payload["shape"])
    indptr = np.asarray(arrays["train_indptr"])
    pair_user = np.repeat(np.arange(shape[0]), np.diff(indptr))
    pair_item = np.asarray(arrays["train_indices"])
    pair_weight = np.asarray(arrays["train_data"], dtype=np.float32)
    log_q = torch.from_numpy(np.array(arrays["log_q"])).to(ctx.device)
    seen = _csr(arrays, "train", shape)
    valid = _csr(arrays, "valid", shape)

    torch.manual_seed(settings.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    network = two_towers(shape[1], payload["n_tokens"], settings).to(ctx.device)
    optimizer = torch.optim.Adam(
        network.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )

    def batches(epoch: int):
        order = np.asarray(ctx.shard(len(pair_item), epoch), dtype=np.int64)
        rng = np.random.default_rng([settings.seed, epoch, ctx.rank])  # dropout masks, fixed per rank
        for lo in range(0, len(order), settings.batch_size):
            rows = order[lo : lo + settings.batch_size]
            yield batch_inputs(
                arrays, pair_user[rows], pair_item[rows], pair_weight[rows], settings, rng, ctx.device
            )

    def batch_loss(model, batch):
        user, item = model(*batch)
        items = batch[4]
        logits = (user @ item.T).float() / settings.temperature - log_q[items].unsqueeze(0)
        repeats = (items.unsqueeze(0) == items.unsqueeze(1)) & ~torch.eye(
            len(items), dtype=torch.bool, device=items.device
        )
        logits = logits.masked_fill(repeats, float("-inf"))
        target = torch.arange(len(items), device=items.device)
        return F.cross_entropy(logits, target), len(items)

    def validate(module) -> dict[str, float]:
        validated[0] += 1
        if valid.nnz == 0:  # nothing to select on: every epoch counts as the best so far
            return {f"neg_ndcg_at_{VALID_K}": -float(validated[0])}
        users, items = encode_all(module, arrays, shape, ctx.device)
        metrics = full_ranking_metrics(lambda rows: users[rows] @ items.T, seen, valid, [VALID_K])
        ndcg = metrics[f"ndcg_at_{VALID_K}"]
        return {
            f"ndcg_at_{VALID_K}": ndcg,
            f"recall_at_{VALID_K}": metrics[f"recall_at_{VALID_K}"],
            f"neg_ndcg_at_{VALID_K}": -ndcg,
        }

    validated = [0]
    return train_epochs(
        ctx,
        network,
        optimizer,
        batches,
        batch_loss,
        validate,
        max_epochs=settings.max_epochs,
        patience=settings.patience,
        checkpoint=ctx.workdir / "best.pt",
        monitor=f"neg_ndcg_at_{VALID_K}",
    )
