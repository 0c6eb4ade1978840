"""Fuzz: seeded malformed files and config values (tests/fuzz_inputs.py) against every loader of a user's files
and the config check. Each input must end as `airush` promises: refused with one line (a UserError, exit 2) or
accepted as valid data / a valid config; never any other exception (a traceback for the user), nor a warning
(a second stderr line).

Per run (seed AIRUSH_FUZZ_SEED, default 13): 390 malformed files through the loaders in-process and 80 config
values through the CLI's own checks, compose and `build` (~15 s); then, marked slow, 17 more through the
installed `airush` end to end: mutated files large enough to train on and config values `build` lets through
that stress what follows (exit 2 with one stderr line, or exit 0; ~1 min). The terminal summary prints the
table of cases by kind: tried / held (refused in one line, or accepted as valid).
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import traceback
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airush.abuse.data import BUTTONS, EVENT_KINDS, EventLog
from airush.errors import DataError, UserError
from airush.music.data import Plays

from conftest import REPO, SMALL, run_airush
from fuzz_inputs import Case, Source, Table, json_cases, sample, table_cases

SEED = int(os.environ.get("AIRUSH_FUZZ_SEED", "13"))
FIXTURES = REPO / "tests" / "fixtures"
# kind -> outcome -> count, across the tests of this run: the terminal summary prints it (conftest.py)
TALLY: dict[str, Counter] = defaultdict(Counter)


# Small valid inputs of every loader of a user's files
def events_source() -> Source:
    from airush.abuse.data.events import EventFiles

    events, sessions = [], []
    for s in range(6):
        t = 1_700_000_000_000.0 + 1000 * s  # epoch ms: each session is shifted to start at 0
        for i, (event, key, x, y, button) in enumerate(
            [("move", "", "10", "20", "none"), ("move", "-1", "15", "22", "none"),
             ("button_down", "", "15", "22", "left"), ("button_up", "", "15", "22", "left"),
             ("key_down", "65", "", "", "none"), ("key_up", "65", "", "", "none"),
             ("wheel", "", "15", "22", "middle"), ("drag", "", "40", "-5", "right")]
        ):  # fmt: skip
            events.append([str(s), repr(t + 16.5 * i), event, key, x, y, button])
        label = int(s % 3 == 2)
        sessions.append([str(s), str(s // 2), str(label), "macro" if label else ["human", ""][s % 2]])
    files = {
        "events.csv": Table(
            ["session_id", "t_ms", "event", "key", "x", "y", "button"], events,
            categorical=("event", "button"), numeric=("session_id", "t_ms", "key", "x", "y"),
        ),
        "sessions.csv": Table(
            ["session_id", "user_id", "label", "kind"], sessions,
            categorical=("label", "kind"), ids=("session_id",), numeric=("session_id", "user_id", "label"),
        ),
    }  # fmt: skip
    return Source(
        "events",
        files,
        lambda paths, folder: EventFiles(str(paths["events.csv"]), str(paths["sessions.csv"])).load(seed=0),
        parquet=("events.csv", "sessions.csv"),
    )


def plays_source() -> Source:
    from airush.music.data.files import InteractionFiles

    plays = [[f"u{u}", f"t{(u * 3 + k) % 7}", str(1 + (u + k) % 4), str(1_600_000_000 + 60 * k)]
             for u in range(6) for k in range(4)]  # fmt: skip
    items = [[f"t{i}", f"a{i % 3}", f"al{i % 2}", ["rock", "jazz", ""][i % 3], str(1990 + i), f"rock|x{i}"]
             for i in range(8)]  # fmt: skip
    files = {
        "plays.csv": Table(
            ["user", "item", "plays", "timestamp"], plays,
            ids=("user", "item"), numeric=("plays", "timestamp"),
        ),
        "items.csv": Table(
            ["item", "artist", "album", "genre", "year", "tags"], items,
            categorical=("genre", "tags"), ids=("item",), numeric=("year",),
        ),
    }  # fmt: skip
    return Source(
        "plays",
        files,
        lambda paths, folder: InteractionFiles(str(paths["plays.csv"]), str(paths["items.csv"])).load(seed=0),
        parquet=("plays.csv", "items.csv"),
    )


def lastfm_source() -> Source:
    from airush.music.data.lastfm import LastFMHetRec

    plays = [[str(u), str(50 + (u * 5 + k) % 9), str(10 + u * k)] for u in range(2, 8) for k in range(3)]
    tags = [[str(u), str(50 + u % 9), str(13 + u % 4), "1", "4", "2009"] for u in range(2, 8)]
    files = {
        "user_artists.dat": Table(
            ["userID", "artistID", "weight"], plays, sep="\t", numeric=("userID", "artistID", "weight"),
        ),
        "user_taggedartists.dat": Table(
            ["userID", "artistID", "tagID", "day", "month", "year"], tags, sep="\t",
            numeric=("userID", "artistID", "tagID"),
        ),
    }  # fmt: skip
    return Source("lastfm", files, lambda paths, folder: LastFMHetRec(str(folder)).load(seed=0))


def movielens_source(layout: str) -> Source:
    from airush.music.data.movielens import MovieLens

    folder = FIXTURES / "movielens" / layout
    files = {}
    for path in sorted(folder.iterdir()):
        encoding = "utf-8" if layout == "ml-latest-small" else "latin-1"  # as MovieLens ships them
        text = path.read_text(encoding=encoding)
        sep = {".csv": ",", ".dat": "::"}.get(path.suffix, "\t" if path.name == "u.data" else "|")
        if sep == ",":
            lines = list(csv.reader(text.splitlines()))
        else:
            lines = [line.split(sep) for line in text.splitlines() if line]
        header = lines.pop(0) if sep == "," else None
        files[path.name] = Table(
            header, lines[:40], sep=sep, encoding=encoding,
            numeric=tuple(c for c in (header or ["0", "1", "2", "3"]) if c not in ("title", "genres", "tag")),
            categorical=("genres",),
        )  # fmt: skip
    return Source(
        f"movielens {layout}",
        files,
        lambda paths, root: MovieLens(str(root), min_rating=None).load(seed=0),
    )


def balabit_source() -> Source:
    from airush.abuse.data.balabit import BalabitMouse

    header = ["record timestamp", "client timestamp", "button", "state", "x", "y"]
    rows = [["0.0", "0.0", "NoButton", "Move", "126", "337"], ["0.0", "0.016", "NoButton", "Move", "129", "338"],
            ["0.1", "0.12", "Left", "Pressed", "129", "338"], ["0.2", "0.2", "Left", "Released", "129", "338"],
            ["0.3", "0.31", "Left", "Drag", "140", "350"], ["0.4", "0.4", "Scroll", "Down", "140", "350"],
            ["0.5", "0.5", "NoButton", "Move", "65535", "65535"]]  # fmt: skip
    files: dict[str, Table | bytes] = {}
    for part, offset in (("training_files", 10), ("test_files", 20)):
        for user in (7, 9):
            files[f"{part}/user{user}/session_{offset + user}"] = Table(
                header, rows, categorical=("button", "state"), numeric=tuple(header[:2] + header[4:])
            )
    files["public_labels.csv"] = Table(
        ["filename", "is_illegal"], [["session_27", "0"], ["session_29", "1"]],
        ids=("filename",), numeric=("is_illegal",),
    )  # fmt: skip
    folder_kinds = (
        "user folder name not a number",
        "session file name without a number",
        "a session id in two accounts",
        "a part of the layout missing or empty",
        "a folder where a file belongs",
    )
    return Source(
        "balabit",
        files,
        lambda paths, folder: BalabitMouse(str(folder)).load(seed=0),
        folder_kinds=folder_kinds,
    )


def melon_files() -> dict[str, list[dict]]:
    """The Melon fixture cut to 12 playlists and the 120 songs they may name."""
    import json

    files = {
        name: json.loads((FIXTURES / "melon" / name).read_text()) for name in ("train.json", "song_meta.json")
    }
    files["song_meta.json"] = files["song_meta.json"][:120]
    songs = {song["id"] for song in files["song_meta.json"]}
    files["train.json"] = [
        {**p, "songs": [s for s in p["songs"] if s in songs]} for p in files["train.json"][:12]
    ]
    return files


def melon_cases(n: int) -> list[Case]:
    return json_cases("melon", melon_files(), n, SEED)


def melon_load(paths, folder):
    from airush.music.data.melon import MelonPlaylists

    return MelonPlaylists(str(folder)).load(seed=0)


# cases per source: each mutation kind at least once (38 for a Parquet-reading source, 43 for Balabit's folder)
SOURCES = {
    "events": (events_source, 80),
    "plays": (plays_source, 60),
    "lastfm": (lastfm_source, 40),
    "movielens ml-latest-small": (lambda: movielens_source("ml-latest-small"), 40),
    "movielens ml-1m": (lambda: movielens_source("ml-1m"), 40),
    "movielens ml-100k": (lambda: movielens_source("ml-100k"), 40),
    "balabit": (balabit_source, 50),
}
MELON_CASES = 40


# What valid data is
def event_log_problems(log: EventLog) -> list[str]:
    e, s = log.events, log.sessions
    problems = []
    if list(e.columns) != ["session_id", "t_ms", "event", "key", "x", "y", "button"]:
        return [f"event columns {list(e.columns)}"]
    types = {"session_id": "int64", "t_ms": "float64", "key": "int16", "x": "float32", "y": "float32"}
    problems += [f"{c} is {e[c].dtype}" for c, t in types.items() if str(e[c].dtype) != t]
    for column, names in (("event", EVENT_KINDS), ("button", BUTTONS)):
        if not isinstance(e[column].dtype, pd.CategoricalDtype) or tuple(e[column].cat.categories) != names:
            problems.append(f"{column} is not the category {names}")
        elif e[column].isna().any():
            problems.append(f"{column} has blanks")
    if not np.isfinite(e["t_ms"]).all():
        problems.append("t_ms not finite")
    mouse = ~e["event"].isin(["key_down", "key_up"]).to_numpy()
    if not np.isfinite(e.loc[mouse, ["x", "y"]].to_numpy()).all():
        problems.append("a mouse event without finite x, y")
    session = e["session_id"].to_numpy()
    if (np.diff(session) < 0).any():
        problems.append("events not sorted by session")
    same = np.diff(session) == 0
    if (np.diff(e["t_ms"].to_numpy())[same] < 0).any():
        problems.append("time goes backwards inside a session")
    if s["session_id"].duplicated().any():
        problems.append("a session listed twice")
    if not s["label"].isin([0, 1]).all():
        problems.append("a label other than 0/1")
    if not np.isin(session, s["session_id"].to_numpy()).all():
        problems.append("events of an unlisted session")
    if not np.isin(s["session_id"].to_numpy(), session).all():
        problems.append("a listed session without events")
    return problems


def plays_problems(plays: Plays) -> list[str]:
    inter = plays.interactions
    problems = []
    types = {"user": "int64", "item": "int64", "plays": "float64", "timestamp": "int64"}
    if list(inter.columns) != list(types):
        return [f"interaction columns {list(inter.columns)}"]
    problems += [f"{c} is {inter[c].dtype}" for c, t in types.items() if str(inter[c].dtype) != t]
    if not inter["user"].between(0, plays.n_users - 1).all():
        problems.append("a user outside 0..n_users-1")
    if not inter["item"].between(0, plays.n_items - 1).all():
        problems.append("an item outside 0..n_items-1")
    if not (np.isfinite(inter["plays"]) & (inter["plays"] > 0)).all():
        problems.append("plays not finite and > 0")
    if len(plays.items) != plays.n_items:
        problems.append(f"{len(plays.items)} item rows for {plays.n_items} items")
    if plays.item_tags is not None and plays.item_tags.shape[0] != plays.n_items:
        problems.append("item_tags rows differ from the items")
    if (
        len(set(map(str, plays.user_ids))) != plays.n_users
        or len(set(map(str, plays.item_ids))) != plays.n_items
    ):
        problems.append("repeated ids")
    return problems


def attempt(load, folder: Path) -> tuple[str, str]:
    """("refused" | "accepted" | "bug", what happened)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = load()
        except UserError as err:
            message = str(err)
            if "\n" in message or not message.strip():
                return "bug", f"message is not one line: {message!r}"
            if isinstance(err, DataError) and str(folder) not in message:
                return "bug", f"message names no input file: {message}"
            return "refused", message
        except Exception as err:  # what the user would see as a traceback
            where = traceback.extract_tb(err.__traceback__)[-1]
            return (
                "bug",
                f"{type(err).__name__}: {str(err)[:300]} ({Path(where.filename).name}:{where.lineno})",
            )
    if caught:  # printed on stderr: the user would see more than one line
        return "bug", f"warning: {caught[0].category.__name__}: {caught[0].message}"
    problems = (event_log_problems if isinstance(result, EventLog) else plays_problems)(result)
    return ("bug", "accepted invalid data: " + "; ".join(problems)) if problems else ("accepted", "")


def run_cases(cases: list[Case], load, tmp_path: Path) -> None:
    failures = []
    for i, case in enumerate(cases):
        folder = tmp_path / str(i)
        paths = case.write(folder)
        outcome, text = attempt(lambda paths=paths, folder=folder: load(paths, folder), folder)
        TALLY[case.kind][outcome] += 1
        TALLY[case.kind]["tried"] += 1
        if outcome == "bug":
            failures.append(f"#{i} {case.source} · {case.kind} · {case.file}: {text}")
        else:
            shutil.rmtree(folder)
    assert not failures, f"AIRUSH_FUZZ_SEED={SEED}, {len(failures)} of {len(cases)}:\n" + "\n".join(failures)


@pytest.mark.parametrize("name", list(SOURCES))
def test_malformed_files_are_refused_in_one_line_or_load_as_valid_data(name, tmp_path):
    build, n = SOURCES[name]
    source = build()
    run_cases(table_cases(source, n, SEED), source.load, tmp_path)


def test_malformed_melon_json_is_refused_in_one_line_or_loads_as_valid_data(tmp_path):
    run_cases(melon_cases(MELON_CASES), melon_load, tmp_path)


# Config values
BASES = [[], ["task=music"], ["task=music", "model=ease"], ["task=music", "model=itemknn"], ["task=music", "model=bpr"],
         ["task.scope=account", "data=balabit", "features=actions"], ["data=events", "data.events=e.csv", "data.sessions=s.csv"],
         ["task=music", "data=plays", "data.interactions=p.csv"], ["task=music", "data=movielens"]]  # fmt: skip
BAD_VALUES = ["abc", "-1", "0", "1e309", "nan", "-inf", "inf", "1.5", "0.5", "99999999999999999999", "2147483648",
              "-9223372036854775809", "[]", "[1,abc]", "{a:1}", "null", "''", "true", "-0.0", "1e-320", "[[1]]",
              "[0,0]", "[-5,10]", "[3,1]", "${oc.env:AIRUSH_FUZZ_NOPE}", "${nope}", "'a b'", "ü", "0x10", "1_0",
              "' 7'", "[1", "{", "a=b", "'\\n'", "${data}", "1e3", "3", "[10,20,50,10]"]  # fmt: skip
CONFIG_CASES = 80


def leaf_keys(node, prefix: str = "") -> list[str]:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    keys = []
    for key in node:
        path = f"{prefix}{key}"
        if path.startswith(("hydra", "paths", "mlflow.tracking_uri")):
            continue
        value = node._get_node(key)
        if isinstance(value, DictConfig):
            keys += leaf_keys(value, path + ".")
        elif isinstance(value, ListConfig) or not OmegaConf.is_interpolation(node, key):
            keys.append(path)
    return keys


def config_cases(compose) -> list[tuple[str, list[str], str]]:
    """(kind, base, override): a bad value for a leaf key of one of BASES, or a bad key."""
    leaves = {tuple(base): leaf_keys(compose(base)) for base in BASES}
    cases = []
    for i in range(CONFIG_CASES):
        rng = random.Random(f"{SEED}:config:{i}")
        base = rng.choice(BASES)
        key = rng.choice(leaves[tuple(base)])
        kind = rng.choices(["bad value", "unknown key", "deleted key", "nested under a value", "group option"],
                           weights=[12, 1, 1, 1, 1])[0]  # fmt: skip
        override = {
            "bad value": f"{key}={rng.choice(BAD_VALUES)}",
            "unknown key": f"+{key}_x=1",
            "deleted key": f"~{key}",
            "nested under a value": f"+{key}.x=1",
            "group option": rng.choice(["model", "data", "features", "task"])
            + "="
            + rng.choice(BAD_VALUES[:6]),
        }[kind]
        top = key.split(".")[0]
        cases.append(
            (f"config: {kind} ({top})" if kind == "bad value" else f"config: {kind}", base, override)
        )
    return cases


@pytest.fixture(scope="module")
def compose_job(tmp_path_factory):
    """(base overrides, one more key override) -> cfg, as the CLI's Hydra job gets it. Each base is composed
    once; the extra override is applied to a copy the way Hydra's compose applies key overrides (a full
    compose per case would take ~0.1 s)."""
    import copy
    from functools import cache

    from hydra import compose, initialize_config_module
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import open_dict

    import airush.cli  # noqa: F401  (the resolvers airush's configs use)

    GlobalHydra.instance().clear()
    run_dir = str(tmp_path_factory.mktemp("run"))
    parser = OverridesParser.create()

    @cache
    def composed(base: tuple[str, ...]):
        return compose("config", overrides=list(base), return_hydra_config=True)

    def _compose(base: list[str], override: str | None = None):
        cfg = copy.deepcopy(composed(tuple(base)))
        if override is not None:
            ConfigLoaderImpl._apply_overrides_to_config(parser.parse_overrides([override]), cfg)
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.run_dir = run_dir
            del cfg["hydra"]
        return cfg

    with initialize_config_module("airush.conf", version_base="1.3"):
        yield _compose
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # else a later test's relative paths resolve against a stale cwd


def config_attempt(compose, base: list[str], override: str) -> tuple[str, str]:
    """What `airush <base> <override>` does up to the first step that reads data: the command-line checks,
    Hydra's compose, the input files' check and `build`; errors become what `airush.cli.main` prints."""
    from airush.config.choices import packaged_choices
    from airush.config.command_line import check_flags, hydra_error_line
    from airush.data.inputs import check_inputs
    from airush.runner import build

    try:
        check_flags([*base, override])
        packaged_choices().check_overrides([*base, override])
        cfg = compose(base, override)
        check_inputs(cfg)
        build(cfg)
    except UserError as err:
        message = str(err)
        return ("refused", message) if "\n" not in message else ("bug", f"not one line: {message!r}")
    except Exception as err:
        line = hydra_error_line(err)
        if line is None:
            where = traceback.extract_tb(err.__traceback__)[-1]
            return (
                "bug",
                f"{type(err).__name__}: {str(err)[:300]} ({Path(where.filename).name}:{where.lineno})",
            )
        return ("refused", line) if "\n" not in line else ("bug", f"not one line: {line!r}")
    return "accepted", ""


def test_bad_config_values_are_refused_in_one_line_or_build(compose_job, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    failures = []
    for kind, base, override in config_cases(compose_job):
        outcome, text = config_attempt(compose_job, base, override)
        TALLY[kind][outcome] += 1
        TALLY[kind]["tried"] += 1
        if outcome == "bug":
            failures.append(f"{' '.join([*base, override])}: {text}")
    assert not failures, f"AIRUSH_FUZZ_SEED={SEED}, {len(failures)}:\n" + "\n".join(failures)


# End to end: a sample through the installed CLI
def cli_file_cases() -> list[tuple[str, list[str], Case]]:
    """Mutations of data large enough to train on: (kind, overrides, case); the case writes into cwd."""
    from airush.abuse.data.synthetic import SyntheticSessions

    log = SyntheticSessions(n_users=60, sessions_per_user=5, bot_share=0.15, mouse_actions=(3, 8)).load(
        seed=3
    )
    events = log.events.astype({"event": str, "button": str})
    sessions = log.sessions
    big = events_source()
    big.files["events.csv"].rows = [[_cell(v) for v in row] for row in events.itertuples(index=False)]
    big.files["sessions.csv"] = Table(
        list(sessions.columns), [[_cell(v) for v in row] for row in sessions.itertuples(index=False)],
        categorical=("label", "kind"), ids=("session_id",), numeric=("session_id", "user_id", "label"),
    )  # fmt: skip
    split = ["task.split.ratios.train=0.6", "task.split.ratios.valid=0.2", "task.split.ratios.test=0.2"]
    abuse = ["data=events", "data.events=events.csv", "data.sessions=sessions.csv", *split]
    cases = [
        ("events", abuse, case) for case in sample(table_cases(big, 60, SEED), CLI_CASES["events"], SEED)
    ]
    rng = np.random.default_rng(SEED)
    plays = [[f"u{u}", f"t{i}", str(int(rng.integers(1, 20))), str(1_600_000_000 + 60 * int(i))]
             for u in range(80) for i in rng.choice(60, 12, replace=False)]  # fmt: skip
    music = plays_source()
    music.files = {"plays.csv": Table(["user", "item", "plays", "timestamp"], plays, ids=("user", "item"),
                                      numeric=("plays", "timestamp"))}  # fmt: skip
    overrides = [
        "task=music",
        "model=pop",
        "data=plays",
        "data.interactions=plays.csv",
        "task.min_eval_users=2",
    ]
    cases += [("plays", overrides, c) for c in sample(table_cases(music, 60, SEED), CLI_CASES["plays"], SEED)]
    return cases


def _cell(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


# Values the config check lets through that stress what comes after it: tiny, extreme or degenerate data
CLI_CONFIG = {
    "abuse": ["seed=4294967296", "seed=0", "data.n_users=1", "data.n_users=2", "data.sessions_per_user=1",
              "data.bot_share=0", "data.bot_share=0.99", "lr=1e3", "lr=1e-300", "task.split.ratios.train=0.01",
              "model.num_leaves=2", "model.num_boost_round=1", "data.mouse_actions=[0,0]", "data.mouse_actions=[3,1]",
              "data.typing_bursts=[0,0]"],
    "music": ["task.ks=[1]", "data.n_items=1", "data.n_users=1", "data.new_item_share=0",
              "data.new_item_boost=1e308", "data.taste_concentration=1e-300", "data.popularity_exponent=0",
              "task.split.method=leave_last_out", "model.factors=1", "task.filter.min_user_items=1000"],
}  # fmt: skip
CLI_CASES = {"events": 6, "plays": 5, "config": 6}


def cli_config_cases() -> list[tuple[str, list[str]]]:
    cases = [(task, value) for task, values in CLI_CONFIG.items() for value in values]
    picked = random.Random(f"{SEED}:cli config").sample(cases, CLI_CASES["config"])
    return [
        (f"config: {value}", [*(["task=music"] if task == "music" else []), *SMALL[task], value])
        for task, value in picked
    ]


@pytest.mark.slow
def test_a_sample_through_the_cli_exits_2_in_one_line_or_runs(tmp_path, tracking_uri):
    failures = []
    runs = [(kind, overrides, case) for kind, overrides, case in cli_file_cases()]
    runs += [(kind, overrides, None) for kind, overrides in cli_config_cases()]
    for i, (source, overrides, case) in enumerate(runs):
        cwd = tmp_path / str(i)
        kind = case.kind if case is not None else source
        if case is not None:
            paths = case.write(cwd)
            overrides = [_point_at(o, paths) for o in overrides]
        else:
            cwd.mkdir()
        result = run_airush(overrides, cwd, tracking_uri, timeout=600)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        held = (result.returncode == 0) or (
            result.returncode == 2 and len(lines) == 1 and lines[0].startswith("airush: error: ")
        )
        TALLY[f"CLI: {kind}"]["tried"] += 1
        TALLY[f"CLI: {kind}"]["accepted" if result.returncode == 0 else "refused" if held else "bug"] += 1
        if not held:
            failures.append(
                f"{' '.join(overrides)} [{kind}]: exit {result.returncode}\n{result.stderr[-1500:]}"
            )
    assert not failures, f"AIRUSH_FUZZ_SEED={SEED}:\n" + "\n\n".join(failures)


def _point_at(override: str, paths: dict[str, Path]) -> str:
    """`data.events=events.csv` -> the file the case wrote (its suffix may have changed)."""
    key, _, value = override.partition("=")
    return f"{key}={paths[value]}" if value in paths else override


@pytest.mark.parametrize("name", [*SOURCES, "melon"])
def test_every_source_starts_from_valid_input(name, tmp_path):
    """Else every mutation would be refused for the base's own fault, and the fuzz would test nothing."""
    import json

    if name == "melon":
        files = {file: json.dumps(records).encode() for file, records in melon_files().items()}
        load = melon_load
    else:
        source = SOURCES[name][0]()
        files = {file: table.text().encode(table.encoding) for file, table in source.files.items()}
        load = source.load
    paths = {file: tmp_path / file for file in files}
    for file, content in files.items():
        paths[file].parent.mkdir(parents=True, exist_ok=True)
        paths[file].write_bytes(content)
    assert attempt(lambda: load(paths, tmp_path), tmp_path) == ("accepted", "")


def test_the_fuzz_covers_enough_inputs():
    cases = sum(n for _, n in SOURCES.values()) + MELON_CASES + CONFIG_CASES
    assert cases >= 200
    kinds = {case.kind for name, (build, n) in SOURCES.items() for case in table_cases(build(), n, SEED)}
    assert len(kinds) >= 30, sorted(kinds)


def tally_table() -> list[str]:
    """The run's cases by kind: tried, held (refused in one line + accepted as valid), and the split."""
    rows = sorted(TALLY.items(), key=lambda item: (item[0].startswith(("config", "CLI")), item[0]))
    width = max(len(kind) for kind, _ in rows)
    lines = [f"{'kind':<{width}}  tried  held  refused  accepted  bugs"]
    for kind, n in rows:
        held = n["refused"] + n["accepted"]
        lines.append(
            f"{kind:<{width}}  {n['tried']:>5}  {held:>4}  {n['refused']:>7}  {n['accepted']:>8}  {n['bug']:>4}"
        )
    total = Counter()
    for n in TALLY.values():
        total.update(n)
    held = total["refused"] + total["accepted"]
    lines.append(
        f"{'all':<{width}}  {total['tried']:>5}  {held:>4}  {total['refused']:>7}  {total['accepted']:>8}  {total['bug']:>4}"
    )
    return lines
