"""Seeded play logs: users with latent tastes over genres and artists, power-law item popularity.

Item i has popularity p_i ∝ rank_i^-s (Zipf). User u has genre taste θ_u ~ Dirichlet(c) and a few favourite
artists. u picks items without replacement with probability ∝ p_i^0.6 · θ_u[genre_i] · (1 + 8·fav(u, artist_i))
(Gumbel top-k, exact), then plays each 1 + Poisson(λ) times, λ larger for better-matching items.
Timestamps fall in per-user activity windows over one year.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from airush.music.data import Plays

BLOCK_USERS = 512
YEAR_S = 365 * 24 * 3600
START_S = 1_700_000_000


@dataclass
class SyntheticPlays:
    n_users: int = 2000
    n_items: int = 4000
    n_artists: int = 400
    n_genres: int = 20
    mean_items_per_user: int = 40
    popularity_exponent: float = 1.0
    taste_concentration: float = 0.3

    def load(self, seed: int, stages=None) -> Plays:
        rng = np.random.default_rng(seed)
        items = make_items(rng, self.n_items, self.n_artists, self.n_genres)
        log_pop = -self.popularity_exponent * np.log1p(rng.permutation(self.n_items).astype(np.float64))
        taste = rng.dirichlet(np.full(self.n_genres, self.taste_concentration), self.n_users)
        n_per_user = np.clip(
            rng.lognormal(np.log(self.mean_items_per_user) - 0.18, 0.6, self.n_users).astype(int),
            5,
            self.n_items // 4,
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
        users, picked, affinity = [], [], []
        for lo in range(0, self.n_users, BLOCK_USERS):
            hi = min(lo + BLOCK_USERS, self.n_users)
            fav = favourite_artists(rng, taste[lo:hi], artist_genre)  # (block, n_artists) bool
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
        timestamp = START_S + (span_start[user] + rng.uniform(0, 0.3 * YEAR_S, len(user))).astype(np.int64)
        interactions = pd.DataFrame(
            {"user": user.astype(np.int64), "item": item.astype(np.int64), "plays": plays.astype(np.float64),
             "timestamp": timestamp}
        ).sort_values(["user", "timestamp", "item"], ignore_index=True)  # fmt: skip
        return Plays(interactions, items, np.arange(self.n_users), np.arange(self.n_items))


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
