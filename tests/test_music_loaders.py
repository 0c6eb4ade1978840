"""Melon playlists and MovieLens ratings: exact loads of small published-format fixtures, one-line errors."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from airush.errors import ConfigError, DataError
from airush.music.data import json_records, movielens
from airush.music.data.melon import MelonPlaylists
from airush.music.data.movielens import MovieLens

from conftest import run_airush

FIXTURES = Path(__file__).parent / "fixtures"
MELON = FIXTURES / "melon"
ML = FIXTURES / "movielens"


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def pairs(plays) -> dict[tuple, tuple[float, int]]:
    """(user id, item id) in the source's own ids -> (plays, timestamp)."""
    frame = plays.interactions
    return {
        (plays.user_ids[u].item(), plays.item_ids[i].item()): (p, t)
        for u, i, p, t in zip(frame["user"], frame["item"], frame["plays"], frame["timestamp"], strict=True)
    }


def check_schema(plays) -> None:
    frame = plays.interactions
    assert list(frame.columns) == ["user", "item", "plays", "timestamp"]
    assert all(str(frame[c].dtype) == "int64" for c in ("user", "item", "timestamp"))
    assert list(plays.items.columns) == ["item", "artist", "album", "genre", "year"]
    assert (plays.items["item"].to_numpy() == np.arange(plays.n_items)).all()
    assert (np.diff(plays.user_ids) > 0).all() and (np.diff(plays.item_ids) > 0).all()
    keys = frame["user"].to_numpy() * plays.n_items + frame["item"].to_numpy()
    assert (np.diff(keys) > 0).all()  # sorted by (user, item), one row per pair
    assert plays.item_tags.shape[0] == plays.n_items
    for column in ("artist", "album", "genre"):  # dense codes: 0..k-1 all used, -1 for unknown
        codes = plays.items[column].to_numpy()
        assert set(codes[codes >= 0]) == set(range(codes.max() + 1))


# --- Melon ------------------------------------------------------------------------------------------------


def expected_melon_tags(meta: list[dict], item_ids: np.ndarray) -> np.ndarray:
    """items x (genres, detailed genres, artists) counts, written out with plain loops."""
    by_id = {song["id"]: song for song in meta}
    songs = [by_id[i] for i in item_ids.tolist()]
    blocks = []
    for key in ("song_gn_gnr_basket", "song_gn_dtl_gnr_basket", "artist_id_basket"):
        names = sorted({value for song in songs for value in song[key]})
        block = np.zeros((len(songs), len(names)), np.float32)
        for row, song in enumerate(songs):
            for value in song[key]:
                block[row, names.index(value)] += 1
        blocks.append(block)
    return np.hstack(blocks)


def test_melon_fixture_loads_exactly():
    plays = MelonPlaylists(str(MELON)).load()
    check_schema(plays)
    train, meta = read_json(MELON / "train.json"), read_json(MELON / "song_meta.json")
    seoul = ZoneInfo("Asia/Seoul")
    expected = {
        (p["id"], song): (1.0, int(datetime.strptime(p["updt_date"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=seoul).timestamp()))
        for p in train
        for song in p["songs"]
    }  # fmt: skip
    assert pairs(plays) == expected
    assert plays.user_ids.tolist() == sorted(p["id"] for p in train)  # the empty playlist is a user too
    assert plays.item_ids.tolist() == sorted({song for p in train for song in p["songs"]})
    assert (plays.n_users, plays.n_items, len(plays.interactions)) == (30, 148, 350)
    # by hand: playlist 61281 lists song 1 twice (counted once); 2013-12-19 18:36:19 KST = 09:36:19 UTC
    first = plays.interactions[plays.interactions["user"] == 0]
    assert plays.user_ids[0] == 61281 and len(first) == 6
    assert set(first["timestamp"]) == {1387445779}
    empty = [p["id"] for p in train if not p["songs"]]
    assert (
        len(empty) == 1 and not (plays.interactions["user"] == plays.user_ids.tolist().index(empty[0])).any()
    )

    by_id = {song["id"]: song for song in meta}
    items = plays.items.set_index(plays.item_ids)
    for column, key in (
        ("album", "album_id"),
        ("artist", "artist_id_basket"),
        ("genre", "song_gn_gnr_basket"),
    ):
        raw = [by_id[i][key] for i in plays.item_ids.tolist()]
        raw = [(v[0] if v else None) if isinstance(v, list) else v for v in raw]
        names = sorted({v for v in raw if v is not None})
        assert items[column].tolist() == [names.index(v) if v is not None else -1 for v in raw]
    assert items.loc[0, ["year", "genre"]].tolist() == [2014, sorted({by_id[i]["song_gn_gnr_basket"][0] for i in plays.item_ids.tolist() if by_id[i]["song_gn_gnr_basket"]}).index("GN0900")]  # fmt: skip
    assert items.loc[1, "year"] == 2005  # "20050000": month and day unknown, year known
    assert items.loc[6, ["genre", "year"]].tolist() == [-1, -1]  # empty genre basket, "00000000"
    assert (items["year"] == -1).sum() == sum(
        by_id[i]["issue_date"] == "00000000" for i in plays.item_ids.tolist()
    )
    tags = plays.item_tags.toarray()
    assert np.array_equal(tags, expected_melon_tags(meta, plays.item_ids))
    assert tags[1].sum() == 7  # song 1: 2 genres, 3 detailed genres, 2 artists


def test_melon_more_playlist_files_and_all_songs():
    plays = MelonPlaylists(str(MELON), playlists=["train.json", "val.json"], all_songs=True).load()
    check_schema(plays)
    val, meta = read_json(MELON / "val.json"), read_json(MELON / "song_meta.json")
    assert plays.n_users == 35 and plays.n_items == len(meta) == 200
    assert plays.item_ids.tolist() == sorted(song["id"] for song in meta)
    counts = np.bincount(plays.interactions["user"], minlength=plays.n_users)
    silent = {plays.user_ids[u].item() for u in np.flatnonzero(counts == 0)}
    assert {p["id"] for p in val if not p["songs"]} <= silent and len(silent) == 3
    assert np.array_equal(plays.item_tags.toarray(), expected_melon_tags(meta, plays.item_ids))


def test_melon_streaming_window_and_batches_do_not_change_the_result(monkeypatch):
    whole = MelonPlaylists(str(MELON), playlists=["train.json", "val.json"]).load()
    monkeypatch.setattr(json_records, "CHUNK_CHARS", 64)  # records straddle every window edge
    monkeypatch.setattr(json_records, "BATCH_RECORDS", 7)
    streamed = MelonPlaylists(str(MELON), playlists=["train.json", "val.json"]).load()
    assert whole.interactions.equals(streamed.interactions) and whole.items.equals(streamed.items)
    assert (
        np.array_equal(whole.user_ids, streamed.user_ids) and (whole.item_tags != streamed.item_tags).nnz == 0
    )


def melon_copy(tmp_path: Path, edit_playlists=None, edit_meta=None, raw=None) -> Path:
    root = tmp_path / "melon"
    shutil.copytree(MELON, root)
    for name, edit in (("train.json", edit_playlists), ("song_meta.json", edit_meta)):
        if edit:
            records = read_json(root / name)
            edit(records)
            (root / name).write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    for name, text in (raw or {}).items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def set_key(index, key, value):
    return lambda records: records[index].__setitem__(key, value)


MELON_ERRORS = [
    (
        {"edit_playlists": set_key(2, "songs", [0, 999_999])},
        "train.json: record 3 (id 63237), key 'songs': song id 999999 is not in song_meta.json",
    ),
    (
        {"edit_playlists": lambda r: r[4].pop("updt_date")},
        "train.json: record 5 (id 64215): missing key 'updt_date'",
    ),
    (
        {"edit_playlists": set_key(5, "songs", "1,2")},
        "record 6 (id 66171), key 'songs': expected a list of song ids (integers), got \"1,2\"",
    ),
    (
        {"edit_playlists": set_key(5, "songs", [1, "6"])},
        "record 6 (id 66171), key 'songs': expected a list of song ids (integers), got an element \"6\"",
    ),
    (
        {"edit_playlists": set_key(5, "songs", [True])},
        "key 'songs': expected a list of song ids (integers), got an element true",
    ),
    (
        {"edit_playlists": set_key(0, "id", "61281")},
        "train.json: record 1, key 'id': expected an integer playlist id, got \"61281\"",
    ),
    (
        {"edit_playlists": set_key(1, "updt_date", "2013-13-19 18:36:19.000")},
        "record 2 (id 62259), key 'updt_date': expected a date like",
    ),
    (
        {"edit_playlists": set_key(1, "updt_date", "2013-12-19T18:36:19+09:00")},
        "record 2 (id 62259), key 'updt_date'",
    ),
    (
        {"edit_playlists": set_key(1, "id", 61281)},
        "train.json: record 2, key 'id': playlist id 61281 already in record 1",
    ),
    (
        {"edit_playlists": set_key(1, "songs", [2**64])},
        "record 2 (id 62259), key 'songs': an id beyond 64 bits",
    ),
    (
        {"edit_meta": lambda r: r[3].pop("album_id")},
        "song_meta.json: record 4 (id 11): missing key 'album_id'",
    ),
    (
        {"edit_meta": set_key(3, "song_gn_gnr_basket", [900])},
        "record 4 (id 11), key 'song_gn_gnr_basket': expected a list of genre codes (strings), got an element 900",
    ),
    (
        {"edit_meta": set_key(3, "artist_id_basket", None)},
        "record 4 (id 11), key 'artist_id_basket': expected a list of artist ids (integers), got null",
    ),
    (
        {"edit_meta": set_key(3, "issue_date", 20140512)},
        "record 4 (id 11), key 'issue_date': expected a string 'YYYYMMDD', got 20140512",
    ),
    (
        {"edit_meta": set_key(3, "id", 1)},
        "song_meta.json: record 4, key 'id': song id 1 listed twice (first at record 2)",
    ),
    (
        {
            "raw": {
                "train.json": '[{"id": 1, "songs": [0], "updt_date": "2013-12-19 18:36:19.000"},\n {"id": 2 "songs": []}]'
            }
        },
        "train.json: malformed JSON at line 2 column 11: Expecting ',' delimiter",
    ),
    (
        {"raw": {"train.json": '[{"id": 1, "songs": [0], "updt_date": "2013-12-19 18:36:19.000"}'}},
        "train.json: malformed JSON at line 1 column 65: expected ',' or ']' after a record",
    ),
    (
        {"raw": {"train.json": '[{"id": 1, "songs": [0], "updt_date": "2013-12-19 18:36:19.000"}] []'}},
        "extra data after the array",
    ),
    (
        {"raw": {"train.json": '[{"id": 1, "songs": [0], "updt_date": "2013-12-19 18:36:19.000"}, 7]'}},
        "train.json: record 2: expected a JSON object, got '7]'",
    ),
    ({"raw": {"train.json": '{"id": 1}'}}, "train.json: expected a JSON array of records"),
    ({"raw": {"train.json": " \n"}}, "train.json: is empty"),
    ({"raw": {"train.json": "[]"}}, "train.json: has no records (an empty JSON array)"),
    (
        {"raw": {"train.json": '[{"id": 1, "songs": [], "updt_date": "2013-12-19 18:36:19.000"}]'}},
        "no playlist has any songs",
    ),
]


@pytest.mark.parametrize(("edits", "expected"), MELON_ERRORS)
def test_bad_melon_files_are_one_line(tmp_path, edits, expected):
    root = melon_copy(tmp_path, **edits)
    with pytest.raises(DataError) as err:
        MelonPlaylists(str(root)).load()
    message = str(err.value)
    assert "\n" not in message and expected in message, message


def test_melon_errors_name_the_right_file_and_record_across_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(json_records, "BATCH_RECORDS", 4)
    monkeypatch.setattr(json_records, "CHUNK_CHARS", 100)
    root = melon_copy(tmp_path, edit_meta=set_key(150, "song_gn_dtl_gnr_basket", "GN0101"))
    with pytest.raises(
        DataError, match=r"song_meta\.json: record 151 \(id \d+\), key 'song_gn_dtl_gnr_basket'"
    ):
        MelonPlaylists(str(root)).load()
    val = read_json(MELON / "val.json")
    val[3]["id"] = 64863  # also a train playlist: record 20 of train.json
    (root / "val.json").write_text(json.dumps(val), encoding="utf-8")
    with pytest.raises(
        DataError,
        match=r"val\.json: record 4, key 'id': playlist id 64863 already in record 20 of .*train\.json",
    ):
        MelonPlaylists(str(root), playlists=["train.json", "val.json"]).load()
    with pytest.raises(DataError, match=r"nope\.json: file not found"):
        MelonPlaylists(str(root), playlists=["nope.json"]).load()
    with pytest.raises(ConfigError, match=r"data\.playlists is empty"):
        MelonPlaylists(str(root), playlists=[]).load()
    with pytest.raises(DataError, match="Melon folder not found"):
        MelonPlaylists(str(tmp_path / "nowhere")).load()


# --- MovieLens --------------------------------------------------------------------------------------------


def raw_ratings(folder: Path) -> list[tuple[int, int, float, int]]:
    """(user, movie, rating, timestamp) per line, parsed with the csv module / plain splits."""
    if (folder / "u.data").exists():
        lines = (folder / "u.data").read_text().splitlines()
        return [(int(u), int(m), float(r), int(t)) for u, m, r, t in (line.split("\t") for line in lines)]
    if (folder / "ratings.dat").exists():
        lines = (folder / "ratings.dat").read_text().splitlines()
        return [(int(u), int(m), float(r), int(t)) for u, m, r, t in (line.split("::") for line in lines)]
    with open(folder / "ratings.csv", newline="") as handle:
        return [(int(r["userId"]), int(r["movieId"]), float(r["rating"]), int(r["timestamp"])) for r in csv.DictReader(handle)]  # fmt: skip


def raw_movies(folder: Path) -> dict[int, tuple[str, list[str]]]:
    """movie id -> (title, genres as listed)."""
    if (folder / "u.item").exists():
        genres = [line.split("|")[0] for line in (folder / "u.genre").read_text().splitlines() if line]
        rows = [line.split("|") for line in (folder / "u.item").read_text(encoding="latin-1").splitlines()]
        return {
            int(r[0]): (r[1], [g for g, flag in zip(genres, r[5:], strict=True) if flag == "1"]) for r in rows
        }
    if (folder / "movies.dat").exists():
        rows = [
            line.split("::") for line in (folder / "movies.dat").read_text(encoding="latin-1").splitlines()
        ]
        return {int(i): (t, g.split("|")) for i, t, g in rows}
    with open(folder / "movies.csv", newline="", encoding="utf-8") as handle:
        return {int(r["movieId"]): (r["title"], r["genres"].split("|")) for r in csv.DictReader(handle)}


LAYOUT_FOLDERS = ["ml-100k", "ml-1m", "ml-latest-small"]


@pytest.mark.parametrize("folder", LAYOUT_FOLDERS)
@pytest.mark.parametrize("min_rating", [4.0, 3.5, None])
def test_movielens_layouts_load_exactly(folder, min_rating):
    plays = MovieLens(str(ML / folder), min_rating=min_rating).load()
    check_schema(plays)
    ratings = raw_ratings(ML / folder)
    kept = [r for r in ratings if min_rating is None or r[2] >= min_rating]
    assert pairs(plays) == {(u, m): (r, t) for u, m, r, t in kept}
    assert plays.user_ids.tolist() == sorted({r[0] for r in kept})
    assert plays.item_ids.tolist() == sorted({r[1] for r in kept})
    movies = raw_movies(ML / folder)
    listed = [
        [g for g in movies[i][1] if g not in ("unknown", "(no genres listed)")]
        for i in plays.item_ids.tolist()
    ]
    firsts = sorted({genres[0] for genres in listed if genres})
    assert plays.items["genre"].tolist() == [firsts.index(g[0]) if g else -1 for g in listed]
    assert (plays.items[["artist", "album"]] == -1).all(axis=None)
    genre_names = sorted({g for genres in listed for g in genres})
    genre_block = plays.item_tags[:, : len(genre_names)].toarray()
    assert np.array_equal(genre_block, [[float(g in genres) for g in genre_names] for genres in listed])


def test_movielens_years_titles_and_tags_by_hand():
    items = lambda plays: plays.items.set_index(plays.item_ids)  # noqa: E731
    ml100k = items(MovieLens(str(ML / "ml-100k"), min_rating=None).load())
    assert ml100k.loc[1, "year"] == 1995 and ml100k.loc[18, "year"] == 1937
    assert ml100k.loc[26, ["genre", "year"]].tolist() == [-1, -1]  # "unknown": no title year, no release date
    assert ml100k.loc[27, "year"] == 1997  # blank release date, year from the title
    ml1m = items(MovieLens(str(ML / "ml-1m"), min_rating=None).load())
    assert ml1m.loc[73, "year"] == 1995 and ml1m.loc[260, "year"] == 1977  # latin-1 title; title with ":"
    plays = MovieLens(str(ML / "ml-latest-small"), min_rating=None, all_items=True).load()
    latest = items(plays)
    assert plays.n_items == 22 and 143410 in plays.item_ids  # all_items: the unrated movie is an item too
    assert latest.loc[26958, "year"] == 1998  # """Great Performances"" Cats (1998)"
    assert latest.loc[40697, "year"] == -1 and latest.loc[171495, "year"] == 1975  # no year; a series' range
    assert latest.loc[117192, ["genre", "year"]].tolist() == [-1, 2013]  # (no genres listed); trailing space
    names = ["classic", "dark comedy", "dark, gritty", "fantasy", "funny", "musical", "philosophy", "pixar",
             "quentin tarantino", "sci-fi", "tolkien", "war"]  # fmt: skip
    tags = plays.item_tags[:, -len(names) :].toarray()  # user tags follow the genres: sorted, lower-cased
    row = {
        movie: dict(zip(names, tags[plays.item_ids.tolist().index(movie)], strict=True))
        for movie in (1, 2571, 143410)
    }
    assert row[1] == {**dict.fromkeys(names, 0.0), "pixar": 2.0, "funny": 1.0}  # "pixar" and "Pixar "
    assert row[2571] == {**dict.fromkeys(names, 0.0), "philosophy": 1.0, "dark, gritty": 1.0}
    assert row[143410] == {**dict.fromkeys(names, 0.0), "war": 1.0} and tags.sum() == 14
    rated_only = MovieLens(str(ML / "ml-latest-small"), min_rating=None).load()
    assert 143410 not in rated_only.item_ids  # and its one tag ("war") with it
    assert rated_only.item_tags.shape[1] == plays.item_tags.shape[1] - 1
    assert rated_only.item_tags.sum() == plays.item_tags.sum() - 1


def test_movielens_weights_threshold_and_both_parse_paths(monkeypatch):
    kept = MovieLens(str(ML / "ml-1m"), min_rating=4, weight="one").load()
    assert set(kept.interactions["plays"]) == {1.0}
    assert len(kept.interactions) == sum(r[2] >= 4 for r in raw_ratings(ML / "ml-1m"))
    with pytest.raises(ConfigError, match=r"data\.min_rating=6 keeps none of the ratings"):
        MovieLens(str(ML / "ml-1m"), min_rating=6).load()
    with pytest.raises(ConfigError, match=r"data\.weight 'count' unknown; choose from: rating, one"):
        MovieLens(str(ML / "ml-1m"), weight="count").load()
    for folder in LAYOUT_FOLDERS:  # the text parse (used to name bad lines) reads what the typed one reads
        fast = MovieLens(str(ML / folder), min_rating=None).load()
        with monkeypatch.context() as patch:
            patch.setattr(movielens, "_ratings_typed", lambda path, layout: None)
            text = MovieLens(str(ML / folder), min_rating=None).load()
        assert fast.interactions.equals(text.interactions)


def test_movielens_layout_is_found_in_root_or_its_one_sub_folder(tmp_path):
    with pytest.raises(
        DataError, match=r"holds several MovieLens folders \(ml-100k, ml-1m, ml-latest-small\)"
    ):
        MovieLens(str(ML)).load()
    shutil.copytree(ML / "ml-1m", tmp_path / "movielens" / "ml-1m")
    found = MovieLens(str(tmp_path / "movielens")).load()
    assert found.interactions.equals(MovieLens(str(ML / "ml-1m")).load().interactions)
    shutil.copy(ML / "ml-100k" / "u.data", tmp_path / "movielens" / "ml-1m")
    with pytest.raises(DataError, match=r"ml-1m: holds both u\.data and ratings\.dat"):
        MovieLens(str(tmp_path / "movielens")).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        DataError, match=r"no MovieLens ratings file \(u\.data or ratings\.dat or ratings\.csv\)"
    ):
        MovieLens(str(tmp_path / "empty")).load()
    with pytest.raises(DataError, match="MovieLens folder not found"):
        MovieLens(str(tmp_path / "nowhere")).load()


def ml_copy(tmp_path: Path, folder: str, name: str, edit) -> Path:
    root = tmp_path / folder
    shutil.copytree(ML / folder, root)
    encoding = "latin-1" if name in ("u.item", "movies.dat") else "utf-8"
    lines = (root / name).read_text(encoding=encoding).split("\n")
    (root / name).write_text("\n".join(edit(lines)), encoding=encoding)
    return root


def replace_line(index: int, text: str):
    return lambda lines: [*lines[:index], text, *lines[index + 1 :]]


ML_ERRORS = [
    (
        "ml-latest-small",
        "ratings.csv",
        replace_line(5, "3,50,-4.0,964982703"),
        "ratings.csv, row 6, column 'rating': expected a finite number > 0, got '-4.0'",
    ),
    (
        "ml-latest-small",
        "ratings.csv",
        replace_line(5, "3,50,4.0"),
        "ratings.csv, row 6, column 'timestamp': expected an integer >= 0, got ''",
    ),
    (
        "ml-latest-small",
        "ratings.csv",
        replace_line(0, "userId,movieId,score,timestamp"),
        "ratings.csv, row 1: missing column(s) rating",
    ),
    (
        "ml-latest-small",
        "ratings.csv",
        replace_line(7, "3,999,4.0,964982703"),
        "ratings.csv, row 8, column 'movieId': movie 999 is not in movies.csv (1 ratings of unknown movies in all)",
    ),
    (
        "ml-latest-small",
        "ratings.csv",
        lambda lines: [*lines[:-1], lines[1], ""],
        "ratings.csv, row 266: user 1 rated movie 1 twice",
    ),
    ("ml-latest-small", "ratings.csv", lambda lines: lines[:1], "ratings.csv: has a header but no data rows"),
    ("ml-latest-small", "ratings.csv", lambda lines: [], "ratings.csv: is empty"),
    (
        "ml-latest-small",
        "movies.csv",
        lambda lines: [*lines[:-1], lines[2], ""],
        "movies.csv, row 24, column 'movieId': movie 2 listed twice",
    ),
    (
        "ml-latest-small",
        "tags.csv",
        replace_line(3, "7,77777,funny,1445716948"),
        "tags.csv, row 4, column 'movieId': movie 77777 is not in movies.csv",
    ),
    (
        "ml-100k",
        "u.data",
        replace_line(9, "3\t17\t4"),
        "u.data, row 10: expected 4 fields (user id, item id, rating, timestamp) separated by '\\t'",
    ),
    (
        "ml-100k",
        "u.data",
        replace_line(9, "3\tseventeen\t4\t881171400"),
        "u.data, row 10, column 'item id': expected an integer >= 0, got 'seventeen'",
    ),
    ("ml-100k", "u.data", replace_line(2, ""), "u.data, row 3: expected 4 fields"),  # a blank line mid-file
    (
        "ml-100k",
        "u.item",
        lambda lines: [lines[0].replace("|0|0|0|1|", "|0|0|0|2|", 1), *lines[1:]],
        "u.item, row 1, column 'Animation': expected a 0/1 genre flag, got 2",
    ),
    (
        "ml-1m",
        "ratings.dat",
        replace_line(4, "2::1193:5::978300760"),
        "ratings.dat, row 5: expected 4 fields (UserID, MovieID, Rating, Timestamp) separated by '::'",
    ),
    (
        "ml-1m",
        "ratings.dat",
        replace_line(4, "2::3::0::978300760"),
        "ratings.dat, row 5, column 'Rating': expected a finite number > 0, got '0'",
    ),
    (
        "ml-1m",
        "movies.dat",
        replace_line(3, "5::Father of the Bride Part II (1995)"),
        "movies.dat, row 4: expected 3 fields (MovieID, Title, Genres) separated by '::'",
    ),
]


@pytest.mark.parametrize(("folder", "name", "edit", "expected"), ML_ERRORS)
def test_bad_movielens_files_are_one_line(tmp_path, folder, name, edit, expected):
    root = ml_copy(tmp_path, folder, name, edit)
    with pytest.raises(DataError) as err:
        MovieLens(str(root), min_rating=None).load()
    message = str(err.value)
    assert "\n" not in message and expected in message, message


def test_movielens_trailing_blank_lines_and_dat_tags_are_read(tmp_path):
    root = ml_copy(tmp_path, "ml-1m", "ratings.dat", lambda lines: [*lines, "", ""])
    (root / "tags.dat").write_text(
        "5::260::Space opera::1162160236\n7::260::space opera::1162160500\n3::73::musical\n"
    )
    with pytest.raises(
        DataError, match=r"tags\.dat, row 3: expected 4 fields \(UserID, MovieID, Tag, Timestamp\)"
    ):
        MovieLens(str(root)).load()
    (root / "tags.dat").write_text(
        "5::260::Space opera::1162160236\n7::260::space opera: the best::1162160500\n"
    )
    plays = MovieLens(str(root), min_rating=None).load()
    assert len(plays.interactions) == len(raw_ratings(ML / "ml-1m"))
    star_wars = plays.item_tags[plays.item_ids.tolist().index(260)].toarray().ravel()
    assert plays.item_tags.shape[1] == 13 + 2 and star_wars[-2:].tolist() == [1.0, 1.0]


# --- the CLI on the fixtures --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "data",
    [
        ["data=melon", f"data.root={MELON}", "data.playlists=[train.json,val.json]"],
        ["data=movielens", f"data.root={ML / 'ml-100k'}"],
        ["data=movielens", f"data.root={ML / 'ml-latest-small'}", "data.min_rating=null", "data.weight=one"],
    ],
)
def test_cli_trains_pop_and_als_on_the_fixtures(tmp_path, tracking_uri, data):
    import mlflow

    for model in ("pop", "als"):
        args = ["task=music", *data, f"model={model}", "task.split.min_user_interactions=3", "seed=3"]
        result = run_airush(args, tmp_path, tracking_uri)
        assert result.returncode == 0, result.stderr[-2000:]
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("music").experiment_id])
    assert sorted(r.data.tags["airush.model"] for r in runs) == ["als", "pop"]
    assert all(r.data.metrics["users_evaluated"] > 10 for r in runs)


@pytest.mark.slow
def test_cli_refuses_a_bad_melon_file_in_one_line(tmp_path, tracking_uri):
    root = melon_copy(tmp_path, edit_playlists=set_key(2, "songs", [0, 999_999]))
    result = run_airush(
        ["task=music", "data=melon", f"data.root={root}", "model=pop"], tmp_path, tracking_uri
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"airush: error: {root / 'train.json'}: record 3 (id 63237), key 'songs': song id 999999 is not in "
        "song_meta.json (1 unknown song entries in all)"
    ]
