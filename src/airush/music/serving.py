"""The music task's MLflow Model: user ids (the data set's own) in, each user's top-k unplayed items out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airush.errors import UserError
from airush.tracking.mlflow_model import EXAMPLE_ROWS, metadata, save_pyfunc, write_info

SERVING = "serving.npz"  # user/item ids of the data set and each user's played items (CSR)


def save_mlflow_model(cfg, model, splits, model_dir: Path, out_dir: Path) -> None:
    """User ids in, top-k unplayed items out; stores the id maps and every user's played items (train, valid
    and test: what a user would be served excludes all of them, as in the exported recommendations)."""
    recommend = cfg.task.get("recommend") or {}
    default_k = int(recommend.get("top_n") or cfg.task.ks[0])
    seen = (splits.seen_train + splits.valid + splits.test).tocsr()
    seen.sort_indices()
    np.savez(
        model_dir / SERVING,
        user_ids=_plain_ids(splits.user_ids),
        item_ids=_plain_ids(splits.item_ids),
        seen_indices=seen.indices,
        seen_indptr=seen.indptr,
        seen_shape=np.asarray(seen.shape, dtype=np.int64),
    )
    write_info(model_dir, "music", model, serving=f"{__name__}.MusicRecommendations", default_k=default_k)
    serving = MusicRecommendations(model, model_dir / SERVING, default_k)
    example = pd.DataFrame({"user": serving.user_ids[:EXAMPLE_ROWS]})
    output = serving.predict(example)
    save_pyfunc(model_dir, out_dir, example, output, {"k": default_k}, metadata("music", model))


def _plain_ids(ids: np.ndarray) -> np.ndarray:
    """Ids as a numpy dtype npz stores without pickle: text ids become fixed-width unicode."""
    ids = np.asarray(ids)
    return ids.astype(str) if ids.dtype == object else ids


class MusicRecommendations:
    """Users (the data set's own ids) in, their top-k unplayed items out as rows `user, rank, item`.

    An id the model never saw is refused rather than served popular items: a silent fallback would hide a
    mismatch between the caller's ids and the data the model was trained on.
    """

    def __init__(self, model, serving_path: Path, default_k: int) -> None:
        import scipy.sparse as sp

        self.model = model
        self.default_k = default_k
        with np.load(serving_path, allow_pickle=False) as data:
            self.user_ids, self.item_ids = data["user_ids"], data["item_ids"]
            shape = tuple(int(n) for n in data["seen_shape"])
            indices, indptr = data["seen_indices"], data["seen_indptr"]
            self.seen = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=shape)
        self.user_index = pd.Index(self.user_ids)

    @classmethod
    def from_info(cls, model, directory: Path, info: dict[str, Any]) -> MusicRecommendations:
        return cls(model, directory / SERVING, int(info["default_k"]))

    def get_raw_model(self) -> MusicRecommendations:
        """What `PyFuncModel.get_raw_model()` returns: this wrapper (the model and the run's id maps)."""
        return self

    def predict(self, data: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if "user" not in data:
            raise UserError("music recommendations need a 'user' column (the data set's own user ids)")
        k = (params or {}).get("k")
        k = self.default_k if k is None else int(k)
        if k < 1:
            raise UserError(f"k={k}: ask for at least one recommendation per user")
        users = data["user"].to_numpy()
        dense = self.user_index.get_indexer(users)
        if (dense < 0).any():
            missing = users[dense < 0]
            first = missing[0].item() if isinstance(missing[0], np.generic) else missing[0]
            raise UserError(
                f"{len(np.unique(missing))} unknown user id(s), e.g. {first!r}; "
                f"the model knows the {len(self.user_ids)} users of its training data"
            )
        top = self.model.recommend(dense, k, exclude=self.seen)
        keep = top >= 0  # a user with fewer than k unplayed items gets fewer rows
        return pd.DataFrame(
            {
                "user": np.repeat(users, keep.sum(axis=1)),
                "rank": np.nonzero(keep)[1].astype(np.int64) + 1,
                "item": self.item_ids[top[keep]],
            }
        )
