"""MovieLens ratings as published; the layout is found by its ratings file in `root` (or in the one
sub-folder of root that has one, e.g. root/ml-1m/):

- ml-100k: `u.data` (tab-separated user id, item id, rating, timestamp; no header), `u.item` (pipe-separated,
  latin-1: movie id|title|release date|video release date|IMDb URL|a 0/1 flag per genre of `u.genre`);
- ml-1m and ml-10m: `ratings.dat` (UserID::MovieID::Rating::Timestamp), `movies.dat`
  (MovieID::Title::Genres, genres `|`-separated, latin-1), optional `tags.dat` (UserID::MovieID::Tag::Timestamp);
- ml-latest(-small), ml-20m, ml-25m, ml-32m: `ratings.csv` (header userId,movieId,rating,timestamp),
  `movies.csv` (movieId,title,genres; CSV quoting) and optional `tags.csv` (userId,movieId,tag,timestamp).

Ratings become implicit positives: only ratings >= `min_rating` are kept (null keeps all), weighted by the
rating (`weight=rating`) or 1 (`weight=one`); a (user, movie) pair rated twice is an error. Users are the
raters with a kept rating; items the movies with a kept rating, or every movie of the movies file with
`all_items=true` (cold start). Timestamps are unix seconds as published.
items: genre = the first genre listed (dense codes in sorted order of genre names; -1 for "(no genres
listed)" and ml-100k's "unknown"), year from the title's "(1995)" (else ml-100k's release date), artist and
album -1. item_tags: items x (genres, then user tags lower-cased and stripped; blank tags skipped) counts.
Rows in error messages are the file's lines (a header is line 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from airush.data.inputs import resolve_path
from airush.data.tables import integer_column, number_column, read_table
from airush.errors import ConfigError, DataError
from airush.model import check_settings, one_of
from airush.music.data import Plays, PlaySource

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
NO_GENRE = ("", "(no genres listed)", "unknown")
TITLE_YEAR = re.compile(r"\((\d{4})(?:\s*[-–]\s*\d{0,4})?\)\s*$")  # "(1995)", a series' "(2006-2007)"
FREE_TEXT = ("title", "Title", "Tag")  # fields of "::" files that may hold ":"
WEIGHTS = ("rating", "one")


@dataclass(frozen=True)
class Layout:
    name: str
    ratings: str
    movies: str
    tags: str | None
    header: bool  # the CSV layout has header lines; the others have none
    rating_columns: tuple[str, ...]  # as the MovieLens README names them, for error messages
    movie_columns: tuple[str, ...]
    tag_columns: tuple[str, ...] = ()


LAYOUTS = (
    Layout("ml-100k", "u.data", "u.item", None, False, ("user id", "item id", "rating", "timestamp"),
           ("movie id", "title", "release date", "video release date", "IMDb URL")),
    Layout("ml-1m", "ratings.dat", "movies.dat", "tags.dat", False, ("UserID", "MovieID", "Rating", "Timestamp"),
           ("MovieID", "Title", "Genres"), ("UserID", "MovieID", "Tag", "Timestamp")),
    Layout("ml-latest", "ratings.csv", "movies.csv", "tags.csv", True, ("userId", "movieId", "rating", "timestamp"),
           ("movieId", "title", "genres"), ("userId", "movieId", "tag", "timestamp")),
)  # fmt: skip


@dataclass
class Movies:
    path: Path
    ids: np.ndarray  # int64, in file order
    titles: pd.Series
    genre_row: np.ndarray  # (movie row, genre name) pairs, each movie's genres in the order listed
    genre_name: np.ndarray
    release_year: np.ndarray  # int64, -1 unless the file has a release date (ml-100k)


@dataclass
class MovieLens(PlaySource):
    inputs: ClassVar[dict[str, str]] = {"root": "folder"}  # paths the CLI checks first (airush.data.inputs)
    ranges: ClassVar[dict[str, str]] = {"weight": one_of(WEIGHTS)}

    root: str
    min_rating: float | None = 4.0
    weight: str = "rating"
    all_items: bool = False

    def load(self, seed: int = 0, stages=None) -> Plays:
        check_settings("data", self)
        layout, folder = find_layout(resolve_path(self.root))
        bar = stages.stage(f"read {layout.name}", total=3) if stages else None
        step = bar.advance if bar else lambda: None
        ratings_path = folder / layout.ratings
        user, item, rating, timestamp = read_ratings(ratings_path, layout)
        step()
        movies = read_movies(folder / layout.movies, layout)
        step()
        tags_path = folder / layout.tags if layout.tags else None
        tags = read_tags(tags_path, layout) if tags_path and tags_path.is_file() else None
        step()

        movie_row = pd.Index(movies.ids).get_indexer(item)
        if (movie_row < 0).any():
            i, unknown = int(np.flatnonzero(movie_row < 0)[0]), int((movie_row < 0).sum())
            raise DataError(
                f"movie {item[i]} is not in {movies.path.name} ({unknown} ratings of unknown movies in all)",
                path=ratings_path, row=i + _first_row(layout), column=layout.rating_columns[1],
            )  # fmt: skip
        kept = np.ones(len(user), bool) if self.min_rating is None else rating >= float(self.min_rating)
        if not kept.any():
            raise ConfigError(
                f"data.min_rating={self.min_rating} keeps none of the ratings in {ratings_path}"
            )
        user_code, user_ids = pd.factorize(user[kept], sort=True)
        rated = np.bincount(movie_row[kept], minlength=len(movies.ids)) > 0
        catalogue = np.flatnonzero(rated | self.all_items)
        catalogue = catalogue[np.argsort(movies.ids[catalogue], kind="stable")]  # items in movie id order
        item_of_row = np.full(len(movies.ids), -1, dtype=np.int64)
        item_of_row[catalogue] = np.arange(len(catalogue))
        interactions = pd.DataFrame(
            {
                "user": user_code.astype(np.int64),
                "item": item_of_row[movie_row[kept]],
                "plays": rating[kept] if self.weight == "rating" else np.ones(int(kept.sum())),
                "timestamp": timestamp[kept],
            }
        ).sort_values(["user", "item"], ignore_index=True)
        items, item_tags = movie_metadata(movies, catalogue, tags)
        return Plays(interactions, items, np.asarray(user_ids), movies.ids[catalogue], item_tags)


def find_layout(root: Path) -> tuple[Layout, Path]:
    """The layout whose ratings file is in root, or else in the one sub-folder of root that holds one."""
    if not root.is_dir():
        raise DataError("MovieLens folder not found (set data.root=... or AIRUSH_DATA_DIR)", path=root)
    folders = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    found = {folder: [lay for lay in LAYOUTS if (folder / lay.ratings).is_file()] for folder in folders}
    for folder, layouts in found.items():
        if len(layouts) > 1:
            both = " and ".join(lay.ratings for lay in layouts)
            raise DataError(f"holds both {both}: point data.root at a folder with one of them", path=folder)
    if found[root]:
        return found[root][0], root
    candidates = [folder for folder in folders if found[folder]]
    if len(candidates) > 1:
        names = ", ".join(folder.name for folder in candidates)
        raise DataError(f"holds several MovieLens folders ({names}): point data.root at one", path=root)
    if not candidates:
        names = " or ".join(lay.ratings for lay in LAYOUTS)
        raise DataError(f"no MovieLens ratings file ({names}) here or in a sub-folder", path=root)
    return found[candidates[0]][0], candidates[0]


def read_ratings(path: Path, layout: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """user, item, rating (float64) and timestamp per line. A typed parse first (seconds for 25M lines); if it
    fails anywhere, the file is read again as text, which names the first bad line."""
    if not path.is_file():
        raise DataError("file not found", path=path)
    columns = _ratings_typed(path, layout)
    if columns is None:
        names = layout.rating_columns
        frame = read_table(path, names) if layout.header else _lines(path, names)
        columns = [
            number_column(frame, name, path, positive=True)
            if i == 2
            else integer_column(frame, name, path, min_value=0)
            for i, name in enumerate(names)
        ]
    user, item, rating, timestamp = columns
    duplicated = pd.DataFrame({"user": user, "item": item}).duplicated().to_numpy()
    if duplicated.any():
        i = int(np.flatnonzero(duplicated)[0])
        raise DataError(f"user {user[i]} rated movie {item[i]} twice", path=path, row=i + _first_row(layout))
    return user, item, rating, timestamp


def _ratings_typed(path: Path, layout: Layout) -> list[np.ndarray] | None:
    """The four columns, or None unless every line holds plain numbers in exactly the expected fields."""
    if layout.header:
        with open(path, encoding="utf-8", errors="replace") as handle:
            if handle.readline().strip().lstrip("\ufeff").split(",") != list(layout.rating_columns):
                return None
        options = {"sep": ",", "header": 0, "names": range(4)}
    elif layout.ratings.endswith(".dat"):  # "::" is ":" twice: the odd fields must be empty
        options = {"sep": ":", "header": None, "names": range(7)}
    else:
        options = {"sep": "\t", "header": None, "names": range(4)}
    try:
        frame = pd.read_csv(path, dtype="float64", skip_blank_lines=False, engine="c", **options)
    except (ValueError, OSError):
        return None
    frame = frame.iloc[: _last_filled(frame.notna().any(axis=1).to_numpy())]
    if not len(frame) or (len(frame.columns) == 7 and frame[[1, 3, 5]].notna().any(axis=None)):
        return None
    values = [frame[c].to_numpy() for c in frame.columns[:: 2 if len(frame.columns) == 7 else 1]]
    for v in (values[0], values[1], values[3]):  # float64 holds integers exactly below 2**53
        if not (np.isfinite(v).all() and (v == np.round(v)).all() and (v >= 0).all() and (v < 2.0**53).all()):
            return None
    if not (np.isfinite(values[2]).all() and (values[2] > 0).all()):
        return None
    return [v if i == 2 else v.astype(np.int64) for i, v in enumerate(values)]


def read_movies(path: Path, layout: Layout) -> Movies:
    names = layout.movie_columns
    if layout.name == "ml-100k":
        genre_names = _ml100k_genres(path.parent / "u.genre")
        frame = _lines(path, (*names, *genre_names))
        flags = np.column_stack([integer_column(frame, genre, path, min_value=0) for genre in genre_names])
        if (flags > 1).any():
            i, j = np.argwhere(flags > 1)[0]
            raise DataError(
                f"expected a 0/1 genre flag, got {flags[i, j]}", path=path, row=i + 1, column=genre_names[j]
            )
        genre_row, column = np.nonzero(flags)  # row-major: each movie's genres in u.genre order
        genre_name = np.asarray(genre_names, dtype=object)[column]
        release = frame["release date"].astype(str).str.extract(r"(\d{4})\s*$")[0]
        release_year = pd.to_numeric(release, errors="coerce").fillna(-1).to_numpy(np.int64)
    else:
        frame = read_table(path, names) if layout.header else _lines(path, names)
        listed = frame[names[2]].astype(str).str.split("|", regex=False).explode().str.strip()
        genre_row, genre_name = listed.index.to_numpy(), listed.to_numpy(dtype=object)
        release_year = np.full(len(frame), -1, dtype=np.int64)
    ids = integer_column(frame, names[0], path)
    repeated = pd.Series(ids).duplicated().to_numpy()
    if repeated.any():
        i = int(np.flatnonzero(repeated)[0])
        raise DataError(
            f"movie {ids[i]} listed twice", path=path, row=i + frame.attrs["first_row"], column=names[0]
        )
    has_genre = ~pd.Series(genre_name, dtype=object).isin(NO_GENRE).to_numpy()
    titles = frame[names[1]].astype(str)
    return Movies(path, ids, titles, genre_row[has_genre], genre_name[has_genre], release_year)


def _ml100k_genres(path: Path) -> tuple[str, ...]:
    """Genre names in flag order, from u.genre ("name|index" lines) when it is there."""
    if not path.is_file():
        return ML100K_GENRES
    frame = _lines(path, ("genre", "index"))
    order = integer_column(frame, "index", path, min_value=0)
    if sorted(order) != list(range(len(order))):
        raise DataError(f"expected the indexes 0..{len(order) - 1}, each once", path=path, column="index")
    names = frame["genre"].astype(str)
    taken = names.duplicated() | names.isin(LAYOUTS[0].movie_columns)  # ml-100k: u.item names its columns
    if taken.any():
        i = int(np.argmax(taken.to_numpy()))
        raise DataError(
            f"genre {names[i]!r} is listed twice or names a u.item column; expected distinct genre names",
            path=path, row=i + 1, column="genre",
        )  # fmt: skip
    return tuple(names.to_numpy()[np.argsort(order)])


def read_tags(path: Path, layout: Layout) -> pd.DataFrame:
    """movie (int64), tag (lower-cased, stripped; blank ones dropped) and row (the file's line) per tag."""
    names = layout.tag_columns
    frame = read_table(path, names) if layout.header else _lines(path, names)
    integer_column(frame, names[0], path)
    integer_column(frame, names[3], path, min_value=0)
    tags = pd.DataFrame(
        {"movie": integer_column(frame, names[1], path),
         "tag": frame[names[2]].astype(str).str.strip().str.lower().to_numpy(dtype=object),
         "row": np.arange(len(frame)) + frame.attrs["first_row"]}
    )  # fmt: skip
    tags.attrs.update(path=path, column=names[1])
    return tags[tags["tag"] != ""]


def movie_metadata(
    movies: Movies, catalogue: np.ndarray, tags: pd.DataFrame | None
) -> tuple[pd.DataFrame, sp.csr_matrix]:
    """Items frame and item_tags for the movies at rows `catalogue` of the movies file, in item order."""
    n = len(catalogue)
    item_of_row = np.full(len(movies.ids), -1, dtype=np.int64)
    item_of_row[catalogue] = np.arange(n)
    item = item_of_row[movies.genre_row]
    item, (codes, names) = item[item >= 0], pd.factorize(movies.genre_name[item >= 0], sort=True)
    blocks = [_counts(item, codes, (n, len(names)))]
    genre = np.full(n, -1, dtype=np.int64)
    with_genre, first = np.unique(item, return_index=True)  # each movie's first listed genre
    genre[with_genre] = pd.factorize(codes[first], sort=True)[0]
    if tags is not None:
        row = pd.Index(movies.ids).get_indexer(tags["movie"].to_numpy())
        if (row < 0).any():
            i = int(np.flatnonzero(row < 0)[0])
            raise DataError(
                f"movie {tags['movie'].iloc[i]} is not in {movies.path.name}",
                path=tags.attrs["path"], row=int(tags["row"].iloc[i]), column=tags.attrs["column"],
            )  # fmt: skip
        tagged = item_of_row[row]
        tag_codes, tag_names = pd.factorize(tags["tag"].to_numpy()[tagged >= 0], sort=True)
        blocks.append(_counts(tagged[tagged >= 0], tag_codes, (n, len(tag_names))))
    from_title = movies.titles.iloc[catalogue].str.extract(TITLE_YEAR)[0]
    year = pd.to_numeric(from_title, errors="coerce").fillna(-1).to_numpy(np.int64)
    year = np.where(year > 0, year, movies.release_year[catalogue])
    items = pd.DataFrame({"item": np.arange(n), "artist": -1, "album": -1, "genre": genre, "year": year})
    return items.astype(np.int64), sp.hstack(blocks, format="csr")


def _counts(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, columns)), shape=shape)
    matrix.sum_duplicates()
    return matrix


def _lines(path: Path, names: tuple[str, ...]) -> pd.DataFrame:
    """A header-less MovieLens file as text cells, one row per line (latin-1, as MovieLens ships them).
    Trailing blank lines are ignored; any other line without len(names) fields is an error naming it."""
    if not path.is_file():
        raise DataError("file not found", path=path)
    sep = "::" if path.suffix == ".dat" else "\t" if path.name == "u.data" else "|"
    field = "([^:]*)" if sep == "::" else f"([^{re.escape(sep)}]*)"
    pattern = re.escape(sep).join("(.*)" if name in FREE_TEXT and sep == "::" else field for name in names)
    lines = pd.Series(path.read_text(encoding="latin-1").split("\n"), dtype=object).str.rstrip("\r")
    lines = lines.iloc[: _last_filled(lines.str.strip().ne("").to_numpy())]
    if not len(lines):
        raise DataError("is empty", path=path)
    frame = lines.str.extract(f"^{pattern}$")
    bad = frame[0].isna().to_numpy()
    if bad.any():
        fields = f" ({', '.join(names)})" if len(names) < 8 else ""
        raise DataError(
            f"expected {len(names)} fields{fields} separated by {sep!r}",
            path=path,
            row=int(np.flatnonzero(bad)[0]) + 1,
        )
    frame.columns = list(names)
    frame.attrs["first_row"] = 1
    return frame


def _last_filled(filled: np.ndarray) -> int:
    """Length without the trailing unfilled (blank) rows."""
    return int(np.flatnonzero(filled)[-1]) + 1 if filled.any() else 0


def _first_row(layout: Layout) -> int:
    return 2 if layout.header else 1
