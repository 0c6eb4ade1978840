"""Scoring raw events with a trained abuse model: what the MLflow Model serves and what `airush predict` writes.

`score_sessions(model, feature_set, events)` is the shared core: events in the abuse events schema (any row
order, event and button as text or categories, any time origin) -> `session_id, score` per session, sessions
in the order they first appear. The events are put in the schema's types, sorted by session then time, each
session rebased to start at 0 ms, and turned into the model's inputs by the run's own feature pipeline
(`feature_set.transform`, as in training), so the scores equal the run's own test predictions.

`predictions(trained, source, options)` streams a data source's sessions through it, chunk by chunk
(`EventSource.iter_session_chunks`), with `flagged = score >= threshold`, the F1-best threshold the run chose
on valid. Labels are never read. With `options.explain`, flagged sessions also get `top_features`
(`airush.abuse.contributions.top_features_column`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from airush.abuse.data import BUTTONS, EVENT_KINDS, KEY_EVENTS
from airush.errors import UserError

EVENT_COLUMNS = ("session_id", "t_ms", "event", "key", "x", "y", "button")
OUTPUT_COLUMNS = ("session_id", "score")
CHUNK_EVENTS = 2_000_000  # events per chunk scored at once (predictions): memory is about 1 kB per event
DEVICES = ("keyboard", "mouse")


@dataclass
class SequenceInputs:
    """The feature pipeline of models that read raw events (model=seq): one event sequence per session, of
    the devices the run's `features=` kept."""

    keyboard: bool = True
    mouse: bool = True

    def transform(self, events: pd.DataFrame, unit_ids: np.ndarray, bar=None):
        from airush.abuse.sequences import session_sequences

        return session_sequences(events, unit_ids, keyboard=self.keyboard, mouse=self.mouse)


def check_columns(events: pd.DataFrame) -> None:
    """One line for a missing column or an event / button name outside the schema."""
    missing = [c for c in EVENT_COLUMNS if c not in events]
    if missing:
        raise UserError(f"events need the columns {', '.join(EVENT_COLUMNS)}; missing {', '.join(missing)}")
    for column, names in (("event", EVENT_KINDS), ("button", BUTTONS)):
        values = events[column]
        seen = values.cat.categories if isinstance(values.dtype, pd.CategoricalDtype) else values.unique()
        unknown = sorted(set(map(str, seen)) - set(names))
        if unknown:
            raise UserError(f"unknown {column} {unknown[0]!r}; expected one of {', '.join(names)}")


def schema_events(events: pd.DataFrame) -> pd.DataFrame:
    """`events` in the types of `airush.abuse.data` (as the event-file loader makes them): session_id int64,
    t_ms float64, event and button categories, key int16 (-1 on mouse events), x/y float32 px (NaN on key
    events). Row order is kept."""
    check_columns(events)
    event = pd.Categorical(events["event"].astype(str), categories=EVENT_KINDS)
    is_key = np.isin(event.codes, [EVENT_KINDS.index(k) for k in KEY_EVENTS])
    key = pd.to_numeric(events["key"], errors="coerce").fillna(-1).to_numpy(np.float64)
    x, y = (pd.to_numeric(events[a], errors="coerce").to_numpy(np.float64) for a in ("x", "y"))
    return pd.DataFrame(
        {
            "session_id": events["session_id"].to_numpy(np.int64),
            "t_ms": pd.to_numeric(events["t_ms"]).to_numpy(np.float64),
            "event": event,
            "key": np.where(is_key, key, -1).astype(np.int16),
            "x": np.where(is_key, np.nan, x).astype(np.float32),
            "y": np.where(is_key, np.nan, y).astype(np.float32),
            "button": pd.Categorical(events["button"].astype(str), categories=BUTTONS),
        }
    )


def session_order(events: pd.DataFrame) -> pd.DataFrame:
    """Schema events sorted by session then time (ties keep their order), each session starting at 0 ms."""
    session = events["session_id"].to_numpy(np.int64)
    t = events["t_ms"].to_numpy(np.float64)
    order = np.lexsort((t, session))
    out = events.iloc[order].reset_index(drop=True)
    s, t = session[order], t[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if len(s) else np.empty(0, np.int64)
    out["t_ms"] = t - np.repeat(t[starts], np.diff(np.r_[starts, len(t)]))
    return out


def devices_read(feature_set) -> set[str]:
    """Which devices' events the feature pipeline reads (`keyboard`/`mouse` flags of airush's feature sets,
    the parts of combined ones; mouse for per-action features); a set it cannot tell counts as both."""
    from airush.abuse.action_features import ActionFeatures

    parts = getattr(feature_set, "parts", None)
    if parts is not None:
        return set().union(*(devices_read(p) for p in parts)) if parts else set(DEVICES)
    if isinstance(feature_set, ActionFeatures):
        return {"mouse"}
    flags = {d: getattr(feature_set, d, None) for d in DEVICES}
    if all(v is None for v in flags.values()):
        return set(DEVICES)
    return {d for d, on in flags.items() if on}


def check_devices(feature_set, event_counts: np.ndarray) -> None:
    """One line when the data has no event of any device the model reads (`event_counts`: per EVENT_KINDS),
    e.g. a features=keyboard model on mouse-only logs."""
    is_key = np.isin(np.arange(len(EVENT_KINDS)), [EVENT_KINDS.index(k) for k in KEY_EVENTS])
    present = {"keyboard": event_counts[is_key].sum() > 0, "mouse": event_counts[~is_key].sum() > 0}
    needed = devices_read(feature_set)
    if not any(present[d] for d in needed):
        has = [d for d in DEVICES if present[d]]
        raise UserError(
            f"the model reads {' and '.join(sorted(needed))} events only (features="
            f"{'|'.join(sorted(needed))}), but the data has {' and '.join(has) or 'no'} events only: "
            "nothing to score it on"
        )


def event_counts(events: pd.DataFrame) -> np.ndarray:
    """Events per EVENT_KINDS of schema events."""
    return np.bincount(events["event"].cat.codes.to_numpy(np.int64), minlength=len(EVENT_KINDS))


def score_sessions(
    model, feature_set, events: pd.DataFrame, calibration=None, copy_share=None
) -> pd.DataFrame:
    """`session_id, score` per session of `events` (the abuse events schema, any row order), sessions in the
    order they first appear, and `probability` when a calibration is given; `feature_set` turns schema
    events into `model`'s inputs (`transform`); `copy_share`: the run's copy rule (`with_copy_rule`)."""
    typed = schema_events(events)
    check_devices(feature_set, event_counts(typed))
    asked = pd.unique(typed["session_id"].to_numpy())
    scored, _ = _score_ordered(model, feature_set, session_order(typed), calibration, copy_share)
    return scored.set_index("session_id").loc[asked].reset_index()


def _score_ordered(model, feature_set, events: pd.DataFrame, calibration=None, copy_share=None):
    """(scores, model inputs) of events in the schema's types and session order (`session_order`), by sorted
    session id; with `calibration` (`airush.abuse.calibration.Calibration`), their calibrated P(bot) too.
    Sessions are featurised together: a played-back session is found by comparing it with earlier ones."""
    from airush.abuse.copies import with_copy_rule

    ids = np.unique(events["session_id"].to_numpy())
    X = feature_set.transform(events, ids)
    scores = with_copy_rule(model.predict_proba(X), X, copy_share)
    scored = pd.DataFrame({"session_id": ids, "score": scores})
    if calibration is not None:
        scored["probability"] = calibration.probability(scores)
    return scored, X


def feature_pipeline(cfg, model):
    """The feature pipeline of a run from its config (`features` node) and model, as its MLflow Model saves
    it (`pipeline_params`) and rebuilds it at load."""
    return build_pipeline(pipeline_params(cfg, model))


def pipeline_params(cfg, model) -> dict[str, Any]:
    """Plain JSON params of the run's feature pipeline (`_target_`s and settings, never a pickle): the
    config's `features` node (`cfg`: a DictConfig or a plain dict), or for models that read raw events
    (model=seq) `SequenceInputs` with the devices it keeps."""
    from omegaconf import DictConfig, OmegaConf

    node = cfg["features"]
    params = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    if getattr(model, "inputs", "features") == "sequences":
        return {"_target_": f"{__name__}.SequenceInputs", **{d: bool(params.get(d, True)) for d in DEVICES}}
    return params


def build_pipeline(params: dict[str, Any], check_trust: bool = True):
    """The feature set `params` describe; every `_target_` in it is checked against the trusted packages
    first (`airush.trust`): the params come from a model folder anyone with write access could edit. Only
    the run that writes them (`check_trust=False`) builds them from its own config unchecked."""
    from hydra.utils import instantiate

    from airush.trust import check_trusted

    def targets(node):
        if isinstance(node, Mapping):
            if "_target_" in node:
                yield str(node["_target_"])
            for value in node.values():
                yield from targets(value)
        elif isinstance(node, list):
            for value in node:
                yield from targets(value)

    for target in targets(params) if check_trust else ():
        check_trusted(target, "the model's feature pipeline")
    return instantiate(params, _convert_="all")


def _unwrap(trained) -> tuple[Any, Any]:
    """(detector, feature pipeline) of a trained run: from its loaded MLflow Model (a pyfunc wrapping our
    `SessionEventScores`) or, for a bare detector, from the run's recorded config."""
    raw = _raw_model(trained)
    if hasattr(getattr(raw, "model", raw), "models_"):
        raise UserError(
            "this run verifies claimed accounts (task.scope=account): predict scores sessions with a "
            "session detector (task.scope=session)"
        )
    if hasattr(raw, "features") and hasattr(raw, "model"):
        if raw.features is not None:
            return raw.model, raw.features
    elif hasattr(raw, "predict_proba"):
        return raw, feature_pipeline(trained.config, raw)
    raise UserError(
        "this run's model takes session features, not raw events (recorded before airush's abuse models "
        "carried their feature pipeline): record it again with `airush reproduce RUN_ID` and use the new run"
    )


def _raw_model(trained):
    raw = trained.model
    with contextlib.suppress(AttributeError, NotImplementedError):
        raw = raw.get_raw_model()  # a loaded pyfunc: our wrapper, or an old run's LightGBM booster
    return raw


# `airush predict --threshold`: which of the run's thresholds (chosen on valid) flags a session
OPERATING_POINTS = {"f1": "threshold", "target_fpr": "strict_threshold"}


def run_threshold(metrics: dict[str, float], operating_point: str = "f1") -> float:
    """The run's threshold for `operating_point`: f1 (the F1-best one) or target_fpr (the one flagging
    `task.target_fpr` of valid's humans)."""
    name = OPERATING_POINTS[operating_point]
    if metrics.get(name) is None:
        raise UserError(f"the run recorded no '{name}' metric (chosen on valid): cannot flag sessions")
    return float(metrics[name])


def predictions(trained, source, options=None) -> Iterator[pd.DataFrame]:
    """`session_id, score, [probability,] flagged` per session of `source` (an `EventSource`), one frame per
    chunk of whole sessions; `probability` is the calibrated P(bot) of runs that fitted a calibration;
    `flagged` is `score >= threshold`, the run's threshold chosen on valid for `options.operating_point`
    (`run_threshold`: F1-best by default). `options`: `airush.inference.predict.PredictOptions`
    (`chunk_events` default CHUNK_EVENTS, `buckets`, `seed` default the run's). A model whose devices the
    data lacks is refused in one line before anything is scored."""
    from airush.inference.predict import PredictOptions

    options = options or PredictOptions()
    model, pipeline = _unwrap(trained)
    raw = _raw_model(trained)
    calibration, copy_share = getattr(raw, "calibration", None), getattr(raw, "copy_share", None)
    threshold = run_threshold(trained.metrics, options.operating_point)
    chunks = source.iter_session_chunks(
        chunk_events=options.chunk_events or CHUNK_EVENTS,
        buckets=options.buckets,
        check=lambda counts: check_devices(pipeline, counts),
        seed=int(options.seed if options.seed is not None else (trained.config or {}).get("seed", 0)),
    )
    for events in chunks:
        if not len(events):
            continue
        ordered = session_order(events)
        scored, X = _score_ordered(model, pipeline, ordered, calibration, copy_share)
        scored["flagged"] = scored["score"].to_numpy() >= threshold
        if options.explain:
            from airush.abuse.contributions import top_features_column

            scored["top_features"] = top_features_column(model, X, scored, options.top_features)
        yield scored
