"""`airush explain MODEL session=ID data=...`: why a recorded abuse run's model scores one session as it does.

Prints the session's score, whether the run's threshold flags it, and its top inputs by contribution to the
log-odds of bot (LightGBM feature contributions, model=seq channel attributions), and draws the session
(mouse path coloured by speed, clicks, the inputs, typing rhythm) to a PNG: the run's task does that, in the
`explain` module beside its `predict` one (`airush.abuse.explain`); a task without one is refused. The model
and the data are found and checked as `airush predict` does (`trained.py`, `predict.task_and_source`); the
data's labels are never read.
"""

from __future__ import annotations

from pathlib import Path

from airush.errors import UserError

SESSION_KEY = "session"


def main(argv: list[str]) -> int:
    from airush.records.runs import OneLineParser, default_tracking_uri

    parser = OneLineParser(
        prog="airush explain",
        description="Why a recorded abuse run's model scores one session as it does: top inputs, a picture.",
    )
    parser.add_model()
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[],
        help="session=ID and the data it is in: data=<option> [data.key=value]",
    )
    parser.add_argument("--out", help="the picture (.png); default session_<ID>.png here")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--top-k", type=int, default=10, help="inputs listed and drawn (default 10)")
    parser.add_tracking_uri()
    args = parser.parse_intermixed_args(argv)
    session_id, overrides = session_argument(args.overrides)
    from airush.inference.predict import check_overrides

    check_overrides(overrides)
    if args.top_k < 1:
        raise UserError(f"--top-k {args.top_k}: list at least one input")
    out = Path(args.out or f"session_{session_id}.png")
    check_picture(out, args.overwrite)
    explain_session(
        args.tracking_uri or default_tracking_uri(), args.model, session_id, overrides, out, args.top_k
    )
    return 0


def session_argument(overrides: list[str]) -> tuple[int, list[str]]:
    """(the session id `session=ID` names, the other overrides); one line when it is missing or not an id."""
    named = [o for o in overrides if o.split("=", 1)[0] == SESSION_KEY]
    if len(named) != 1:
        raise UserError("airush explain: name one session, e.g. session=123 data=events data.events=...")
    value = named[0].split("=", 1)[1] if "=" in named[0] else ""
    try:
        session_id = int(value)
    except ValueError:
        raise UserError(f"{named[0]}: a session id is a whole number") from None
    return session_id, [o for o in overrides if o is not named[0]]


def check_picture(path: Path, overwrite: bool) -> None:
    from airush.inference.output import check_writable

    if path.suffix.lower() != ".png":
        raise UserError(f"--out {path}: the picture is a .png")
    check_writable(path, overwrite, named=str(path))  # --out may not have been given


def explain_session(uri: str, ref: str, session_id: int, overrides: list[str], out: Path, k: int) -> None:
    """Explain session `session_id` of the data `overrides` compose by MODEL `ref`: the run's task does it
    (`explain_session(trained, source, session_id, out, k)` of the `explain` module beside its `predict`)."""
    import importlib

    from airush.inference.predict import explanations_module, task_and_source
    from airush.inference.trained import trained_model

    with trained_model(uri, ref) as trained:
        task, source = task_and_source(trained, overrides)
        module = explanations_module(task)
        if module is None:
            raise UserError(
                f"airush explain explains abuse session scores; run {trained.run_id} is a "
                f"{trained.task} model"
            )
        importlib.import_module(module).explain_session(trained, source, session_id, out, k)
