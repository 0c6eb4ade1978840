"""Aalto 136M Keystrokes (`data=aalto`): a folder of per-participant files loads as the event-log schema,
counted independently with plain pandas; a damaged file is one line naming file, row and column; and a
detector trained on synthetic data is scored on these real people through the installed CLI."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from airush.abuse.data import BUTTONS, EVENT_KINDS
from airush.abuse.data.aalto import HEADER, AaltoKeystrokes
from airush.errors import ConfigError, DataError

from conftest import SHARED_DATA, SMALL, run_airush

AALTO = SHARED_DATA / "aalto-keystrokes-sample"
needs_aalto = pytest.mark.skipif(not AALTO.is_dir(), reason=f"Aalto keystrokes sample not found at {AALTO}")


def plain_rows(folder: Path) -> pd.DataFrame:
    """Every file's rows, read with nothing but pandas (quotes are plain characters in these files)."""
    files = sorted([*folder.glob("*_keystrokes.txt"), *folder.glob("*.tsv")])
    return pd.concat(
        [pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE) for path in files], ignore_index=True
    )


def paired_holds(events: pd.DataFrame) -> pd.DataFrame:
    """Each key_down matched with the same session's next unmatched key_up of its key (first in, first out):
    session_id, down and up positions in the log, hold in ms."""
    events = events.reset_index(drop=True).assign(position=lambda e: np.arange(len(e)))
    events["nth"] = events.groupby(["session_id", "key", "event"], observed=True).cumcount()
    down = events[events["event"] == "key_down"]
    up = events[events["event"] == "key_up"]
    pairs = down.merge(up, on=["session_id", "key", "nth"], how="left", suffixes=("_down", "_up"))
    return pd.DataFrame(
        {
            "session_id": pairs["session_id"],
            "down": pairs["position_down"],
            "up": pairs["position_up"],
            "hold": pairs["t_ms_up"] - pairs["t_ms_down"],
        }
    )


# --- the real sample ---------------------------------------------------------------------------------------


@needs_aalto
def test_the_sample_loads_with_the_counts_pandas_finds():
    rows = plain_rows(AALTO)
    log = AaltoKeystrokes(str(AALTO)).load()
    sessions, events = log.sessions, log.events
    assert len(sessions) == rows["TEST_SECTION_ID"].nunique()
    assert sessions["user_id"].nunique() == rows["PARTICIPANT_ID"].nunique()
    assert log.n_events == 2 * len(rows)
    per_session = events.groupby("session_id").size()
    expected = rows.groupby("TEST_SECTION_ID").size() * 2
    pd.testing.assert_series_equal(per_session, expected, check_names=False, check_index_type=False)
    owner = rows.groupby("TEST_SECTION_ID")["PARTICIPANT_ID"].first()
    np.testing.assert_array_equal(sessions["user_id"], owner.reindex(sessions["session_id"]).to_numpy())
    assert (sessions["label"] == 0).all() and (sessions["kind"] == "human").all()
    assert list(sessions.columns) == ["session_id", "user_id", "label", "kind"]
    assert list(events.columns) == ["session_id", "t_ms", "event", "key", "x", "y", "button"]  # no text
    assert events.dtypes.to_dict() == {
        "session_id": np.int64,
        "t_ms": np.float64,
        "event": pd.CategoricalDtype(EVENT_KINDS),
        "key": np.int16,
        "x": np.float32,
        "y": np.float32,
        "button": pd.CategoricalDtype(BUTTONS),
    }
    assert events["x"].isna().all() and (events["button"] == "none").all()
    assert sorted(events["key"].unique()) == sorted(rows["KEYCODE"].unique())
    assert (events.groupby("session_id")["t_ms"].min() == 0).all()
    order = events[["session_id", "t_ms"]].to_numpy()
    assert (np.diff(order[:, 0]) >= 0).all()
    assert all(np.all(np.diff(t) >= 0) for _, t in events.groupby("session_id")["t_ms"])


@needs_aalto
def test_every_key_down_has_its_key_up_later_holding_release_minus_press():
    rows = plain_rows(AALTO)
    pairs = paired_holds(AaltoKeystrokes(str(AALTO)).load().events)
    assert len(pairs) == len(rows) and pairs["up"].notna().all()
    assert (pairs["up"] > pairs["down"]).all()
    holds = rows.assign(hold=rows["RELEASE_TIME"] - rows["PRESS_TIME"]).rename(
        columns={"TEST_SECTION_ID": "session_id"}
    )
    for session, found in pairs.groupby("session_id"):
        expected = holds.loc[holds["session_id"] == session, "hold"]
        np.testing.assert_array_equal(np.sort(found["hold"]), np.sort(expected.to_numpy(np.float64)))


@needs_aalto
def test_a_participant_session_holds_all_their_sentences():
    rows = plain_rows(AALTO)
    log = AaltoKeystrokes(str(AALTO), session_by="participant").load()
    assert sorted(log.sessions["session_id"]) == sorted(rows["PARTICIPANT_ID"].unique())
    assert (log.sessions["session_id"] == log.sessions["user_id"]).all()
    per_person = log.events.groupby("session_id").size()
    assert per_person.to_dict() == (rows.groupby("PARTICIPANT_ID").size() * 2).to_dict()
    first_file = AaltoKeystrokes(str(AALTO), max_files=1).load()
    assert first_file.sessions["user_id"].tolist() == [100003] * 15  # 100003_keystrokes.txt sorts first


# --- small files of our own ---------------------------------------------------------------------------------


def row(participant=1, section=10, press="1000", release="1100", code="65", letter="a") -> list[str]:
    return [str(participant), str(section), 'He said "hi"', 'He said "hi', "7", press, release, letter, code]


def write(folder: Path, rows: list[list[str]], name: str = "1_keystrokes.txt", header=HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join("\t".join(cells) for cells in [list(header), *rows]) + "\n")
    return path


def test_a_small_folder_becomes_key_events_down_first_at_ties(tmp_path):
    write(
        tmp_path,
        [
            row(section=10, press="5000", release="5000", code="16"),  # a zero hold: down, then up
            row(section=10, press="5000", release="5080", code="65"),
            row(section=11, press="9000", release="9050", code="66"),
        ],
    )
    write(tmp_path, [row(participant=2, section=3, press="100.5", release="200", code="32")], "2.tsv")
    (tmp_path / "notes.txt").write_text("not a keystrokes file\n")
    log = AaltoKeystrokes(str(tmp_path)).load()
    events = log.events
    assert events["session_id"].tolist() == [3, 3, 10, 10, 10, 10, 11, 11]
    assert events["t_ms"].tolist() == [0.0, 99.5, 0.0, 0.0, 0.0, 80.0, 0.0, 50.0]
    assert events["event"].tolist()[2:6] == ["key_down", "key_down", "key_up", "key_up"]
    assert events["key"].tolist()[2:6] == [16, 65, 16, 65]
    assert log.sessions.to_dict("list") == {
        "session_id": [3, 10, 11],
        "user_id": [2, 1, 1],
        "label": [0, 0, 0],
        "kind": ["human"] * 3,
    }
    person = AaltoKeystrokes(str(tmp_path), session_by="participant").load()
    assert person.events.loc[person.events["session_id"] == 1, "t_ms"].max() == 4050.0


GOOD = [row(press="1000", release="1100"), row(press="1200", release="1300")]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [GOOD[0], row(press="soon")],
            r"row 3, column 'PRESS_TIME': expected a finite time in ms, got 'soon'",
        ),
        (
            [row(release="inf"), *GOOD],
            r"row 2, column 'RELEASE_TIME': expected a finite time in ms, got 'inf'",
        ),
        ([*GOOD, row(release="")], r"row 4, column 'RELEASE_TIME': expected a finite time in ms, got ''"),
        (
            [*GOOD, row(press="2000", release="1999")],
            r"row 4, column 'RELEASE_TIME': expected a time at or after the row's PRESS_TIME, got '1999'",
        ),
        (
            [GOOD[0], row(code="70000")],
            r"row 3, column 'KEYCODE': expected a key code, a whole number in 0\.\.32767",
        ),
        ([row(code="-1")], r"row 2, column 'KEYCODE': expected a key code.*got '-1'"),
        ([*GOOD, row(code="6.5")], r"row 4, column 'KEYCODE': expected a key code.*got '6\.5'"),
        ([row(code="SHIFT")], r"row 2, column 'KEYCODE': expected a key code.*got 'SHIFT'"),
        (
            [GOOD[0], row(participant="x")],
            r"row 3, column 'PARTICIPANT_ID': expected an integer >= 0, got 'x'",
        ),
        (
            [*GOOD, row(participant=2)],
            r"row 4, column 'TEST_SECTION_ID': section 10 is typed by participants 1 and 2",
        ),
        ([GOOD[0], [*row(), "extra"]], r"row 3: expected 9 tab-separated fields as in the header, got 10"),
        ([GOOD[0], [""], GOOD[1]], r"row 3: expected 9 tab-separated fields as in the header, got 1"),
    ],
)
def test_a_bad_row_is_one_line_naming_file_row_and_column(tmp_path, rows, message):
    path = write(tmp_path, rows)
    with pytest.raises(DataError) as error:
        AaltoKeystrokes(str(tmp_path)).load()
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith(f"{path}, row ")
    assert pd.Series([text]).str.contains(message).all(), text


def test_a_missing_column_names_it_and_the_header_row(tmp_path):
    header = [name for name in HEADER if name != "KEYCODE"]
    path = write(tmp_path, [row()[:-1]], header=header)
    with pytest.raises(
        DataError, match=r"^.*, row 1: missing column\(s\) KEYCODE; expected the columns "
    ) as error:
        AaltoKeystrokes(str(tmp_path)).load()
    assert str(error.value).startswith(str(path))


def test_a_section_in_two_files_names_both(tmp_path):
    first = write(tmp_path, GOOD, "1_keystrokes.txt")
    second = write(
        tmp_path, [row(participant=2, section=11), row(participant=2, section=10)], "2_keystrokes.txt"
    )
    with pytest.raises(DataError) as error:
        AaltoKeystrokes(str(tmp_path)).load()
    assert str(error.value) == f"{second}, row 3, column 'TEST_SECTION_ID': section 10 is also in {first}"


def test_an_empty_folder_file_or_header_only_file_is_refused(tmp_path):
    with pytest.raises(
        DataError,
        match=r"^.*: no \*_keystrokes\.txt or \*\.tsv files \(set data\.root=\.\.\., or task\.test_data\.root=\.\.\. for a test set\)$",
    ):
        AaltoKeystrokes(str(tmp_path)).load()
    path = write(tmp_path, [])
    with pytest.raises(DataError, match="has a header but no data rows") as error:
        AaltoKeystrokes(str(tmp_path)).load()
    assert str(error.value) == f"{path}: has a header but no data rows"
    path.write_text("")
    with pytest.raises(DataError, match=r": is empty$"):
        AaltoKeystrokes(str(tmp_path)).load()
    with pytest.raises(DataError, match="folder not found"):
        AaltoKeystrokes(str(tmp_path / "nowhere")).load()


def test_the_config_composes_as_test_data(compose_cfg):
    from airush.abuse import task as abuse
    from airush.model import check_settings

    cfg = compose_cfg(["+data@task.test_data=aalto", "task.test_data.root=/somewhere/aalto"])
    assert cfg.task.test_data._target_ == "airush.abuse.data.aalto.AaltoKeystrokes"
    assert cfg.task.test_data.session_by == "section" and cfg.task.test_data.max_files is None
    assert abuse.test_data_name(cfg) == "aalto"
    assert compose_cfg(["data=aalto"]).data.root.endswith("/aalto-keystrokes-sample")
    with pytest.raises(ConfigError, match="session_by"):
        check_settings("data", AaltoKeystrokes("/x", session_by="sentence"))


# --- end to end --------------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_aalto
def test_train_on_synthetic_and_test_on_aalto_typists(tmp_path, tracking_uri):
    result = run_airush(
        [
            "features=keyboard",
            *SMALL["abuse"],
            "+data@task.test_data=aalto",
            f"task.test_data.root={AALTO}",
            "task.test_labels=human",
        ],
        tmp_path,
        tracking_uri,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fpr" in result.stdout and "flag_rate" in result.stdout
    client = mlflow.MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("abuse").experiment_id])
    metrics = run.data.metrics
    assert {"fpr", "flag_rate"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    assert 0.0 <= metrics["fpr"] <= 1.0 and metrics["flag_rate"] == metrics["fpr"]
    assert run.data.tags["airush.test_data"] == "aalto"
    assert run.data.params["dataset.test_sessions"] == str(plain_rows(AALTO)["TEST_SECTION_ID"].nunique())
    assert run.data.params["dataset.test_positives"] == "0"
