"""User-disjoint train/valid/test split: no account has sessions on two sides, so a model cannot score a
session by recognising its account. A detector needs both classes in each of its splits: the checks here say
which split lacks which, before anything is fitted.

A test set the data fixes itself (its sessions' `part` column, or a second data set, `task.test_data`) is
taken as it is; train and valid are then split user-disjointly from the other sessions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from airush.errors import ConfigError, DataError

if TYPE_CHECKING:
    from airush.abuse.calibration import Calibration
    from airush.abuse.sequences import SessionSequences


@dataclass
class SessionSplits:
    X: dict[str, pd.DataFrame | SessionSequences]
    y: dict[str, np.ndarray]
    kind: dict[str, np.ndarray]
    session_id: dict[str, np.ndarray]
    account: dict[str, np.ndarray] | None = None  # scope=account: claimed account of each feature row
    test_events: pd.DataFrame | None = None  # scope=session: the events log holding the test sessions
    # scope=session: score -> P(bot), fitted on valid's scores by `evaluate`; saved with the model
    calibration: Calibration | None = None


# What a detector does with each split: it cannot do without one.
SPLIT_USES = {
    "train": "the detector learns from it",
    "valid": "the detector early-stops and picks its threshold on it",
    "test": "the metrics are measured on it",
}
LABEL_NAMES = {1: "bot", 0: "human"}
PARTS = ("train", "test")


def user_disjoint_split(
    sessions: pd.DataFrame, fractions: dict[str, float], seed: int
) -> dict[str, np.ndarray]:
    """Row positions of `sessions` per split name, users assigned whole.

    Accounts with and without positive sessions are allocated separately, each in proportion to
    `fractions` (normalised) but with at least one account per split whenever there are as many accounts
    as splits, so valid and test always hold positives to score; positive accounts are dealt out in order of
    their bot kind, so each kind spreads over the splits.
    """
    names = list(fractions)
    weights = np.array([fractions[k] for k in names], dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError(f"task.split.ratios must be >= 0 and not all 0, got {dict(fractions)}")
    weights /= weights.sum()
    rng = np.random.default_rng(seed)
    users = np.unique(sessions["user_id"].to_numpy())
    positive = sessions[sessions["label"].to_numpy() == 1]
    kind = positive["kind"] if "kind" in positive else pd.Series("positive", index=positive.index)
    user_kind = kind.groupby(positive["user_id"]).first().reindex(users)
    side = pd.Series(-1, index=users)
    for is_positive in (False, True):
        members = user_kind.index[user_kind.notna().to_numpy() == is_positive]
        kinds = user_kind[members].fillna("").to_numpy()
        order = np.lexsort((rng.random(len(members)), kinds))
        side[members[order]] = deal(len(members), weights)
    assigned = side.reindex(sessions["user_id"]).to_numpy()
    return {name: np.flatnonzero(assigned == i) for i, name in enumerate(names)}


def quotas(n: int, weights: np.ndarray) -> np.ndarray:
    """Items per split: largest-remainder shares of n, at least one per split of positive weight if n allows."""
    exact = weights * n
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]] += 1
    wanted = weights > 0
    if n >= wanted.sum():
        while (short := np.flatnonzero(wanted & (counts == 0))).size:
            counts[np.argmax(counts)] -= 1
            counts[short[0]] += 1
    return counts


def deal(n: int, weights: np.ndarray) -> np.ndarray:
    """Split index for n items in turn: each goes to the split furthest below its quota's share so far.

    The totals are `quotas(n, weights)`; every prefix is split nearly in proportion, so users of one kind,
    dealt consecutively, spread over all splits.
    """
    target = quotas(n, weights)
    share = target / max(n, 1)
    counts = np.zeros(len(weights), dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        deficit = np.where(counts < target, share * (i + 1) - counts, -np.inf)
        out[i] = int(np.argmax(deficit))
        counts[out[i]] += 1
    return out


def part_test_rows(sessions: pd.DataFrame) -> np.ndarray | None:
    """Row positions of the sessions marked `part=test`; None when the sessions carry no `part` column. A
    `part` other than train or test (a blank one too) is refused: it is the data's own split, never guessed."""
    if "part" not in sessions:
        return None
    part = sessions["part"]
    known = part.isin(PARTS).to_numpy()
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        raise DataError(
            f"session {sessions['session_id'].iloc[i]}'s part is {part.iloc[i]!r} "
            f"({plural(int((~known).sum()), 'such session')}): the part column marks each session train "
            f"or test"
        )
    test = np.flatnonzero(part.to_numpy() == "test")
    if test.size == 0:
        raise DataError(
            f"the sessions' part column marks none of its {plural(len(sessions), 'session')} test: mark the "
            f"test sessions part=test, or drop the column to split by task.split.ratios"
        )
    return test


def split_around_test(
    sessions: pd.DataFrame, test: np.ndarray, fractions: dict[str, float], seed: int
) -> dict[str, np.ndarray]:
    """Train and valid user-disjoint from the sessions outside `test` (row positions), in proportion to their
    shares in `fractions` (test's share is not used: the test set is fixed); test as given."""
    rest = np.setdiff1d(np.arange(len(sessions)), test)
    shares = {name: fractions[name] for name in ("train", "valid")}
    parts = user_disjoint_split(sessions.iloc[rest], shares, seed=seed)
    return {name: rest[rows] for name, rows in parts.items()} | {"test": test}


def check_split_ratios(fractions: dict[str, float], names: tuple[str, ...] = tuple(SPLIT_USES)) -> None:
    """`task.split.ratios` names train, valid and test (`names`: those it must split the data into), each
    with a share above 0 (a split of share 0 is empty: see `SPLIT_USES` for why none may be)."""
    missing = [name for name in names if name not in fractions]
    if missing:
        raise ConfigError(
            f"task.split.ratios needs {', '.join(names[:-1])} and {names[-1]}; "
            f"{', '.join(missing)} missing in {dict(fractions)}"
        )
    for name, use in SPLIT_USES.items():
        if name in names and not fractions[name] > 0:
            raise ConfigError(
                f"task.split.ratios.{name} is {fractions[name]}, so the {name} split is empty, but {use}: "
                f"give it a share > 0, e.g. task.split.ratios.{name}=0.15"
            )


def missing_class(labels: np.ndarray) -> int | None:
    """The label (1 before 0) that `labels` never holds; None when both occur."""
    return next((label for label in (1, 0) if not (labels == label).any()), None)


def split_gap(labels: np.ndarray, parts: dict[str, np.ndarray]) -> tuple[str, int | None] | None:
    """The first of train, valid, test that is empty (label None) or lacks a class (the label it lacks);
    None when each holds both. `parts` as `user_disjoint_split` returns them, positions into `labels`; a split
    `parts` lacks is not checked."""
    for name in SPLIT_USES:
        if name not in parts:
            continue
        held = labels[parts[name]]
        if len(held) == 0:
            return name, None
        label = missing_class(held)
        if label is not None:
            return name, label
    return None


def check_session_classes(
    sessions: pd.DataFrame,
    parts: dict[str, np.ndarray],
    cfg: DictConfig,
    pool: np.ndarray | None = None,
    where: str = "the data",
) -> None:
    """Bot and human sessions in the data (`pool`: the rows the splits in `parts` are drawn from, `where`
    names them), and in each of train, valid and test (else ROC-AUC is NaN, or LightGBM cannot weigh the
    classes): a DataError naming the split, the class it lacks and how to get it. A split `parts` lacks (a
    test set the data fixes) is not checked."""
    labels, users = sessions["label"].to_numpy(), sessions["user_id"].to_numpy()
    held = labels if pool is None else labels[pool]
    absent = missing_class(held)
    if absent is not None:
        raise DataError(
            f"{where} {'has' if where == 'the data' else 'have'} no {LABEL_NAMES[absent]} session "
            f"(label {absent}) among {'its' if where == 'the data' else 'their'} "
            f"{plural(len(held), 'session')}: a detector needs both classes; {more_accounts(cfg, absent)}"
        )
    gap = split_gap(labels, parts)
    if gap is None:
        return
    name, label = gap
    if label is None:
        accounts = np.unique(users if pool is None else users[pool]).size
        raise DataError(
            f"the {name} split has no session: {plural(accounts, 'account')} cannot fill "
            f"{', '.join(list(parts)[:-1])} and {list(parts)[-1]} (each account stays in one split); "
            f"{more_accounts(cfg, None)}"
        )
    among = np.ones(len(labels), bool) if pool is None else np.isin(np.arange(len(labels)), pool)
    having = np.unique(users[among & (labels == label)]).size
    raise DataError(
        f"the {name} split has no {LABEL_NAMES[label]} session (label {label}; 0 of "
        f"{plural(len(parts[name]), 'session')}): {plural(having, 'account')} "
        f"{'has' if having == 1 else 'have'} {LABEL_NAMES[label]} sessions and each account stays in one "
        f"split; {more_accounts(cfg, label)}"
    )


def more_accounts(cfg: DictConfig, label: int | None) -> str:
    """How to get more accounts (of a class): synthetic data has settings for it, other data needs rows."""
    if "bot_share" in cfg.data and "n_users" in cfg.data:
        return {
            None: "raise data.n_users",
            1: "raise data.bot_share or data.n_users",
            0: "lower data.bot_share or raise data.n_users",
        }[label]
    if label is None:
        return "add accounts to the data"
    return f"add accounts with {LABEL_NAMES[label]} sessions (label {label}) to the data"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
