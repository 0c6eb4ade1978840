"""`airush predict` for music: each user of the given data, the model's top-N items they never played.

Users and items are matched to the model by the data set's own ids, through the id maps the run's MLflow
Model stores (`airush.music.serving.MusicRecommendations`). Excluded per user: everything they played in the
model's training data (train, valid and test, as the served model excludes) and in the given data. Items of
the given data the model never saw cannot be scored: they are left out of the histories (and so are never
recommended). A user the model never saw is scored from their play history in the given data when the model
can (`score_history`: ease, itemknn), else refused in one line, or skipped with `--skip-unknown-users`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp

from airush.errors import DataError, UserError
from airush.music.data import Plays

COLUMNS = ("user", "rank", "item", "score")


def predictions(trained, source, options) -> Iterator[pd.DataFrame]:
    """Rows `user, rank, item, score` (rank 1 = best), users in the data's order, a chunk per block of users."""
    serving = trained.model.get_raw_model()  # MusicRecommendations: the model and the run's id maps
    model = serving.model
    k = int(options.top_n or serving.default_k)
    seed = options.seed if options.seed is not None else trained.config.get("seed", 0)  # generated data
    plays: Plays = source.load(seed=int(seed), stages=options.stages)
    users = np.asarray(plays.user_ids)
    dense = serving.user_index.get_indexer(users)
    counts = history_counts(plays, serving.item_ids)  # data's users x model's items
    unknown = np.flatnonzero(dense < 0)
    scores_history = getattr(model, "score_history", None)
    if len(unknown) and scores_history is None:
        if not getattr(options, "skip_unknown_users", False):
            raise DataError(unknown_users_message(users[unknown], trained, len(users)))
        print(f"airush: warning: skipping {len(unknown)} user(s) the model never saw", file=sys.stderr)
        keep = dense >= 0
        users, dense, counts = users[keep], dense[keep], counts[keep]
    weights = history_weights(trained, counts) if len(unknown) and scores_history is not None else None
    played = counts.copy()
    played.data[:] = 1.0
    return _ranked_chunks(model, serving, users, dense, played, weights, k, options)


def _ranked_chunks(model, serving, users, dense, played, weights, k, options) -> Iterator[pd.DataFrame]:
    from airush.music.ranking import top_k_items, users_per_block

    n_items = len(serving.item_ids)
    block = users_per_block(n_items, int(options.chunk_size))
    bar = options.stages.stage("predict", total=len(users)) if options.stages is not None else None
    for lo in range(0, len(users), block):
        rows = slice(lo, lo + block)
        scores, exclude = _block_scores(model, serving, dense[rows], played[rows], weights, lo)
        top = top_k_items(scores, k, exclude)
        keep = top >= 0  # a user with fewer than k unplayed items gets fewer rows
        picked = top[keep]
        yield pd.DataFrame(
            {
                "user": np.repeat(users[rows], keep.sum(axis=1)),
                "rank": np.nonzero(keep)[1].astype(np.int64) + 1,
                "item": serving.item_ids[picked],
                "score": scores[np.nonzero(keep)[0], picked].astype(np.float32),
            }
        )
        if bar is not None:
            bar.advance(len(dense[rows]))


def _block_scores(model, serving, dense, played, weights, lo):
    """(scores, excluded items) for one block of users: known users scored as the model scores them, the
    others from their history; excluded: played in training (known users) or in the given data."""
    n_items = len(serving.item_ids)
    known = dense >= 0
    scores = np.empty((len(dense), n_items), np.float32)
    if known.any():
        scores[known] = model.score(dense[known])
    if not known.all():
        scores[~known] = model.score_history(weights[np.flatnonzero(~known) + lo])
    trained_seen = serving.seen[np.where(known, dense, 0)]
    trained_seen = sp.diags(known.astype(np.float32)) @ trained_seen  # unknown users: no training history
    exclude = (trained_seen + played).tocsr()
    exclude.sort_indices()
    return scores, exclude


def history_counts(plays: Plays, model_items: np.ndarray) -> sp.csr_matrix:
    """The data's play counts as users (the data's order) x the model's items; unknown items dropped."""
    inter = plays.interactions
    item_index = pd.Index(model_items).get_indexer(np.asarray(plays.item_ids))
    columns = item_index[inter["item"].to_numpy()]
    known = columns >= 0
    values = inter["plays"].to_numpy(np.float32)[known]
    matrix = sp.csr_matrix(
        (values, (inter["user"].to_numpy()[known], columns[known])), shape=(plays.n_users, len(model_items))
    )
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix


def history_weights(trained, counts: sp.csr_matrix) -> sp.csr_matrix:
    """The given data's play counts weighted as the run weighted its training data (its `features` config)."""
    from hydra.utils import instantiate

    features = trained.config.get("features")
    if not isinstance(features, dict) or "_target_" not in features:
        raise UserError(f"run {trained.run_id}'s recorded config has no features._target_")
    return sp.csr_matrix(instantiate(features).transform(counts))  # trusted: checked with the config


def unknown_users_message(missing: np.ndarray, trained, total: int) -> str:
    model = (trained.config.get("model") or {}).get("_target_", "?").rsplit(".", 1)[-1]
    first = missing[0].item() if isinstance(missing[0], np.generic) else missing[0]
    return (
        f"{len(missing)} of the data's {total} users are unknown to run {trained.run_id}'s model (e.g. "
        f"{first!r}), and {model} cannot score a new user's history: add --skip-unknown-users to drop them, "
        "or use a model that can (ease, itemknn)"
    )
