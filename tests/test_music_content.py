"""Item metadata tokens and model=content: the matrix built right by hand, cosine scores against a dense
reference, cold items scored from their artist/genre, and a Last.fm run when the data is there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from airush.errors import ConfigError, DataError
from airush.music.data import Plays
from airush.music.metadata import item_metadata
from airush.music.models.content import ContentRecommender

from conftest import SHARED_DATA

LASTFM = SHARED_DATA / "lastfm-hetrec2k"


def hand_made_plays(item_tags: sp.csr_matrix | None = None, **columns) -> Plays:
    """Four items listed out of id order, with unknowns (-1) in genre and year."""
    items = pd.DataFrame(
        {
            "item": [2, 0, 1, 3],
            "artist": [7, 5, 5, -1],
            "album": [70, 50, 51, -1],
            "genre": [1, 1, -1, 3],
            "year": [1994, 1999, 2003, -1],
        }
        | columns
    )
    interactions = pd.DataFrame({"user": [0], "item": [0], "plays": [1.0], "timestamp": [-1]})
    return Plays(interactions, items, np.arange(1), np.arange(4), item_tags)


def test_metadata_matrix_by_hand():
    tags = sp.csr_matrix(np.array([[3, 0], [0, 0], [1, 1], [0, 7]], dtype=np.float32))
    metadata = item_metadata(hand_made_plays(tags))
    expected = {
        # item id: {token: weight}; items frame rows are placed by their `item` column
        0: {"artist:5": 1, "album:50": 1, "genre:1": 1, "decade:1990": 1, "tag:0": np.log(4)},
        1: {"artist:5": 1, "album:51": 1, "decade:2000": 1},
        2: {
            "artist:7": 1,
            "album:70": 1,
            "genre:1": 1,
            "decade:1990": 1,
            "tag:0": np.log(2),
            "tag:1": np.log(2),
        },
        3: {"genre:3": 1, "tag:1": np.log(8)},
    }
    tokens = list(metadata.tokens)
    assert tokens == [
        "artist:5", "artist:7", "album:50", "album:51", "album:70", "genre:1", "genre:3",
        "decade:1990", "decade:2000", "tag:0", "tag:1",
    ]  # fmt: skip
    dense = np.zeros((4, len(tokens)))
    for item, row in expected.items():
        for token, weight in row.items():
            dense[item, tokens.index(token)] = weight
    assert metadata.matrix.dtype == np.float32
    np.testing.assert_allclose(metadata.matrix.toarray(), dense, rtol=1e-6)


def test_metadata_without_columns_or_tags_has_fewer_tokens():
    bare = hand_made_plays().items[["item"]]
    plays = hand_made_plays()
    plays.items = bare
    assert item_metadata(plays).matrix.shape == (4, 0)
    plays = hand_made_plays()
    plays.items = plays.items.drop(columns=["album", "year"])
    assert [t.split(":")[0] for t in item_metadata(plays).tokens] == ["artist", "artist", "genre", "genre"]


@pytest.mark.parametrize(
    ("plays", "message"),
    [
        (lambda: hand_made_plays(item=[0, 0, 1, 3]), "one row per item 0..3"),
        (lambda: hand_made_plays(item_tags=sp.csr_matrix((3, 2), dtype=np.float32)), "3 rows for 4 items"),
        (lambda: hand_made_plays(item_tags=sp.csr_matrix(-np.eye(4, 2, dtype=np.float32))), "negative"),
    ],
)
def test_bad_metadata_is_a_data_error(plays, message):
    with pytest.raises(DataError, match=message):
        item_metadata(plays())


def two_artists() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Items 0-5: artist 0, genre 0; items 6-11: artist 1, genre 1; 12 and 13 nobody played (cold), one of
    each artist. User 0 plays artist 0, user 1 artist 1, user 2 a little of both."""
    artist = np.r_[np.zeros(6), np.ones(6), 0, 1].astype(int)
    features = sp.csr_matrix(
        (np.ones(28, np.float32), (np.repeat(np.arange(14), 2), np.c_[artist, 2 + artist].ravel())),
        shape=(14, 4),
    )  # tokens: artist 0, artist 1, genre 0, genre 1
    train = np.zeros((3, 14), np.float32)
    train[0, [0, 1, 2, 3]] = [2.0, 1.0, 1.0, 3.0]
    train[1, [6, 7, 8]] = 1.0
    train[2, [4, 9, 10, 11]] = [1.0, 0.5, 0.5, 0.5]
    return sp.csr_matrix(train), features


@pytest.mark.parametrize("popularity_weight", [0.0, 1.0])
def test_cold_item_scores_above_unrelated_items(popularity_weight):
    train, features = two_artists()
    model = ContentRecommender(popularity_weight=popularity_weight).fit(train, item_features=features)
    scores = model.score(np.array([0, 1]))
    assert scores[0, 12] > scores[0, 6:12].max()  # user 0's cold match beats every artist-1 item
    assert scores[1, 13] > scores[1, :6].max()
    assert scores[0, 12] > scores[0, 13] and scores[1, 13] > scores[1, 12]
    # same artist, genre and (here) popularity as the unplayed items of the user's artist: in their top 4
    top = model.recommend(np.array([0, 1]), 4, exclude=train)
    assert 12 in top[0] and 13 in top[1]


def dense_reference(train: np.ndarray, features: np.ndarray, popularity_weight: float) -> np.ndarray:
    """Content scores the slow way: dense TF-IDF, pairwise item cosines for the cold popularity estimate."""
    n_items = features.shape[0]
    df = (features > 0).sum(axis=0)
    idf = np.array([np.log(n_items / d) if d >= 2 else 0.0 for d in df])
    vectors = features * idf
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-300)
    profiles = train @ vectors
    profiles /= np.maximum(np.linalg.norm(profiles, axis=1, keepdims=True), 1e-300)
    users_per_item = (train > 0).sum(axis=0)
    popularity = np.log1p(users_per_item) / np.log1p(users_per_item.max())
    played = users_per_item > 0
    for i in np.flatnonzero(~played):
        cosines = np.array([vectors[i] @ vectors[j] for j in np.flatnonzero(played)])
        popularity[i] = (cosines @ popularity[played]) / cosines.sum() if cosines.sum() > 0 else 0.0
    return profiles @ vectors.T + popularity_weight * popularity


@pytest.mark.parametrize("popularity_weight", [0.0, 0.7])
def test_scores_match_a_dense_reference(popularity_weight, tmp_path):
    rng = np.random.default_rng(0)
    features = (rng.random((40, 12)) < 0.25) * rng.uniform(0.5, 2.0, (40, 12))
    features[:, 11] = 0.0
    features[5, 11] = 1.0  # a token only one item has: dropped
    features[7] = 0.0  # an item with no metadata at all
    train = (rng.random((25, 40)) < 0.15) * rng.uniform(0.2, 3.0, (25, 40))
    train[:, 30:] = 0.0  # ten cold items
    model = ContentRecommender(popularity_weight=popularity_weight).fit(
        sp.csr_matrix(train, dtype=np.float32), item_features=sp.csr_matrix(features, dtype=np.float32)
    )
    users = np.arange(25)
    scores = model.score(users)
    assert scores.dtype == np.float32 and scores.shape == (25, 40)
    np.testing.assert_allclose(
        scores, dense_reference(train, features, popularity_weight), rtol=1e-5, atol=1e-6
    )
    model.save(tmp_path / "model")
    assert {p.suffix for p in (tmp_path / "model").iterdir()} == {".npz", ".json"}
    np.testing.assert_array_equal(ContentRecommender.load(tmp_path / "model").score(users), scores)


def test_content_without_metadata_is_a_config_error():
    train, _ = two_artists()
    for features in (None, sp.csr_matrix((14, 0), dtype=np.float32)):
        with pytest.raises(ConfigError, match="needs item metadata") as error:
            ContentRecommender().fit(train, item_features=features)
        assert "\n" not in str(error.value)


@pytest.mark.slow
@pytest.mark.skipif(not LASTFM.is_dir(), reason=f"Last.fm HetRec 2K not found at {LASTFM}")
def test_lastfm_content_run(compose_cfg):
    """Tags are Last.fm's only shared metadata (each item is its own artist); content beats popularity."""
    from airush.runner import run

    data = ["data=lastfm", f"data.root={LASTFM}"]
    content = run(compose_cfg(["task=music", "model=content", *data]))
    pop = run(compose_cfg(["task=music", "model=pop", *data]))
    print(f"Last.fm content NDCG@10 {content['ndcg_at_10']:.4f}, pop {pop['ndcg_at_10']:.4f}")
    assert content["ndcg_at_10"] > pop["ndcg_at_10"]
    assert content["cold_test_interactions"] > 0
    assert content["cold_recall_at_10"] > pop["cold_recall_at_10"]
