"""The torch side of model=twotower (`twotower.py`): the network, training batches and one rank's training.

Kept apart so the model module stays readable; torch is imported inside functions only. Arrays reach the
ranks as a dict of plain numpy arrays (`tower_arrays`), in memory for one rank, memory-mapped .npy files
for spawned DDP ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

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


def tower_arrays(
    train: sp.csr_matrix, item_features: sp.csr_matrix, valid: sp.csr_matrix | None
) -> dict[str, np.ndarray]:
    """What the ranks read: training weights (CSR), each item's metadata weights scaled to sum 1 (CSR),
    which items have training plays, log q per item, and the valid split (CSR; empty without one)."""
    train = sp.csr_matrix(train, dtype=np.float32, copy=True)
    train.sort_indices()
    tokens = sp.csr_matrix(item_features, dtype=np.float64, copy=True)
    tokens.eliminate_zeros()
    row_sum = np.asarray(tokens.sum(axis=1)).ravel()
    tokens = sp.csr_matrix(sp.diags(1.0 / np.where(row_sum > 0, row_sum, 1.0)) @ tokens, dtype=np.float32)
    tokens.sort_indices()
    pairs = np.bincount(train.indices, minlength=train.shape[1])
    valid = sp.csr_matrix(train.shape, dtype=np.float32) if valid is None else valid
    valid = sp.csr_matrix(valid, dtype=np.float32)
    valid.sort_indices()
    out = {"warm": pairs > 0, "log_q": np.log(np.maximum(pairs, 1) / train.nnz).astype(np.float32)}
    for name, matrix in (("train", train), ("tokens", tokens), ("valid", valid)):
        out[f"{name}_indptr"] = matrix.indptr.astype(np.int64)
        out[f"{name}_indices"] = matrix.indices.astype(np.int64)
        out[f"{name}_data"] = matrix.data
    return out


def rows_of(arrays, name: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR `name`'s `rows` as EmbeddingBag input: (column ids, bag offsets, weights)."""
    indptr = arrays[f"{name}_indptr"]
    starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flat = np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)
    return np.asarray(arrays[f"{name}_indices"][flat]), offsets, np.asarray(arrays[f"{name}_data"][flat])


def two_towers(n_items: int, n_tokens: int, settings: Settings):
    """The network; torch is imported here, not at import."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def bag_sum(table, bag):
        """Weighted sum of `table` rows per bag (B, dim); metadata weights sum to 1, so that is a mean."""
        ids, offsets, weights = bag
        return F.embedding_bag(ids, table, offsets, mode="sum", per_sample_weights=weights)

    def mean_of(table, bag, total):
        """Weighted mean of `table` rows per bag (B, dim); 0 for a bag of total weight 0."""
        summed, total = bag_sum(table, bag), total.unsqueeze(1)
        return torch.where(total > 0, summed / total.clamp(min=1e-12), torch.zeros_like(summed))

    class Towers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item_id = nn.Embedding(n_items, settings.dim)
            self.token = nn.Embedding(max(n_tokens, 1), settings.dim)
            for table in (self.item_id, self.token):
                nn.init.normal_(table.weight, std=0.1)
            self.item_mlp, self.user_mlp = self._mlp(), self._mlp()

        @staticmethod
        def _mlp():
            if not settings.hidden:
                return None
            return nn.Sequential(
                nn.Linear(settings.dim, settings.hidden), nn.ReLU(), nn.Linear(settings.hidden, settings.dim)
            )

        def forward(
            self, needed, token_bag, id_history, id_total, metadata_history, metadata_total, positive, keep
        ):
            """Unit user and item vectors (B, dim) of a batch of (user, played item) pairs (`batch_inputs`):
            `needed` the items the batch touches, `token_bag` their metadata, the users' histories as bags
            of positions in `needed` (ids and metadata weighted apart), `positive` the pairs' items as
            positions in `needed`, `keep` the item-id dropout mask."""
            ids = self.item_id(needed)
            metadata = bag_sum(self.token.weight, token_bag)
            user = self.user_vectors(ids, id_history, id_total, metadata, metadata_history, metadata_total)
            return user, self.item_vectors(ids[positive] * keep.unsqueeze(1) + metadata[positive])

        def item_inputs(self, token_bag, keep):
            """Every item's id embedding where `keep` (n_items, 1), its metadata mean, and their sum x_i."""
            ids, metadata = self.item_id.weight, bag_sum(self.token.weight, token_bag)
            return ids, metadata, ids * keep + metadata

        def item_vectors(self, x):
            return F.normalize(x + self.item_mlp(x) if self.item_mlp is not None else x, dim=1)

        def user_vectors(self, ids, id_history, id_total, metadata, metadata_history, metadata_total):
            """z_u (B, dim): h_u = weighted mean of the history's id embeddings (rows of `ids`) + weighted
            mean of their metadata means (rows of `metadata`)."""
            h = mean_of(ids, id_history, id_total) + mean_of(metadata, metadata_history, metadata_total)
            return F.normalize(h + self.user_mlp(h) if self.user_mlp is not None else h, dim=1)

    return Towers()


def _tensor(array, device: str, dtype=np.float32):
    import torch

    return torch.from_numpy(np.require(array, dtype, ["C", "W"])).to(device)  # mmap arrays: a copy


def _bag(ids, offsets, weights, device: str) -> tuple:
    return _tensor(ids, device, np.int64), _tensor(offsets, device, np.int64), _tensor(weights, device)


def batch_inputs(arrays, users, items, settings: Settings, rng, device: str) -> tuple:
    """The network's inputs for (user, played item) pairs, and the items. Each history leaves out the pair's
    item (else the user tower finds it there); its id part also drops `history_dropout` of the others at
    random (a denoising task: predict an item from part of the rest), its metadata part keeps them; the
    item's id is dropped with probability `id_dropout`. Only the items the batch touches are embedded."""
    ids, offsets, weights = rows_of(arrays, "train", users)
    bag = np.repeat(np.arange(len(users)), np.diff(np.append(offsets, len(ids))))
    others = np.where(ids != items[bag], weights, 0).astype(np.float32)
    id_weights = np.where(rng.random(len(ids)) >= settings.history_dropout, others, 0).astype(np.float32)
    needed, position = np.unique(np.concatenate([ids, items]), return_inverse=True)
    history = position[: len(ids)]
    keep = (rng.random(len(users)) >= settings.id_dropout).astype(np.float32)
    inputs = (
        _tensor(needed, device, np.int64),
        _bag(*rows_of(arrays, "tokens", needed), device),
        _bag(history, offsets, id_weights, device),
        _tensor(np.bincount(bag, weights=id_weights, minlength=len(users)), device),
        _bag(history, offsets, others, device),
        _tensor(np.bincount(bag, weights=others, minlength=len(users)), device),
        _tensor(position[len(ids) :], device, np.int64),
        _tensor(keep, device),
    )
    return inputs, _tensor(items, device, np.int64)


def encode_all(network, arrays, shape: tuple[int, int], device: str) -> tuple[np.ndarray, np.ndarray]:
    """Unit user vectors from whole training histories and unit item vectors (ids of warm items only,
    metadata alone for cold ones), float32 (n_users, dim) and (n_items, dim); call under torch.no_grad."""
    n_users, n_items = shape
    items = np.arange(n_items)
    warm = _tensor(arrays["warm"], device).unsqueeze(1)
    ids, metadata, scored = network.item_inputs(_bag(*rows_of(arrays, "tokens", items), device), warm)
    item_vectors = network.item_vectors(scored).float().cpu().numpy()
    data = np.asarray(arrays["train_data"], dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(data)])
    indptr = np.asarray(arrays["train_indptr"])
    user_vectors = np.empty((n_users, item_vectors.shape[1]), dtype=np.float32)
    for lo in range(0, n_users, ENCODE_USERS):
        users = np.arange(lo, min(lo + ENCODE_USERS, n_users))
        total = cumulative[indptr[users + 1]] - cumulative[indptr[users]]
        history, total = _bag(*rows_of(arrays, "train", users), device), _tensor(total, device)
        z = network.user_vectors(ids, history, total, metadata, history, total)
        user_vectors[users] = z.float().cpu().numpy()
    return user_vectors, item_vectors


def _csr(arrays, name: str, shape) -> sp.csr_matrix:
    return sp.csr_matrix(
        (arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"]), shape=shape
    )


def load_arrays(source) -> dict:
    """`tower_arrays` as given (one rank) or memory-mapped from the .npy files in a folder (spawned ranks)."""
    if isinstance(source, dict):
        return source
    return {p.stem: np.load(p, mmap_mode="r") for p in Path(source).glob("*.npy")}


def train_rank(ctx, payload: dict) -> dict:
    """One rank's training through `airush.compute.distributed.train_epochs` (module level: spawned ranks import it)."""
    import torch
    from torch.nn import functional as F

    from airush.compute.distributed import train_epochs
    from airush.music.metrics import full_ranking_metrics

    settings: Settings = payload["settings"]
    arrays = load_arrays(payload["arrays"])
    shape = tuple(payload["shape"])
    pair_user = np.repeat(np.arange(shape[0]), np.diff(np.asarray(arrays["train_indptr"])))
    pair_item = np.asarray(arrays["train_indices"])
    log_q = _tensor(arrays["log_q"], ctx.device)
    seen, valid = _csr(arrays, "train", shape), _csr(arrays, "valid", shape)

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
            yield batch_inputs(arrays, pair_user[rows], pair_item[rows], settings, rng, ctx.device)

    def batch_loss(model, batch):
        """In-batch softmax: each pair's item against the batch's other items (repeats of it left out),
        logits minus log q_j so frequent items are not punished for being sampled often."""
        inputs, items = batch
        user, item = model(*inputs)
        logits = (user @ item.T).float() / settings.temperature - log_q[items].unsqueeze(0)
        others = ~torch.eye(len(items), dtype=torch.bool, device=items.device)
        logits = logits.masked_fill((items.unsqueeze(0) == items.unsqueeze(1)) & others, float("-inf"))
        return F.cross_entropy(logits, torch.arange(len(items), device=items.device)), len(items)

    def validate(module) -> dict[str, float]:
        """Full-ranking valid NDCG@10 and Recall@10 with train masked (the task's own metric code)."""
        if valid.nnz == 0:  # nothing to select on: train_epochs keeps the last epoch
            return {}
        users, items = encode_all(module, arrays, shape, ctx.device)
        metrics = full_ranking_metrics(lambda rows: users[rows] @ items.T, seen, valid, [VALID_K])
        return {name: metrics[name] for name in (f"ndcg_at_{VALID_K}", f"recall_at_{VALID_K}")}

    return train_epochs(
        ctx,
        network,
        optimizer,
        batches,
        batch_loss,
        validate,
        max_epochs=settings.max_epochs,
        patience=settings.patience,
        monitor=f"ndcg_at_{VALID_K}",
        mode="max",
    )
