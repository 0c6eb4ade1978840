"""data=events: user event logs in CSV or Parquet load exactly like the synthetic ones; every bad input is one
line naming the file, the row as the user sees it (CSV header = row 1) and the column."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from airush.abuse.data import BUTTONS, EVENT_KINDS
from airush.abuse.data.events import EventFiles
from airush.abuse.data.synthetic import SyntheticSessions
from airush.errors import DataError

from conftest import assert_refused_before_any_run, run_airush

SPLIT = ["task.split.ratios.train=0.6", "task.split.ratios.valid=0.2", "task.split.ratios.test=0.2"]


@pytest.fixture(scope="module")
def log():
    return SyntheticSessions(n_users=40, sessions_per_user=3, bot_share=0.2, mouse_actions=(2, 5)).load(
        seed=1
    )


def written(log) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The log as a user writes it: event and button as text, cells free to take any value."""
    events = log.events.astype({"event": str, "button": str}).astype(object)
    return events, log.sessions.astype(object)


def save(tmp_path, events: pd.DataFrame, sessions: pd.DataFrame, suffix: str = ".csv"):
    paths = tmp_path / f"events{suffix}", tmp_path / f"sessions{suffix}"
    for frame, path in zip((events, sessions), paths, strict=True):
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.infer_objects().to_parquet(path, index=False)
    return EventFiles(str(paths[0]), str(paths[1]))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_files_load_to_the_log_they_were_written_from(tmp_path, log, suffix):
    loaded = save(tmp_path, *written(log), suffix=suffix).load(seed=0)
    pd.testing.assert_frame_equal(loaded.events, log.events)
    pd.testing.assert_frame_equal(loaded.sessions, log.sessions)
    assert list(loaded.events["event"].cat.categories) == list(log.events["event"].cat.categories)


def test_interleaved_sessions_epoch_times_blank_cells_and_default_kinds(tmp_path, log, monkeypatch):
    events, sessions = written(log)
    # a real log: sessions interleaved in wall-clock order, epoch ms, blanks where a field does not apply
    start = 1.7e12 + np.arange(len(sessions)) * 250.0
    events["t_ms"] = events["t_ms"].astype(float) + start[events["session_id"].astype(int)]
    events = events.sort_values("t_ms", kind="stable")
    mouse = events["key"] == -1
    events["key"] = events["key"].where(~mouse, "")
    events[["x", "y"]] = events[["x", "y"]].where(mouse, "")
    part = np.where(sessions["session_id"] % 3 == 0, "test", "train")
    sessions = sessions.drop(columns="kind").assign(part=part).sample(frac=1.0, random_state=0)
    save(tmp_path, events, sessions)
    monkeypatch.chdir(tmp_path)  # relative paths are relative to where airush was started

    loaded = EventFiles("events.csv", "sessions.csv").load(seed=0)

    pd.testing.assert_frame_equal(loaded.events, log.events, check_exact=False, rtol=0, atol=1e-3)
    expected_kind = np.where(log.sessions["label"] == 1, "positive", "human")
    assert (loaded.sessions["kind"].to_numpy() == expected_kind).all()
    assert (loaded.sessions["part"].to_numpy() == part).all()
    pd.testing.assert_frame_equal(
        loaded.sessions[log.sessions.columns[:3]], log.sessions[log.sessions.columns[:3]]
    )


def first_row_of_session(events: pd.DataFrame, session: int) -> int:
    return int(np.flatnonzero(events["session_id"].to_numpy() == session)[0])


def set_cell(frame: pd.DataFrame, i: int, column: str, value) -> pd.DataFrame:
    frame = frame.copy()
    frame.iloc[i, frame.columns.get_loc(column)] = value
    return frame


def first_event(events: pd.DataFrame, kinds) -> int:
    return int(np.flatnonzero(events["event"].isin(kinds).to_numpy())[0])


# Each case: (mutate(events, sessions) -> (events, sessions), file, row, column, words in the message).
# Rows are CSV lines: frame index i is row i + 2.
BAD = {
    "events header missing a column": (
        lambda e, s: (e.drop(columns="button"), s),
        "events.csv", 1, None,
        ["missing column(s) button", "expected columns: session_id, t_ms, event, key, x, y, button"],
    ),
    "events header with an unexpected column": (
        lambda e, s: (e.assign(pressure=1), s),
        "events.csv", 1, None, ["unexpected column(s) pressure"],
    ),
    "sessions header missing a column": (
        lambda e, s: (e, s.rename(columns={"label": "is_bot"})),
        "sessions.csv", 1, None, ["missing column(s) label", "expected columns: session_id, user_id, label, [kind]"],
    ),
    "text in t_ms": (
        lambda e, s: (set_cell(e, 5, "t_ms", "12ms"), s),
        "events.csv", 7, "t_ms", ["expected a finite number, got '12ms'"],
    ),
    "NaN t_ms": (
        lambda e, s: (set_cell(e, 8, "t_ms", "nan"), s),
        "events.csv", 10, "t_ms", ["expected a finite number, got 'nan'"],
    ),
    "inf t_ms": (
        lambda e, s: (set_cell(e, 9, "t_ms", "inf"), s),
        "events.csv", 11, "t_ms", ["expected a finite number, got 'inf'"],
    ),
    "fractional session_id": (
        lambda e, s: (set_cell(e, 3, "session_id", "0.5"), s),
        "events.csv", 5, "session_id", ["expected an integer, got '0.5'"],
    ),
    "blank session_id": (
        lambda e, s: (set_cell(e, 4, "session_id", ""), s),
        "events.csv", 6, "session_id", ["expected an integer, got ''"],
    ),
    "inf session_id": (
        lambda e, s: (set_cell(e, 4, "session_id", "inf"), s),
        "events.csv", 6, "session_id", ["expected an integer, got 'inf'"],
    ),
    "non-integer user_id": (
        lambda e, s: (e, set_cell(s, 2, "user_id", "bob")),
        "sessions.csv", 4, "user_id", ["expected an integer, got 'bob'"],
    ),
    "blank x on a mouse event": (
        lambda e, s: (set_cell(e, first_event(e, ["move"]), "x", ""), s),
        "events.csv", "move", "x", ["expected a finite number on a move event", "got ''"],
    ),
    "inf y on a mouse event": (
        lambda e, s: (set_cell(e, first_event(e, ["move"]), "y", "inf"), s),
        "events.csv", "move", "y", ["expected a finite number on a move event", "got 'inf'"],
    ),
    "text in x": (
        lambda e, s: (set_cell(e, 7, "x", "12px"), s),
        "events.csv", 9, "x", ["expected a number", "got '12px'"],
    ),
    "absurd coordinate": (
        lambda e, s: (set_cell(e, first_event(e, ["move"]), "x", 250_000), s),
        "events.csv", "move", "x", ["expected screen px within [-10000, 100000] on a move event, got '250000'"],
    ),
    "unknown event kind": (
        lambda e, s: (set_cell(e, 12, "event", "click"), s),
        "events.csv", 14, "event",
        [f"expected one of {', '.join(EVENT_KINDS)}, got 'click'"],
    ),
    "unknown button": (
        lambda e, s: (set_cell(e, 13, "button", "center"), s),
        "events.csv", 15, "button", [f"expected one of {', '.join(BUTTONS)}, got 'center'"],
    ),
    "key event without a key": (
        lambda e, s: (set_cell(e, first_event(e, ["key_down"]), "key", ""), s),
        "events.csv", "key_down", "key", ["expected a key code 0..32767 on key events"],
    ),
    "time going backwards in a session": (
        lambda e, s: (set_cell(e, 20, "t_ms", float(e["t_ms"].iloc[19]) - 5.0), s),
        "events.csv", 22, "t_ms", ["time goes backwards in session ", "ms after", "ms at row 21", "expected each session's rows in time order"],
    ),
    "repeated row": (
        lambda e, s: (pd.concat([e.iloc[:12], e.iloc[[10]], e.iloc[12:]], ignore_index=True), s),
        "events.csv", 14, None, ["repeats row 12 exactly"],
    ),
    "session with no events": (
        lambda e, s: (e, pd.concat([s, pd.DataFrame([{"session_id": 999, "user_id": 3, "label": 0}])])),
        "sessions.csv", "last session", "session_id", ["session 999 has no events in events.csv"],
    ),
    "events of an unlisted session": (
        lambda e, s: (e, s[s["session_id"] != 7]),
        "events.csv", "session 7", "session_id", ["session 7 is not in the sessions file sessions.csv"],
    ),
    "label not 0/1": (
        lambda e, s: (e, set_cell(s, 4, "label", 2)),
        "sessions.csv", 6, "label", ["expected 0 (human) or 1 (bot/intruder), got '2'"],
    ),
    "session listed twice": (
        lambda e, s: (e, pd.concat([s, s.iloc[[3]]])),
        "sessions.csv", "last session", "session_id", ["session 3 is listed twice (first at row 5)"],
    ),
    "bot kind on a human session": (
        lambda e, s: (e, set_cell(s, int(np.argmax(s["label"] == 0)), "kind", "macro")),
        "sessions.csv", "first human", "kind", ["expected 'human' or blank on a label 0 session, got 'macro'"],
    ),
    "human kind on a bot session": (
        lambda e, s: (e, set_cell(s, int(np.argmax(s["label"] == 1)), "kind", "human")),
        "sessions.csv", "first bot", "kind", ["expected a bot kind, or blank for 'positive', on a label 1 session"],
    ),
    "kind that cannot name a metric": (
        lambda e, s: (e, set_cell(s, int(np.argmax(s["label"] == 1)), "kind", "bot: v2")),
        "sessions.csv", "first bot", "kind", ["expected a kind name made of letters, digits, _ . -, got 'bot: v2'"],
    ),
    "part neither train nor test": (
        lambda e, s: (e, set_cell(s.assign(part="train"), 2, "part", "dev")),
        "sessions.csv", 4, "part", ["expected train or test, got 'dev'"],
    ),
}  # fmt: skip


def expected_row(row, events: pd.DataFrame, sessions: pd.DataFrame) -> int:
    """Cases name rows that depend on the generated data by what they are."""
    if isinstance(row, int):
        return row
    if row in ("key_down", "move"):
        return first_event(events, [row]) + 2
    if row == "last session":
        return len(sessions) + 1
    if row in ("first human", "first bot"):
        return int(np.argmax(sessions["label"] == (row == "first bot"))) + 2
    return first_row_of_session(events, int(row.split()[1])) + 2


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_one_line_naming_file_row_and_column(tmp_path, log, case):
    mutate, file, row, column, words = BAD[case]
    events, sessions = mutate(*written(log))
    files = save(tmp_path, events, sessions)
    with pytest.raises(DataError) as err:
        files.load(seed=0)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / file}, row {expected_row(row, events, sessions)}"), message
    if column is not None:
        assert f"column '{column}'" in message, message
    for word in words:
        assert word in message, message


def test_parquet_rows_count_from_1(tmp_path, log):
    events, sessions = written(log)
    events = events.astype({"t_ms": float})
    events.iloc[5, events.columns.get_loc("t_ms")] = np.nan
    with pytest.raises(
        DataError, match=r"events\.parquet, row 6, column 't_ms': expected a finite number, got nan"
    ):
        save(tmp_path, events, sessions, suffix=".parquet").load(seed=0)


def test_missing_empty_and_header_only_files(tmp_path, log):
    save(tmp_path, *written(log))
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        EventFiles(str(tmp_path / "events.csv"), str(tmp_path / "nope.csv")).load(seed=0)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: is empty"):
        EventFiles(str(tmp_path / "empty.csv"), str(tmp_path / "sessions.csv")).load(seed=0)
    (tmp_path / "header.csv").write_text("session_id,user_id,label\n")
    with pytest.raises(DataError, match=r"header\.csv: has a header but no data rows"):
        EventFiles(str(tmp_path / "events.csv"), str(tmp_path / "header.csv")).load(seed=0)


def write_cli_data(tmp_path):
    log = SyntheticSessions(n_users=60, sessions_per_user=5, bot_share=0.15, mouse_actions=(3, 8)).load(
        seed=3
    )
    save(tmp_path, *written(log))
    return log


@pytest.mark.slow
def test_cli_trains_on_user_event_files(tmp_path, tracking_uri):
    write_cli_data(tmp_path)
    result = run_airush(
        ["data=events", "data.events=events.csv", "data.sessions=sessions.csv", *SPLIT],
        tmp_path,
        tracking_uri,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "roc_auc" in result.stdout
    client = mlflow.MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("abuse").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset.sessions"] == "300"


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        pytest.param(
            lambda e, s: (set_cell(e, 5, "t_ms", "12ms"), s),
            ["events.csv, row 7, column 't_ms': expected a finite number, got '12ms'"],
            marks=pytest.mark.slow,
        ),
        pytest.param(
            lambda e, s: (e, pd.concat([s, pd.DataFrame([{"session_id": 999, "user_id": 3, "label": 0}])])),
            ["sessions.csv, row 302, column 'session_id': session 999 has no events in events.csv"],
            marks=pytest.mark.slow,
        ),
        pytest.param(
            lambda e, s: (e.drop(columns="x"), s),
            ["events.csv, row 1: missing column(s) x"],
            marks=pytest.mark.slow,
        ),
    ],
    ids=["bad cell", "session without events", "bad header"],
)
def test_cli_refuses_bad_event_files_in_one_line(tmp_path, tracking_uri, mutate, words):
    log = write_cli_data(tmp_path)
    save(tmp_path, *mutate(*written(log)))
    result = run_airush(
        ["data=events", "data.events=events.csv", "data.sessions=sessions.csv"], tmp_path, tracking_uri
    )
    assert_refused_before_any_run(result, tracking_uri, *words)


@pytest.mark.slow
def test_cli_refuses_a_missing_file_in_one_line(tmp_path, tracking_uri):
    write_cli_data(tmp_path)
    result = run_airush(
        ["data=events", "data.events=events.csv", "data.sessions=nope.csv"], tmp_path, tracking_uri
    )
    assert_refused_before_any_run(result, tracking_uri, f"{tmp_path / 'nope.csv'}: file not found")


@pytest.mark.slow
def test_cli_asks_for_the_event_files_in_one_line(tmp_path, tracking_uri):
    result = run_airush(["data=events"], tmp_path, tracking_uri)
    assert_refused_before_any_run(result, tracking_uri, "data.events must be set")
