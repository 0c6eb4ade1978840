"""Music loaders: user CSV/Parquet files with one-line errors, and Last.fm HetRec 2K as published."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from airush.errors import ConfigError, DataError
from airush.music.data.files import InteractionFiles
from airush.music.data.lastfm import LastFMHetRec

from conftest import SHARED_DATA, run_airush

LASTFM = SHARED_DATA / "lastfm-hetrec2k"
needs_lastfm = pytest.mark.skipif(not LASTFM.is_dir(), reason=f"Last.fm HetRec 2K not found at {LASTFM}")


def write_plays(tmp_path, n_users=60, n_items=80, seed=0):
    rng = np.random.default_rng(seed)
    rows = [
        (f"u{u}", f"t{i}", int(rng.integers(1, 20)), 1_600_000_000 + int(rng.integers(0, 10**6)))
        for u in range(n_users)
        for i in rng.choice(n_items, int(rng.integers(6, 15)), replace=False)
    ]
    plays = pd.DataFrame(rows, columns=["user", "item", "plays", "timestamp"])
    items = pd.DataFrame(
        {
            "item": [f"t{i}" for i in range(n_items + 5)],  # 5 items nobody played: cold start
            "artist": [f"a{i % 9}" for i in range(n_items + 5)],
            "album": [f"al{i % 17}" for i in range(n_items + 5)],
            "genre": [["rock", "jazz", "pop", ""][i % 4] for i in range(n_items + 5)],
            "year": [str(1990 + i % 30) if i % 7 else "" for i in range(n_items + 5)],
            "tags": [f"rock|indie{i % 3}" for i in range(n_items + 5)],
        }
    )
    plays.to_csv(tmp_path / "plays.csv", index=False)
    items.to_csv(tmp_path / "items.csv", index=False)
    return plays, items


def test_csv_and_parquet_load_the_same(tmp_path):
    plays, items = write_plays(tmp_path)
    plays.to_parquet(tmp_path / "plays.parquet", index=False)
    from_csv = InteractionFiles(str(tmp_path / "plays.csv"), str(tmp_path / "items.csv")).load()
    from_parquet = InteractionFiles(str(tmp_path / "plays.parquet"), str(tmp_path / "items.csv")).load()
    pd.testing.assert_frame_equal(from_csv.interactions, from_parquet.interactions)
    assert from_csv.n_users == plays["user"].nunique()
    assert from_csv.n_items == len(items)  # cold items are in the catalogue
    assert from_csv.item_tags.shape == (len(items), 4)
    assert (from_csv.items["genre"] == -1).sum() == sum(1 for i in range(len(items)) if i % 4 == 3)
    assert (from_csv.items["year"] == -1).sum() == sum(1 for i in range(len(items)) if i % 7 == 0)
    # dense ids map back to the file's own ids
    loaded_pairs = {
        (from_csv.user_ids[u], from_csv.item_ids[i])
        for u, i in from_csv.interactions[["user", "item"]].itertuples(index=False)
    }
    assert loaded_pairs == set(zip(plays["user"], plays["item"], strict=True))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p, i: p.drop(columns="item"), ["plays.csv", "row 1", "missing column(s) item"]),
        (lambda p, i: p.rename(columns={"plays": "playz"}), ["plays.csv", "unexpected column(s) playz"]),
        (
            lambda p, i: p.assign(plays=p["plays"].where(p.index != 4, -3)),
            ["plays.csv", "row 6", "'plays'", "> 0"],
        ),
        (
            lambda p, i: p.assign(plays=p["plays"].astype(object).where(p.index != 2, "many")),
            ["row 4", "'plays'"],
        ),
        (lambda p, i: p.assign(user=p["user"].where(p.index != 0, "")), ["row 2", "'user'", "blank"]),
        (
            lambda p, i: p.assign(timestamp=p["timestamp"].astype(object).where(p.index != 3, "1.5")),
            ["row 5", "'timestamp'"],
        ),
        (lambda p, i: p.iloc[:0], ["plays.csv", "no data rows"]),
    ],
)
def test_bad_interactions_file_is_one_line(tmp_path, mutate, expected):
    plays, items = write_plays(tmp_path)
    mutate(plays, items).to_csv(tmp_path / "plays.csv", index=False)
    with pytest.raises(DataError) as err:
        InteractionFiles(str(tmp_path / "plays.csv")).load()
    message = str(err.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message


def test_metadata_must_cover_played_items_and_list_each_once(tmp_path):
    plays, items = write_plays(tmp_path)
    items[items["item"] != plays["item"].iloc[3]].to_csv(tmp_path / "items.csv", index=False)
    with pytest.raises(DataError, match=r"plays.csv, row 5, column 'item': \d+ played item\(s\) missing"):
        InteractionFiles(str(tmp_path / "plays.csv"), str(tmp_path / "items.csv")).load()
    pd.concat([items, items.iloc[[2]]]).to_csv(tmp_path / "items.csv", index=False)
    with pytest.raises(
        DataError, match=rf"items.csv, row {len(items) + 2}, column 'item': item 't2' listed twice"
    ):
        InteractionFiles(str(tmp_path / "plays.csv"), str(tmp_path / "items.csv")).load()


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        InteractionFiles(str(tmp_path / "nope.csv")).load()
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: is empty"):
        InteractionFiles(str(tmp_path / "empty.csv")).load()


@pytest.mark.slow
def test_cli_runs_on_user_files_and_refuses_bad_ones(tmp_path, tracking_uri):
    write_plays(tmp_path, n_users=150, n_items=120)
    ok = run_airush(
        ["task=music", "data=plays", "data.interactions=plays.csv", "data.items=items.csv"],
        tmp_path,
        tracking_uri,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "ndcg" in ok.stdout
    (tmp_path / "bad.csv").write_text("user,item,plays\nu1,t1,3\nu1,t2,-1\n")
    bad = run_airush(["task=music", "data=plays", "data.interactions=bad.csv"], tmp_path, tracking_uri)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"airush: error: {tmp_path / 'bad.csv'}, row 3, column 'plays': expected a finite number > 0, got '-1'"
    ]


def _k_core_by_hand(plays: pd.DataFrame, min_user_items: int, min_item_users: int) -> set[tuple[str, str]]:
    """The reference: drop rows of too-small users or items, one pandas pass at a time, until nothing changes."""
    while True:
        users = plays.groupby("user")["item"].transform("nunique")
        items = plays.groupby("item")["user"].transform("nunique")
        kept = plays[(users >= min_user_items) & (items >= min_item_users)]
        if len(kept) == len(plays):
            return set(zip(kept["user"], kept["item"], strict=True))
        plays = kept


@pytest.mark.parametrize("minimums", [(0, 0), (10, 0), (0, 9), (10, 9), (14, 12)])
def test_filter_plays_is_the_k_core_with_ids_metadata_and_tags_carried(tmp_path, minimums):
    from airush.music.data import filter_plays

    raw, _ = write_plays(tmp_path)
    loaded = InteractionFiles(str(tmp_path / "plays.csv"), str(tmp_path / "items.csv")).load()
    kept = filter_plays(loaded, *minimums)

    pairs = kept.interactions
    as_source = set(zip(kept.user_ids[pairs["user"]], kept.item_ids[pairs["item"]], strict=True))
    assert as_source == _k_core_by_hand(raw, *minimums)
    assert len(pairs) == len(as_source)  # no row lost or duplicated
    # a minimum of 0 drops nothing on its side, not even the 5 unplayed (cold-start) items
    assert kept.n_items == (loaded.n_items if minimums[1] == 0 else len(set(pairs["item"])))
    assert kept.n_users == (loaded.n_users if minimums[0] == 0 else len(set(pairs["user"])))
    assert set(pairs["user"]) <= set(range(kept.n_users)) and set(pairs["item"]) <= set(range(kept.n_items))
    # each kept item keeps its own metadata row and tag counts
    old_index = {item_id: i for i, item_id in enumerate(loaded.item_ids)}
    old = [old_index[item_id] for item_id in kept.item_ids]
    by_item = loaded.items.set_index("item")
    np.testing.assert_array_equal(kept.items.sort_values("item")["item"], np.arange(kept.n_items))
    np.testing.assert_array_equal(
        kept.items.set_index("item").loc[np.arange(kept.n_items), "artist"], by_item.loc[old, "artist"]
    )
    assert (kept.item_tags != loaded.item_tags[old]).nnz == 0


def test_filter_that_leaves_nothing_is_a_config_error(tmp_path, compose_cfg):
    from airush.music.task import prepare

    write_plays(tmp_path)
    data = ["data=plays", f"data.interactions={tmp_path / 'plays.csv'}", "task.filter.min_user_items=100"]
    with pytest.raises(ConfigError, match=r"task\.filter .* leaves no interactions"):
        prepare(compose_cfg(["task=music", *data]), stages=None)
    with pytest.raises(ConfigError, match=r"task\.filter\.min_users unknown; choose from: min_user_items"):
        prepare(compose_cfg(["task=music", "data=plays", f"data.interactions={tmp_path / 'plays.csv'}",
                             "+task.filter.min_users=3"]), stages=None)  # fmt: skip


def test_missing_lastfm_folder_is_one_line(tmp_path):
    with pytest.raises(DataError, match=r"Last\.fm HetRec folder not found"):
        LastFMHetRec(str(tmp_path / "nowhere")).load()


@needs_lastfm
def test_lastfm_loads_as_published():
    plays = LastFMHetRec(str(LASTFM)).load()
    assert (plays.n_users, plays.n_items, len(plays.interactions)) == (1892, 17632, 92834)
    assert plays.item_ids.max() == 18745  # non-contiguous artist ids, mapped to dense ones
    assert plays.interactions.groupby("user").size().max() == 50
    assert plays.item_tags.shape[0] == plays.n_items and plays.item_tags.nnz > 100_000
    raw = pd.read_csv(LASTFM / "user_artists.dat", sep="\t")
    assert plays.interactions["plays"].sum() == raw["weight"].sum()


MUSIC_MODELS = ("pop", "itemknn", "content", "als", "bpr", "ease", "twotower")


@needs_lastfm
@pytest.mark.slow
def test_every_music_model_runs_on_lastfm_reduced_in_one_sweep(tmp_path, tracking_uri):
    """CI's reduced Last.fm: items with >= 10 listeners (1,530 of 17,632, every user kept), default params."""
    args = ["-m", "task=music", "data=lastfm", f"data.root={LASTFM}", f"model={','.join(MUSIC_MODELS)}",
            "task.filter.min_item_users=10", f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip
    result = run_airush(args, tmp_path, tracking_uri, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("music").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == len(MUSIC_MODELS) + 1 and all(r.info.status == "FINISHED" for r in runs)
    ndcg = {r.data.tags["airush.model"]: r.data.metrics["ndcg_at_10"] for r in children}
    assert set(ndcg) == set(MUSIC_MODELS)
    for run in children:
        assert (run.data.params["dataset.items"], run.data.params["dataset.users"]) == ("1530", "1892")
    # popularity ~0.08 here; every personalised model at least doubles it (measured 0.18-0.26)
    assert all(value > 2 * ndcg["pop"] for model, value in ndcg.items() if model != "pop"), ndcg
    assert 0.05 < ndcg["pop"] < 0.11
