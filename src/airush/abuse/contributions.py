"""Why a session was scored as it was: each input's contribution to the model's log-odds of "bot".

Every explanation is additive in log-odds (the model's margin): `base + contributions.sum(1) == margin`,
and `score = sigmoid(margin)`.

- LightGBM (model=lgbm): TreeSHAP contributions of each session feature (`pred_contrib=True`); `base` is the
  expected value over the training data; exact.
- model=seq: integrated gradients of the session logit over the network's standardised input channels,
  from a baseline where every event sits at the training mean with no event-kind or button code (0 after
  standardisation); each continuous channel is one input, the one-hot event kind and button are one each
  (as `feature_importance` reports them). A session's logit is the mean over its scoring windows, so its
  attribution is the mean of the windows'. `base` is the baseline's logit; completeness holds up to the
  Riemann sum's error (`steps` midpoints).

`airush predict ... explain=true` writes `top_features_column`; what a run records for its top flagged
test sessions and what `airush explain` prints and draws are in `airush.abuse.explain`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from airush.errors import UserError

UNIT = "contribution to the log-odds of bot"
TOP_K = 5  # features named per session in `top_features`
IG_STEPS = 64  # integrated gradients: midpoints of the straight path from the baseline


@dataclass
class Explanation:
    """Contributions of `len(session_ids)` sessions, one row each in that order."""

    session_ids: np.ndarray
    contributions: pd.DataFrame  # sessions x inputs (features or channels), log-odds; index: session_id
    base: np.ndarray  # log-odds with no input information (LightGBM's expected value; seq: the baseline's)
    margin: np.ndarray  # the model's log-odds: base + contributions summed
    values: pd.DataFrame | None = None  # the inputs' values (session features), None for seq channels

    def input_values(self, row: int) -> pd.Series | None:
        return None if self.values is None else self.values.iloc[row]

    @property
    def score(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.margin))

    def top(self, row: int, k: int = TOP_K) -> pd.Series:
        """Session `row`'s `k` largest contributions by absolute value, largest first (ties keep column
        order)."""
        contributions = self.contributions.iloc[row]
        order = np.argsort(-np.abs(contributions.to_numpy()), kind="stable")[:k]
        return contributions.iloc[order]


def can_explain(model) -> bool:
    return hasattr(model, "booster_") or (
        getattr(model, "inputs", "features") == "sequences" and hasattr(model, "network_")
    )


def explain(model, X) -> Explanation:
    """Contributions for every session of `X` (what `model.predict_proba` takes): a LightGBM detector's
    feature table or model=seq's `SessionSequences`; one line for a model that cannot say."""
    if hasattr(model, "booster_"):
        return lightgbm_contributions(model, X)
    if getattr(model, "inputs", "features") == "sequences" and hasattr(model, "network_"):
        return integrated_gradients(model, X)
    raise UserError(
        f"{type(model).__name__} cannot explain its scores: explanations exist for model=lgbm "
        "(feature contributions) and model=seq (input channel attributions)"
    )


def lightgbm_contributions(model, X: pd.DataFrame) -> Explanation:
    """TreeSHAP per feature (LightGBM's `pred_contrib=True`) at the model's best iteration."""
    values = X[model.feature_names_]
    raw = model.booster_.predict(values, num_iteration=model.best_iteration_, pred_contrib=True)
    raw = np.asarray(raw, dtype=np.float64).reshape(len(values), len(model.feature_names_) + 1)
    ids = np.asarray(values.index)
    contributions = pd.DataFrame(raw[:, :-1], index=pd.Index(ids, name="session_id"), columns=values.columns)
    base = raw[:, -1]
    return Explanation(
        ids, contributions, base, base + raw[:, :-1].sum(1), values.set_axis(contributions.index)
    )


def integrated_gradients(model, sequences, steps: int = IG_STEPS) -> Explanation:
    """Integrated gradients of model=seq's session logit per input channel (see the module docstring)."""
    import torch

    from airush.abuse.models.seq import INPUT_CHANNELS, INPUT_GROUPS
    from airush.abuse.sequences import eval_windows, padded_batch
    from airush.compute.distributed import torch_threads

    network = model.network_
    session, start, length = eval_windows(sequences.lengths, model.max_events)
    n = len(sequences)
    per_channel = np.zeros((n, INPUT_CHANNELS))
    logit, base = np.zeros(n), np.zeros(n)
    alphas = (np.arange(steps) + 0.5) / steps
    with torch_threads(model.num_threads):
        for lo in range(0, len(session), model.eval_batch_size):
            rows = np.arange(lo, min(lo + model.eval_batch_size, len(session)))
            arrays = padded_batch(sequences, session[rows], start[rows], length[rows])
            values, event, button, mask = (torch.from_numpy(a) for a in arrays)
            with torch.no_grad():
                x = network.encode(values, event, button, mask)
                out = network.body(x, mask)
                zero = network.body(torch.zeros_like(x), mask)
            gradients = torch.zeros_like(x)
            for alpha in alphas:
                point = (x * float(alpha)).requires_grad_(True)
                (gradient,) = torch.autograd.grad(network.body(point, mask).sum(), point)
                gradients += gradient
            window = (x * gradients / steps).sum(-1).double().numpy()  # (windows, channels)
            np.add.at(per_channel, session[rows], window)
            np.add.at(logit, session[rows], out.double().numpy())
            np.add.at(base, session[rows], zero.double().numpy())
    counts = np.maximum(np.bincount(session, minlength=n), 1)
    per_channel, logit, base = per_channel / counts[:, None], logit / counts, base / counts
    ids = np.asarray(sequences.session_ids)
    grouped = {name: per_channel[:, idx].sum(1) for name, idx in INPUT_GROUPS.items()}
    contributions = pd.DataFrame(grouped, index=pd.Index(ids, name="session_id"))
    return Explanation(ids, contributions, base, logit)


def top_features_text(explanation: Explanation, row: int, k: int = TOP_K) -> str:
    """`name:+0.421;name:-0.102`: session `row`'s top `k` contributions (log-odds), largest |value| first."""
    return ";".join(f"{name}:{value:+.3f}" for name, value in explanation.top(row, k).items())


def rows_of(inputs, ids: np.ndarray):
    """The model inputs of sessions `ids`: rows of a features frame (indexed by session id) or of event
    sequences (`SessionSequences`, sorted by session id)."""
    if hasattr(inputs, "loc"):
        return inputs.loc[ids]
    return inputs.take(np.searchsorted(inputs.session_ids, ids))


def top_features_column(model, inputs, scored: pd.DataFrame, k: int) -> pd.Series:
    """`predict explain=true`'s column: `top_features_text` for each flagged row of `scored` (`session_id,
    score, flagged`, sessions sorted by id), "" for the others. `inputs`: the model inputs the chunk was
    scored on (a features frame by session id, or event sequences); only flagged sessions are explained."""
    column = pd.Series([""] * len(scored), index=scored.index, dtype=object)
    flagged = scored["flagged"].to_numpy(bool)
    if not flagged.any():
        return column
    ids = scored["session_id"].to_numpy()[flagged]
    explanation = explain(model, rows_of(inputs, ids))
    column[flagged] = [top_features_text(explanation, i, k) for i in range(len(ids))]
    return column
