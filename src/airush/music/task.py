"""Music task: plays -> per-user holdout -> recommender -> full-ranking metrics with known items masked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypedDict

import numpy as np
import pandas as pd
import scipy.sparse as sp
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from airush import console
from airush.compute.devices import fit_devices
from airush.console import Stages
from airush.data.fingerprint import frames_fingerprint
from airush.errors import ConfigError, DataError
from airush.model import one_of
from airush.music.data import Plays, filter_plays
from airush.music.export import check_top_n, top_n_for_all_users, write_top_n
from airush.music.metadata import ItemMetadata, item_metadata
from airush.music.metrics import METRICS, MIN_EVAL_USERS, full_ranking_metrics
from airush.music.plots import save_evaluation_plots
from airush.music.split import SPLIT_METHODS, split_interactions
from airush.task import Task, training_steps


@dataclass
class PreparedPlays:
    plays: Plays
    fingerprint: str
    stats: dict[str, Any]
    metadata: ItemMetadata  # items x tokens, for models with uses_metadata


@dataclass
class PlaySplits:
    train: sp.csr_matrix  # training weights (features config applied)
    valid: sp.csr_matrix  # binary
    test: sp.csr_matrix  # binary
    seen_train: sp.csr_matrix  # binary; masked when scoring valid
    item_popularity: np.ndarray  # share of users who played each item in train
    item_features: sp.csr_matrix  # items x metadata tokens (airush.music.metadata)
    user_ids: np.ndarray  # the data set's own ids, for exported recommendations
    item_ids: np.ndarray


def prepare(cfg: DictConfig, stages: Stages) -> PreparedPlays:
    plays: Plays = instantiate(cfg.data).load(seed=int(cfg.seed), stages=stages)
    inter = plays.interactions
    # one row per (user, item): repeated rows add up their plays, keep the first timestamp
    plays.interactions = inter.groupby(["user", "item"], as_index=False, sort=True).agg(
        plays=("plays", "sum"), timestamp=("timestamp", "min")
    )
    plays = filter_plays(plays, **_filter_settings(cfg.task.get("filter")))
    if plays.interactions.empty:
        raise ConfigError(f"task.filter {dict(cfg.task.filter)} leaves no interactions: lower its minimums")
    stats = {
        "users": plays.n_users,
        "items": plays.n_items,
        "interactions": len(plays.interactions),
        "density": round(len(plays.interactions) / max(plays.n_users * plays.n_items, 1), 6),
    }
    metadata = item_metadata(plays)
    stats["metadata_tokens"] = metadata.n_tokens
    return PreparedPlays(plays, frames_fingerprint(plays.interactions, plays.items), stats, metadata)


def _filter_settings(filter_cfg) -> dict[str, int]:
    """`task.filter` with its defaults, checked against `MusicTask`'s settings (the config check's rules)."""
    from airush.config.schema import check_settings

    given = (
        OmegaConf.to_container(filter_cfg, resolve=True)
        if OmegaConf.is_config(filter_cfg)
        else dict(filter_cfg or {})
    )
    check_settings("task", MusicTask, {"filter": given})
    return {"min_user_items": 0, "min_item_users": 0} | given


def _csr(frame: pd.DataFrame, shape: tuple[int, int], values: np.ndarray | None = None) -> sp.csr_matrix:
    data = np.ones(len(frame), np.float32) if values is None else values.astype(np.float32)
    matrix = sp.csr_matrix((data, (frame["user"].to_numpy(), frame["item"].to_numpy())), shape=shape)
    matrix.sort_indices()
    return matrix


def split(prepared: PreparedPlays, cfg: DictConfig) -> PlaySplits:
    """Train/valid/test interactions as matrices; one line, before anything is fitted, when valid or test
    would be scored over fewer than `task.min_eval_users` users or the catalogue is too small to rank."""
    plays = prepared.plays
    shape = (plays.n_users, plays.n_items)
    check_split_names(dict(cfg.task.split.ratios))
    parts = split_interactions(plays.interactions, dict(cfg.task.split), int(cfg.seed))
    check_evaluable(parts, plays, cfg)
    counts = _csr(parts["train"], shape, parts["train"]["plays"].to_numpy())
    seen = _csr(parts["train"], shape)
    return PlaySplits(
        train=instantiate(cfg.features).transform(counts),
        valid=_csr(parts["valid"], shape),
        test=_csr(parts["test"], shape),
        seen_train=seen,
        item_popularity=np.asarray(seen.sum(axis=0)).ravel() / max(plays.n_users, 1),
        item_features=prepared.metadata.matrix,
        user_ids=plays.user_ids,
        item_ids=plays.item_ids,
    )


def check_split_names(ratios: dict[str, float]) -> None:
    """train, valid and test, the splits `fit` and `evaluate` read (other names would be left unused)."""
    missing = [name for name in ("train", "valid", "test") if name not in ratios]
    if missing:
        raise ConfigError(
            f"task.split.ratios needs train, valid and test; {', '.join(missing)} missing in {ratios}"
        )


def check_evaluable(parts: dict[str, pd.DataFrame], plays: Plays, cfg: DictConfig) -> None:
    """The catalogue has more items than the primary metric's K lists (else every top-K list holds
    everything), and valid and test each hold at least `task.min_eval_users` users (a mean over fewer is
    noise, and over none a 0 that would be ranked); else a DataError saying what is short and what to do."""
    primary = str(cfg.task.primary_metric)
    k = primary_k(primary, list(cfg.task.ks))
    if plays.n_items <= k:
        raise DataError(
            f"the catalogue has {plays.n_items} item{'' if plays.n_items == 1 else 's'}, no more than the "
            f"top {k} that {primary} ranks: every list would hold every item; use data with more items, or "
            f"a task.primary_metric with a smaller K"
        )
    minimum = int(cfg.task.get("min_eval_users", MIN_EVAL_USERS))
    for name in ("valid", "test"):
        users = int(parts[name]["user"].nunique())
        if users < minimum:
            raise DataError(
                f"the {name} split has {users} user{'' if users == 1 else 's'} to evaluate, fewer than "
                f"task.min_eval_users={minimum}: {why_few_users(plays, cfg)}; {more_users(cfg)}, "
                f"or lower task.min_eval_users"
            )


def why_few_users(plays: Plays, cfg: DictConfig) -> str:
    """Why a split holds few users: per-user splits evaluate only users with enough items."""
    split_cfg = cfg.task.split
    if split_cfg.get("method", "random") == "temporal":
        return (
            f"task.split.method=temporal scores only who played within the split's share of time "
            f"({plays.n_users} users in all)"
        )
    needed = max(int(split_cfg.get("min_user_interactions", 1)), len(split_cfg.ratios))
    per_user = np.bincount(plays.interactions["user"].to_numpy(), minlength=plays.n_users)
    eligible = int((per_user >= needed).sum())
    return (
        f"{eligible} of {plays.n_users} users played {needed} or more distinct items "
        f"(task.split.min_user_interactions; fewer only train)"
    )


def more_users(cfg: DictConfig) -> str:
    """How to get more users to evaluate: the synthetic data has a setting for it, other data needs rows."""
    more = "raise data.n_users" if "n_users" in cfg.data else "use data with more users"
    if cfg.task.split.get("method", "random") == "temporal":
        return f"{more} or give the split a larger share of time (task.split.ratios)"
    return f"{more}, lower task.split.min_user_interactions"


def fit(model, splits: PlaySplits, cfg: DictConfig, stages: Stages, devices=None) -> None:
    """Opt-in extras: item metadata (`uses_metadata`), the valid split for early stopping (`uses_valid`)
    and the device plan of `gpus` / `trainer.*` (torch models: `supports_gpu`)."""
    bar = stages.stage("train", total=training_steps(model))
    extra = {}
    if getattr(model, "uses_metadata", False):
        extra["item_features"] = splits.item_features
    if getattr(model, "uses_valid", False):
        extra["valid"] = splits.valid
    model.fit(splits.train, bar=bar, **extra, **fit_devices(devices, model))
    bar.done()


def evaluate(model, splits: PlaySplits, cfg: DictConfig, stages: Stages, out_dir: Path) -> dict[str, float]:
    """Test metrics with train+valid masked, the same on cold-start items alone, and valid NDCG/Recall (train
    masked) for model selection."""
    ks = list(cfg.task.ks)
    batch = int(cfg.task.eval_batch_users)
    n_test_users = int((np.diff(splits.test.indptr) > 0).sum())
    bar = stages.stage("evaluate", total=n_test_users)
    masked = (splits.seen_train + splits.valid).tocsr()
    per_user = {f"ndcg_at_{primary_k(str(cfg.task.primary_metric), ks)}": np.empty(0)}  # for its histogram
    test = full_ranking_metrics(
        model.score, masked, splits.test, ks, splits.item_popularity, batch, bar, per_user=per_user
    )
    cold = cold_start_metrics(model.score, masked, splits.test, splits.seen_train, ks, batch)
    test |= cold
    few = few_cold_users_note(cold, int(cfg.task.get("min_eval_users", MIN_EVAL_USERS)))
    if few:
        console.warn(few)
    valid_ks = validated_ks(ks, str(cfg.task.primary_metric))
    valid = full_ranking_metrics(model.score, splits.seen_train, splits.valid, valid_ks, None, batch)
    top_n = (cfg.task.get("recommend") or {}).get("top_n")
    if top_n:
        # what a user would be served: everything they played (train, valid and test) is excluded
        seen_all = (splits.seen_train + splits.valid + splits.test).tocsr()
        top = top_n_for_all_users(model.score, seen_all, int(top_n), batch)
        check_top_n(top, seen_all, int(top_n))
        write_top_n(top, splits.user_ids, splits.item_ids, out_dir)
    save_evaluation_plots(test, getattr(model, "history_", {}), out_dir, per_user)
    return test | {
        f"valid_{name}": valid[name]
        for name in (*(f"{m}_at_{k}" for k in valid_ks for m in ("ndcg", "recall")), cfg.task.primary_metric)
        if name in valid
    }


def validated_ks(ks: list[int], primary_metric: str) -> list[int]:
    """The Ks valid is scored at: the first of `ks`, and the primary metric's own K (a sweep chooses on the
    primary metric on valid, `ndcg_at_20` included)."""
    return sorted({ks[0], primary_k(primary_metric, ks)})


def primary_k(primary_metric: str, ks: list[int]) -> int:
    """The K in `<metric>_at_<K>`; the first of `ks` for a metric without one."""
    import re

    match = re.fullmatch(r"\w+?_at_(\d+)", primary_metric)
    return int(match.group(1)) if match else int(ks[0])


def cold_start_metrics(
    score, masked: sp.csr_matrix, test: sp.csr_matrix, seen_train: sp.csr_matrix, ks: list[int], batch: int
) -> dict[str, float]:
    """Recall and NDCG at every K on the test interactions whose item nobody played in training.

    The ranking is the usual one (all items, `masked` excluded); only the truth is cut down to cold items, so
    a user counts if they have at least one cold test item. `cold_test_items` / `cold_test_interactions`
    count what was evaluated; with none the cold metrics are left out rather than reported as 0.
    """
    cold = np.bincount(seen_train.indices, minlength=test.shape[1]) == 0
    cold_test = test.copy()
    cold_test.data = cold_test.data * cold[cold_test.indices]
    cold_test.eliminate_zeros()
    counts = {
        "cold_test_items": float(np.unique(cold_test.indices).size),
        "cold_test_interactions": float(cold_test.nnz),
    }
    if cold_test.nnz == 0:
        return counts
    metrics = full_ranking_metrics(score, masked, cold_test, ks, None, batch)
    cold_metrics = {f"cold_{m}_at_{k}": metrics[f"{m}_at_{k}"] for m in ("recall", "ndcg") for k in ks}
    return counts | cold_metrics | {"cold_test_users": metrics["users_evaluated"]}


def few_cold_users_note(cold: dict[str, float], minimum: int) -> str | None:
    """The warning for cold-start metrics averaged over fewer than `minimum` test users (None otherwise).
    They stay recorded, next to their `cold_test_users`, so a run's metrics do not change with the setting;
    `airush leaderboard` never ranks them."""
    users = int(cold.get("cold_test_users", minimum))  # absent: no cold test items, no cold metrics
    if users >= minimum:
        return None
    return (
        f"cold-start metrics are means over {users} test user{'' if users == 1 else 's'}, fewer than "
        f"task.min_eval_users={minimum}: recorded, never ranked"
    )


class SplitSettings(TypedDict, total=False):
    method: str  # random | leave_last_out | temporal (airush.music.split)
    ratios: dict[str, float]  # split name -> share (normalised), e.g. {train: 0.8, valid: 0.1, test: 0.1}
    min_user_interactions: int  # fewer: the user only trains


class FilterSettings(TypedDict, total=False):
    min_user_items: int  # k-core before the split; 0 = keep everything
    min_item_users: int


class RecommendSettings(TypedDict, total=False):
    top_n: int | None  # recommendations written per user; null or 0 = none


class MusicTask(Task):
    """Play logs + track metadata -> top-K unplayed tracks per user, scored by full ranking."""

    serving_module = "airush.music.serving"
    model_interface = "airush.music.models.Recommender"
    ranges: ClassVar[dict[str, str]] = {
        "ks": "non-empty >= 1",
        "eval_batch_users": ">= 1",
        "min_eval_users": ">= 1",
        "split": "non-empty",
        "split.method": one_of(SPLIT_METHODS),
        "split.ratios": ">= 0",
        "split.min_user_interactions": ">= 0",
        "filter.min_user_items": ">= 0",
        "filter.min_item_users": ">= 0",
        "recommend.top_n": ">= 0 (null or 0 = none)",
    }

    def __init__(
        self,
        name: str = "music",
        primary_metric: str = "ndcg_at_10",
        split: SplitSettings | None = None,
        filter: FilterSettings | None = None,
        ks: list[int] | tuple[int, ...] = (10, 20, 50),
        eval_batch_users: int = 2048,
        recommend: RecommendSettings | None = None,
        min_eval_users: int = MIN_EVAL_USERS,
        test_data: Any = None,
    ) -> None:
        if test_data is not None:
            # taken only to say why: abuse's `task.test_data` has no music counterpart
            raise ConfigError(
                "task.test_data is abuse's: music tests on held-out plays of the users it trained on (user "
                "and item ids are the data set's own, a second data set's users have no history to rank "
                "from); unset it"
            )
        super().__init__(name, primary_metric)
        self.split_settings = split
        self.filter = filter
        self.ks = list(ks)
        self.eval_batch_users = eval_batch_users
        self.recommend = recommend
        self.min_eval_users = min_eval_users

    def reported_metrics(self) -> list[str]:
        """The full-ranking metrics at each K of `ks` (cold-start ones when test has cold items)."""
        names = (*METRICS, "coverage", "cold_recall", "cold_ndcg")
        return [f"{name}_at_{k}" for name in names for k in self.ks]
