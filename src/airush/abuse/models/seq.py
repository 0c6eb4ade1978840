"""A 1D-CNN over raw event sequences (model=seq): per-event deltas in, P(bot) per session out.

Input: `airush.abuse.sequences` (log time gaps and their changes, signed-log mouse steps, speed, turning
angle, key/button hold, one-hot event kind and button; no key codes). Strided convolutions with masked mean +
max pooling over time read any length; padding is zeroed after every layer, so a session's score does not
depend on the batch it lands in. A CNN rather than a GRU: bots show in local regularity (timer-exact gaps,
constant steps, straight lines) that a few convolutions see, and on CPU a CNN runs all positions at once
where a GRU steps through every event.

Training takes a random crop of `max_events` events per session each epoch, batches sessions of similar
length, weights positives by #negatives/#positives, follows a one-cycle learning rate, early-stops on valid
loss and keeps the best epoch. Scoring is deterministic: evenly spaced `max_events` windows covering the
whole session, whose logits are averaged. Trains on CPU, one GPU or N DDP ranks (`airush.compute.distributed`);
saved as a state dict (`model.pt`, loaded with weights_only=True) plus `meta.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from airush.abuse.models import Detector
from airush.abuse.sequences import (
    CONTINUOUS,
    N_BUTTON_CODES,
    N_EVENT_CODES,
    SessionSequences,
    crop_starts,
    eval_windows,
    length_batches,
    padded_batch,
)
from airush.compute.devices import DevicePlan
from airush.compute.distributed import RankContext, torch_threads, train_epochs, train_in_ranks

INPUT_CHANNELS = len(CONTINUOUS) + N_EVENT_CODES + N_BUTTON_CODES
# what `feature_importance` reports: each continuous channel, and each one-hot group as one input
INPUT_GROUPS = {
    **{name: [i] for i, name in enumerate(CONTINUOUS)},
    "event_kind": list(range(len(CONTINUOUS), len(CONTINUOUS) + N_EVENT_CODES)),
    "button": list(range(len(CONTINUOUS) + N_EVENT_CODES, INPUT_CHANNELS)),
}
IMPORTANCE = "share of |gradient x input|"


class SequenceDetector(Detector):
    inputs = "sequences"  # the abuse task hands this model SessionSequences instead of feature tables
    supports_gpu = True
    supports_distributed = True
    ranges: ClassVar[dict[str, str]] = {
        "max_events": ">= 1",
        "width": ">= 1",
        "layers": ">= 1",
        "kernel_size": "odd >= 1 (centred windows)",
        "hidden": ">= 1",
        "dropout": "[0, 1)",
        "learning_rate": "> 0",
        "weight_decay": ">= 0",
        "batch_size": ">= 1",
        "eval_batch_size": ">= 1",
        "max_epochs": ">= 1",
        "patience": ">= 1",
        "grad_clip": ">= 0 (0 = no clipping)",
        "num_threads": ">= 1",
    }

    def __init__(
        self,
        max_events: int = 512,
        width: int = 32,
        layers: int = 4,
        kernel_size: int = 5,
        hidden: int = 64,
        dropout: float = 0.1,
        learning_rate: float = 0.003,
        weight_decay: float = 0.01,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        max_epochs: int = 12,
        patience: int = 3,
        balance_classes: bool = True,
        grad_clip: float = 1.0,
        num_threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.max_events = max_events
        self.width = width
        self.layers = layers
        self.kernel_size = kernel_size
        self.hidden = hidden
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.balance_classes = balance_classes
        self.grad_clip = grad_clip
        self.num_threads = num_threads
        self.seed = seed

    def training_steps(self) -> int:
        return int(self.max_epochs)

    def fit(
        self,
        X_train: SessionSequences,
        y_train,
        X_valid: SessionSequences,
        y_valid,
        bar=None,
        devices: DevicePlan | None = None,
    ) -> SequenceDetector:
        """Train on `devices` (default: in this process, on CPU); `bar` advances once per epoch."""

        self.check_params()
        plan = devices or DevicePlan()
        y_train = np.asarray(y_train, dtype=np.float32)
        positives = max(float(y_train.sum()), 1.0)
        self.input_mean_, self.input_std_ = X_train.channel_scaling()
        payload = {
            "settings": SequenceDetector(**self.get_params()),  # an unfitted copy: picklable, small
            "input_scaling": (self.input_mean_, self.input_std_),
            "pos_weight": (len(y_train) - positives) / positives if self.balance_classes else 1.0,
            "y": {"train": y_train, "valid": np.asarray(y_valid, dtype=np.float32)},
        }

        def with_sequences(workdir: Path) -> dict:
            if not plan.distributed:
                return payload | {"sequences": {"train": X_train, "valid": X_valid}}
            X_train.save(workdir, "train")
            X_valid.save(workdir, "valid")
            return payload | {"sequences": str(workdir)}

        trained = train_in_ranks(
            train_rank, with_sequences, plan, self.seed, self.num_threads, bar, "airush-seq-"
        )
        self.history_, self.best_epoch_, self.epochs_ = trained.history, trained.best_epoch, trained.epochs
        self.rank_checksums_, self.rank_steps_ = trained.rank_checksums, trained.rank_steps
        self.network_ = event_cnn(self, self.input_mean_, self.input_std_)
        self.network_.load_state_dict(trained.state)
        self.network_.eval()
        with torch_threads(self.num_threads):
            self.importance_ = input_attribution(self.network_, X_valid, self)
        return self

    def predict_proba(self, X: SessionSequences) -> np.ndarray:
        """P(bot) per session: sigmoid of the mean logit over windows covering the session."""
        from scipy.special import expit

        with torch_threads(self.num_threads):
            return expit(session_logits(self.network_, X, self, "cpu"))

    def feature_importance(self) -> pd.Series:
        """Share of the valid set's |gradient x input| per input channel (see `input_attribution`)."""
        return self.importance_

    def save(self, directory: Path) -> None:
        import torch

        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.network_.state_dict(), directory / "model.pt")
        meta = {
            "params": self.get_params(),
            "channels": list(CONTINUOUS),
            "input_mean": self.input_mean_.tolist(),
            "input_std": self.input_std_.tolist(),
            "best_epoch": self.best_epoch_,
            "epochs": self.epochs_,
            "importance": self.importance_.to_dict(),
        }
        (directory / "meta.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, directory: Path) -> SequenceDetector:
        import torch

        meta = json.loads((directory / "meta.json").read_text())
        if meta["channels"] != list(CONTINUOUS):
            from airush.errors import ConfigError

            raise ConfigError(
                f"{directory}: model inputs {meta['channels']}, this airush has {list(CONTINUOUS)}"
            )
        model = cls(**meta["params"])
        model.input_mean_ = np.asarray(meta["input_mean"], dtype=np.float32)
        model.input_std_ = np.asarray(meta["input_std"], dtype=np.float32)
        model.best_epoch_, model.epochs_ = meta["best_epoch"], meta["epochs"]
        model.importance_ = pd.Series(meta["importance"], name=IMPORTANCE)
        model.network_ = event_cnn(model, model.input_mean_, model.input_std_)
        model.network_.load_state_dict(
            torch.load(directory / "model.pt", weights_only=True, map_location="cpu")
        )
        model.network_.eval()
        return model


def event_cnn(settings: SequenceDetector, input_mean: np.ndarray, input_std: np.ndarray):
    """The network: standardised deltas + one-hot event kind and button (`encode`) -> conv, stride 2, x layers
    -> masked mean and max over time -> MLP -> one logit (`body`). torch is imported here, not at import."""
    import torch
    from torch import nn

    class EventCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("input_mean", torch.as_tensor(input_mean, dtype=torch.float32))
            self.register_buffer("input_std", torch.as_tensor(input_std, dtype=torch.float32))
            width, kernel = settings.width, settings.kernel_size
            self.convs = nn.ModuleList(
                nn.Conv1d(INPUT_CHANNELS if i == 0 else width, width, kernel, stride=2, padding=kernel // 2)
                for i in range(settings.layers)
            )
            self.head = nn.Sequential(
                nn.Linear(2 * width, settings.hidden),
                nn.ReLU(),
                nn.Dropout(settings.dropout),
                nn.Linear(settings.hidden, 1),
            )

        def forward(self, values, event, button, mask):
            """values (B, L, channels) float, event/button (B, L) long, mask (B, L) bool -> logits (B,)."""
            return self.body(self.encode(values, event, button, mask), mask)

        def encode(self, values, event, button, mask):
            """-> (B, INPUT_CHANNELS, L), 0 on padding. One-hot codes rather than embeddings: the first conv
            learns the same map, and inputs that need no gradient spare its backward the input gradient."""
            x = (values - self.input_mean) / self.input_std
            kinds = nn.functional.one_hot(event, N_EVENT_CODES).to(x.dtype)
            x = torch.cat([x, kinds, nn.functional.one_hot(button, N_BUTTON_CODES).to(x.dtype)], dim=-1)
            return x.transpose(1, 2) * mask.unsqueeze(1).to(x.dtype)

        def body(self, x, mask):
            keep = mask.unsqueeze(1).to(x.dtype)  # (B, 1, L)
            for conv in self.convs:
                keep = keep[:, :, ::2]  # stride 2 with padding k // 2: output i is centred on input 2i
                x = torch.relu(conv(x)) * keep
            mean = x.sum(-1) / keep.sum(-1).clamp(min=1.0)
            peak = x.masked_fill(keep == 0, float("-inf")).amax(-1)
            peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))  # sessions without events
            return self.head(torch.cat([mean, peak], dim=1)).squeeze(1)

    return EventCNN()


def _tensors(sequences: SessionSequences, sessions, starts, lengths, device: str):
    import torch

    return tuple(torch.from_numpy(a).to(device) for a in padded_batch(sequences, sessions, starts, lengths))


def session_logits(network, sequences: SessionSequences, settings, device: str, autocast=None) -> np.ndarray:
    """Mean logit per session over its scoring windows, in session order (float64)."""
    import contextlib

    import torch

    session, start, length = eval_windows(sequences.lengths, settings.max_events)
    order = np.argsort(length, kind="stable")  # similar lengths together: little padding
    window_logits = np.zeros(len(session), dtype=np.float64)
    with torch.no_grad():
        for lo in range(0, len(order), settings.eval_batch_size):
            rows = order[lo : lo + settings.eval_batch_size]
            with autocast() if autocast else contextlib.nullcontext():
                logits = network(*_tensors(sequences, session[rows], start[rows], length[rows], device))
            window_logits[rows] = logits.float().cpu().numpy()
    counts = np.bincount(session, minlength=len(sequences))
    return np.bincount(session, weights=window_logits, minlength=len(sequences)) / np.maximum(counts, 1)


def input_attribution(network, sequences: SessionSequences, settings) -> pd.Series:
    """How much the score leans on each input: |gradient x input| of the logit, summed over a window's
    events, averaged over the scoring windows of `sequences`, as shares summing to 1 (largest first).
    Inputs are standardised, so 0 is the training mean: a channel scores high when its departures from
    the usual value move the score."""
    import torch

    session, start, length = eval_windows(sequences.lengths, settings.max_events)
    total = torch.zeros(INPUT_CHANNELS, dtype=torch.float64)
    for lo in range(0, len(session), settings.eval_batch_size):
        rows = np.arange(lo, min(lo + settings.eval_batch_size, len(session)))
        values, event, button, mask = _tensors(sequences, session[rows], start[rows], length[rows], "cpu")
        x = network.encode(values, event, button, mask).detach().requires_grad_(True)
        network.body(x, mask).sum().backward()
        total += (x.grad * x.detach()).abs().sum(dim=(0, 2)).double()
    shares = pd.Series({name: float(total[idx].sum()) for name, idx in INPUT_GROUPS.items()}, name=IMPORTANCE)
    return (shares / (shares.sum() or 1.0)).sort_values(ascending=False)


def train_rank(ctx: RankContext, payload: dict) -> dict:
    """One rank's training: module level so spawned ranks can import it."""
    import torch
    from sklearn.metrics import roc_auc_score

    settings: SequenceDetector = payload["settings"]
    source = payload["sequences"]
    train, valid = (
        (source["train"], source["valid"])
        if isinstance(source, dict)
        else (SessionSequences.load(Path(source), "train"), SessionSequences.load(Path(source), "valid"))
    )
    y_train, y_valid = payload["y"]["train"], payload["y"]["valid"]
    torch.manual_seed(settings.seed)  # same initial weights on every rank (DDP broadcasts rank 0's anyway)
    network = event_cnn(settings, *payload["input_scaling"]).to(ctx.device)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    steps_per_epoch = -(-len(ctx.shard(len(train), 1)) // settings.batch_size)
    # warm up over the first 20% of steps (early steps under a large pos_weight are the noisiest), then
    # anneal, so late epochs refine rather than jump around
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        settings.learning_rate,
        total_steps=max(steps_per_epoch * settings.max_epochs, 1),
        pct_start=0.2,
    )
    pos_weight = torch.tensor(payload["pos_weight"], dtype=torch.float32, device=ctx.device)
    lengths = np.asarray(train.lengths)
    window = np.minimum(lengths, settings.max_events)

    def batches(epoch: int):
        # crops drawn for every session from (seed, epoch): the same crops whatever the number of ranks
        starts = crop_starts(lengths, settings.max_events, np.random.default_rng([settings.seed, epoch]))
        order = np.asarray(ctx.shard(len(train), epoch), dtype=np.int64)
        rng = np.random.default_rng([settings.seed, epoch, ctx.rank])
        for rows in length_batches(order, window, settings.batch_size, rng):
            inputs = _tensors(train, rows, starts[rows], window[rows], ctx.device)
            yield inputs, torch.from_numpy(y_train[rows]).to(ctx.device)

    def batch_loss(model, batch):
        inputs, target = batch
        logits = model(*inputs).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
        return loss, len(target)

    def validate(module) -> dict[str, float]:
        logits = session_logits(module, valid, settings, ctx.device, ctx.autocast)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            torch.from_numpy(logits),
            torch.from_numpy(y_valid.astype(np.float64)),
            pos_weight=pos_weight.double().cpu(),
        )
        metrics = {"loss": float(loss)}
        if 0 < y_valid.sum() < len(y_valid):
            metrics["auc"] = float(roc_auc_score(y_valid, logits))
        return metrics

    return train_epochs(
        ctx,
        network,
        optimizer,
        batches,
        batch_loss,
        validate,
        max_epochs=settings.max_epochs,
        patience=settings.patience,
        grad_clip=settings.grad_clip,
        scheduler=scheduler,
    )
