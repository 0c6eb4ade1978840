"""Explained sessions, drawn: what a run records for its top flagged test sessions
(`evaluation/explanations/top_flagged.csv` and `session_<id>.png` each) and what `airush explain MODEL
session=ID data=...` prints and draws for one session. The contributions are `airush.abuse.contributions`'
(log-odds of bot, additive); the pictures `airush.abuse.plots.save_session_picture`'s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from airush.abuse.contributions import UNIT, Explanation, can_explain, explain, rows_of
from airush.errors import UserError

TOP_SESSIONS = 5  # flagged test sessions a run explains with a picture each
TOP_INPUTS = 8  # inputs per session in a run's table and pictures


def long_table(explanation: Explanation, k: int, extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (session, top-k input): session_id, [extra columns,] score, margin, base, rank, feature,
    value (the feature's value; empty for seq channels), contribution."""
    rows = []
    for i, session_id in enumerate(explanation.session_ids):
        top = explanation.top(i, k)
        for rank, (name, contribution) in enumerate(top.items(), start=1):
            value = np.nan if explanation.values is None else explanation.values.iloc[i][name]
            rows.append(
                {
                    "session_id": session_id,
                    **({} if extra is None else extra.iloc[i].to_dict()),
                    "score": explanation.score[i],
                    "margin": explanation.margin[i],
                    "base": explanation.base[i],
                    "rank": rank,
                    "feature": name,
                    "value": value,
                    "contribution": contribution,
                }
            )
    return pd.DataFrame(rows)


def session_events(events: pd.DataFrame, session_id) -> pd.DataFrame:
    """One session's events from a log sorted by session_id (the schema's order)."""
    ids = events["session_id"].to_numpy()
    lo, hi = np.searchsorted(ids, session_id, "left"), np.searchsorted(ids, session_id, "right")
    return events.iloc[lo:hi]


def save_top_flagged(
    model,
    X,
    session_ids: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    events: pd.DataFrame,
    out_dir: Path,
    kind: np.ndarray | None = None,
    sessions: int = TOP_SESSIONS,
    k: int = TOP_INPUTS,
) -> list[Path]:
    """The run's artifact: the `sessions` highest-scored flagged test sessions explained, as
    `top_flagged.csv` (`long_table`, with each session's kind) and `session_<id>.png` each
    (`airush.abuse.plots.save_session_picture`) in `out_dir`. Nothing when no session is flagged or the model
    cannot explain itself. `X`: the test inputs (rows in `session_ids` order); `events`: the sessions'
    events, sorted by session."""
    from airush.abuse.plots import save_session_picture

    flagged = np.flatnonzero(np.asarray(scores) >= threshold)
    if not len(flagged) or not can_explain(model):
        return []
    chosen = flagged[np.argsort(-np.asarray(scores)[flagged], kind="stable")[:sessions]]
    inputs = X.iloc[chosen] if isinstance(X, pd.DataFrame) else X.take(chosen)
    explanation = explain(model, inputs)
    explanation.session_ids = np.asarray(session_ids)[chosen]  # feature tables may be indexed by position
    explanation.contributions.index = pd.Index(explanation.session_ids, name="session_id")
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = pd.DataFrame({"kind": kind[chosen]}) if kind is not None else None
    long_table(explanation, k, extra).to_csv(out_dir / "top_flagged.csv", index=False)
    written = [out_dir / "top_flagged.csv"]
    for i, session_id in enumerate(explanation.session_ids):
        note = f" · {kind[chosen[i]]}" if kind is not None else ""
        written.append(
            save_session_picture(
                session_events(events, session_id),
                explanation.top(i, k),
                f"session {session_id}{note}: score {explanation.score[i]:.3f} (threshold {threshold:.3f})",
                out_dir / f"session_{session_id}.png",
                explanation.input_values(i),
            )
        )
    return written


def explain_session(trained, source, session_id: int, out: Path, k: int) -> None:
    """`airush explain`: print session `session_id`'s score, whether the run's threshold flags it and its top
    `k` inputs, and draw it to `out` (PNG). `trained`: a recorded run (`TrainedModel`); `source`: the
    `EventSource` holding the session (its labels are not read)."""
    from airush.abuse.copies import COPIED_COLUMNS, with_copy_rule
    from airush.abuse.plots import save_session_picture
    from airush.abuse.predict import _raw_model, _unwrap, run_threshold

    model, pipeline = _unwrap(trained)
    threshold = run_threshold(trained.metrics)
    chunk = find_session(source, pipeline, session_id, int((trained.config or {}).get("seed", 0)))
    # featurised with the sessions scored beside it, as `predict` does: one feature compares sessions
    inputs = pipeline.transform(chunk, np.unique(chunk["session_id"].to_numpy()))
    inputs = rows_of(inputs, np.array([session_id], dtype=np.int64))
    events = chunk[chunk["session_id"].to_numpy() == session_id].reset_index(drop=True)
    explanation = explain(model, inputs)
    copy_share = getattr(_raw_model(trained), "copy_share", None)
    score = float(with_copy_rule(explanation.score, inputs, copy_share)[0])
    flagged = score >= threshold
    top = explanation.top(0, k)
    print(
        f"session {session_id}: score {score:.4f}, {'FLAGGED' if flagged else 'not flagged'} "
        f"(threshold {threshold:.4f}, run {trained.run_id[:8]})"
    )
    if score > float(explanation.score[0]):
        shares = ", ".join(f"{name} {inputs[name].iloc[0]:.0%}" for name in COPIED_COLUMNS)
        print(
            f"copy rule: it repeats an earlier session ({shares}; at least {copy_share:.0%} raises the "
            f"model's {explanation.score[0]:.4f} to that share)"
        )
    print(
        f"top {len(top)} inputs by {UNIT} "
        f"(base {explanation.base[0]:+.3f}, margin {explanation.margin[0]:+.3f}):"
    )
    width = max(len(str(name)) for name in top.index)
    values = explanation.input_values(0)
    for rank, (name, contribution) in enumerate(top.items(), start=1):
        value = "" if values is None else f"   value {values[name]:.4g}"
        print(f"{rank:3d}. {name:<{width}}  {contribution:+.3f}{value}")
    verdict = "flagged" if flagged else "not flagged"
    title = f"session {session_id}: score {score:.3f}, {verdict} (threshold {threshold:.3f})"
    save_session_picture(events, top, title, out, values)
    print(f"picture: {out}")


def find_session(source, pipeline, session_id: int, seed: int) -> pd.DataFrame:
    """The chunk of `source` (`iter_session_chunks`, as `predict` scores it) holding session `session_id`, in
    the schema's types and session order; one line when the data has no such session."""
    from airush.abuse.predict import CHUNK_EVENTS, check_devices, session_order

    seen, examples = 0, []
    chunks = source.iter_session_chunks(
        chunk_events=CHUNK_EVENTS, check=lambda counts: check_devices(pipeline, counts), seed=seed
    )
    for chunk in chunks:
        ids = chunk["session_id"].to_numpy()
        if (ids == session_id).any():
            return session_order(chunk).reset_index(drop=True)
        unique = np.unique(ids)
        seen += len(unique)
        examples += unique[: 3 - len(examples)].tolist()
    shown = ", ".join(map(str, examples)) or "none"
    raise UserError(f"session {session_id} is not in the data ({seen} sessions, e.g. {shown})")
