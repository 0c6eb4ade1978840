"""Seeded play logs: users with latent tastes over genres and artists, power-law item popularity.

Item i has popularity p_i ∝ rank_i^-s (Zipf). User u has genre taste θ_u ~ Dirichlet(c) and a few favourite
artists. u picks items without replacement with probability ∝ p_i^0.6 · θ_u[genre_i] · (1 + 8·fav(u, artist_i))
(Gumbel top-k, exact), then plays each 1 + Poisson(λ) times, λ larger for better-matching items.
Timestamps fall in per-user activity windows (30% of a year each) over one year.

New items (`new_item_share` of the catalogue, ids after the others): tracks by the same artists (a new album,
the artist's genre 85% of the time, release year) released while the last `new_item_window` share of the
other plays happen. Users active after a release pick them by the same taste model, weighted by how much of
their window is left and by `new_item_boost` (new releases get played more), and play them only after it.
So a global temporal split with a test share >= `new_item_window` (roughly) holds them only in test, and a
random split leaves the rarely played ones without training plays: cold-start items. They come from their own
random stream, so `new_item_share: 0` gives exactly the catalogue and plays of the generator without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from airush.errors import ConfigError
from airush.model import check_settings
from airush.music.data import Plays, PlaySource

BLOCK_USERS = 512
YEAR_S = 365 * 24 * 3600
START_S = 1_700_000_000
WINDOW_S = 0.3 * YEAR_S  # each user's activity window
MIN_USER_ITEMS = 5  # items each user plays, at least (and at most a quarter of the catalogue)


@dataclass
class SyntheticPlays(PlaySource):
    ranges: ClassVar[dict[str, str]] = {
        "n_users": ">= 1",
        "n_items": ">= 1",
        "n_artists": ">= 1",
        "n_genres": ">= 1",
        "mean_items_per_user": ">= 1",
        "popularity_exponent": ">= 0",
        "taste_concentration": "> 0",
        "new_item_share": "[0, 1)",
        "new_item_window": "(0, 1]",
        "new_item_boost": "[0, 1000000] (far beyond it, the expected picks overflow numpy's Poisson draw)",
    }

    n_users: int = 2000
    n_items: int = 4000
    n_artists: int = 400
    n_genres: int = 20
    mean_items_per_user: int = 40
    popularity_exponent: float = 1.0
    taste_concentration: float = 0.3
    new_item_share: float = 0.05
    new_item_window: float = 0.05
    new_item_boost: float = 8.0

    @property
    def n_new_items(self) -> int:
        """Late-released items: the last ids of the catalogue."""
        return round(self.new_item_share * self.n_items)

    def load(self, seed: int, stages=None) -> Plays:
        check_settings("data", self)
        n_old = self.n_items - self.n_new_items
        if n_old < 4 * MIN_USER_ITEMS:
            raise ConfigError(
                f"data.n_items={self.n_items} (new_item_share={self.new_item_share}) leaves {n_old} item(s) "
                f"released from the start; the synthetic users need at least {4 * MIN_USER_ITEMS} (each plays "
                f"{MIN_USER_ITEMS} or more of them, at most a quarter)"
            )
        rng = np.random.default_rng(seed)
        items = make_items(rng, n_old, self.n_artists, self.n_genres)
        log_pop = -self.popularity_exponent * np.log1p(rng.permutation(n_old).astype(np.float64))
        taste = rng.dirichlet(np.full(self.n_genres, self.taste_concentration), self.n_users)
        n_per_user = np.clip(
            rng.lognormal(np.log(self.mean_items_per_user) - 0.18, 0.6, self.n_users).astype(int),
            MIN_USER_ITEMS,
            n_old // 4,
        )
        genre = items["genre"].to_numpy()
        artist = items["artist"].to_numpy()
        artist_genre = (
            items.groupby("artist")["genre"]
            .agg(lambda g: g.mode().iloc[0])
            .reindex(range(self.n_artists), fill_value=0)
            .to_numpy()
        )
        bar = stages.stage("generate plays", total=-(-self.n_users // BLOCK_USERS)) if stages else None
        users, picked, affinity, favourites = [], [], [], []
        for lo in range(0, self.n_users, BLOCK_USERS):
            hi = min(lo + BLOCK_USERS, self.n_users)
            fav = favourite_artists(rng, taste[lo:hi], artist_genre)  # (block, n_artists) bool
            favourites.append(fav)
            logit = (
                0.6 * log_pop[None, :]
                + np.log(taste[lo:hi][:, genre] + 1e-4)
                + np.log1p(8.0 * fav[:, artist])
            )
            keys = logit + rng.gumbel(size=logit.shape)
            k = int(n_per_user[lo:hi].max())
            top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
            top_keys = np.take_along_axis(keys, top, axis=1)
            top = np.take_along_axis(top, np.argsort(-top_keys, axis=1), axis=1)
            keep = np.arange(k)[None, :] < n_per_user[lo:hi, None]
            rows = np.nonzero(keep)
            users.append(rows[0] + lo)
            picked.append(top[rows])
            affinity.append(np.take_along_axis(logit, top, axis=1)[rows])
            if bar is not None:
                bar.advance()
        user = np.concatenate(users)
        item = np.concatenate(picked)
        aff = np.concatenate(affinity)
        # repeat plays: better-matching items get played more, as in real listening logs
        z = (aff - aff.mean()) / (aff.std() + 1e-9)
        plays = 1 + rng.poisson(np.exp(0.8 * z + 0.5))
        span_start = rng.uniform(0, 0.7 * YEAR_S, self.n_users)
        timestamp = START_S + (span_start[user] + rng.uniform(0, WINDOW_S, len(user))).astype(np.int64)
        interactions = pd.DataFrame(
            {"user": user.astype(np.int64), "item": item.astype(np.int64), "plays": plays.astype(np.float64),
             "timestamp": timestamp}
        )  # fmt: skip
        if self.n_new_items:
            new_items, new_plays = self._new_items(
                np.random.default_rng([seed, 1]),
                items,
                artist_genre,
                taste,
                np.concatenate(favourites),
                n_per_user,
                START_S + span_start,
                timestamp,
                (aff.mean(), aff.std() + 1e-9),
            )
            items = pd.concat([items, new_items], ignore_index=True)
            interactions = pd.concat([interactions, new_plays], ignore_index=True)
        interactions = interactions.sort_values(["user", "timestamp", "item"], ignore_index=True)
        return Plays(interactions, items, np.arange(self.n_users), np.arange(self.n_items))

    def _new_items(
        self, rng, items, artist_genre, taste, fav, n_per_user, window_start, old_timestamps, affinity_scale
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Late releases and their plays (after release, inside each user's window), scored like the others.

        A user's expected number of new picks is n_per_user · boost · Σ_i (share of the window left after
        release i) / n_old items: the rate at which they pick any one old item, per unit of time available.
        """
        n_old, n_new = len(items), self.n_new_items
        artist_weight = 1.0 / np.arange(1, self.n_artists + 1) ** 0.8
        artist = rng.choice(self.n_artists, n_new, p=artist_weight / artist_weight.sum())
        genre = np.where(
            rng.random(n_new) < 0.85, artist_genre[artist], rng.integers(0, self.n_genres, n_new)
        )
        release = rng.integers(
            int(np.quantile(old_timestamps, 1.0 - self.new_item_window)), int(old_timestamps.max()), n_new
        )  # unix seconds
        new_items = pd.DataFrame(
            {"item": np.arange(n_old, n_old + n_new), "artist": artist,
             "album": int(items["album"].max()) + 1 + artist,  # the artist's new album
             "genre": genre, "year": pd.to_datetime(release, unit="s").year}
        ).astype(np.int64)  # fmt: skip
        log_pop = -self.popularity_exponent * np.log1p(
            rng.integers(0, self.n_items, n_new).astype(np.float64)
        )
        mean, std = affinity_scale
        parts = []
        for lo in range(0, len(taste), BLOCK_USERS):
            start = window_start[lo : lo + BLOCK_USERS, None]
            # (block, new items): share of the user's window left after each release
            available = np.clip(start + WINDOW_S - np.maximum(start, release), 0, None) / WINDOW_S
            expected = n_per_user[lo : lo + BLOCK_USERS] * self.new_item_boost * available.sum(axis=1) / n_old
            n_picks = np.minimum(rng.poisson(expected), (available > 0).sum(axis=1))
            logit = (
                0.6 * log_pop[None, :]
                + np.log(taste[lo : lo + BLOCK_USERS][:, genre] + 1e-4)
                + np.log1p(8.0 * fav[lo : lo + BLOCK_USERS][:, artist])
            )
            with np.errstate(divide="ignore"):  # -inf keys: released after the user's window closed
                keys = logit + np.log(available) + rng.gumbel(size=logit.shape)
            k = max(int(n_picks.max()), 1)
            top = np.argsort(-keys, axis=1, kind="stable")[:, :k]
            user, rank = np.nonzero(np.arange(k)[None, :] < n_picks[:, None])
            item = top[user, rank]
            plays = 1 + rng.poisson(np.exp(0.8 * (logit[user, item] - mean) / std + 0.5))
            first = np.maximum(start[user, 0], release[item])
            timestamp = first + rng.uniform(0, 1, len(user)) * (start[user, 0] + WINDOW_S - first)
            parts.append(
                pd.DataFrame(
                    {
                        "user": user + lo,
                        "item": item + n_old,
                        "plays": plays.astype(np.float64),
                        "timestamp": timestamp,
                    }
                ).astype({"user": np.int64, "item": np.int64, "timestamp": np.int64})
            )
        new_plays = pd.concat(parts, ignore_index=True)
        return new_items, new_plays


def make_items(rng, n_items: int, n_artists: int, n_genres: int) -> pd.DataFrame:
    """Artists with Zipf-sized catalogues and a main genre (85% of their tracks), albums of ~10 tracks."""
    artist_weight = 1.0 / np.arange(1, n_artists + 1) ** 0.8
    artist = rng.choice(n_artists, n_items, p=artist_weight / artist_weight.sum())
    main_genre = rng.integers(0, n_genres, n_artists)
    genre = np.where(rng.random(n_items) < 0.85, main_genre[artist], rng.integers(0, n_genres, n_items))
    album = artist * 1000 + rng.integers(0, 1 + np.bincount(artist, minlength=n_artists)[artist] // 10)
    era = rng.integers(1960, 2024, n_artists)
    year = np.clip(era[artist] + rng.integers(0, 8, n_items), 1960, 2025)
    return pd.DataFrame(
        {"item": np.arange(n_items), "artist": artist, "album": album, "genre": genre, "year": year}
    ).astype(np.int64)


def favourite_artists(rng, taste: np.ndarray, artist_genre: np.ndarray, per_user: int = 5) -> np.ndarray:
    """Each user's favourite artists, drawn from the genres they like."""
    weight = taste[:, artist_genre] + 1e-6
    keys = np.log(weight) + rng.gumbel(size=weight.shape)
    top = np.argpartition(-keys, per_user - 1, axis=1)[:, :per_user]
    fav = np.zeros_like(weight, dtype=bool)
    np.put_along_axis(fav, top, True, axis=1)
    return fav
