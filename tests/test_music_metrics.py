"""Full-ranking top-K metrics and the ranking primitives, against independent references.

References used here: a plain Python sort for rankings, a per-user loop written from the metric definitions
in airush.music.metrics' docstring (RecBole's binary-relevance metrics), and `ranx` for NDCG / recall /
precision / hit rate / MRR / MAP.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from airush.music.metrics import full_ranking_metrics, ranking_metrics_from_hits
from airush.music.models import Recommender
from airush.music.ranking import membership, top_k_items

KS = [1, 5, 10, 20]
METRICS = ("ndcg", "recall", "precision", "hit", "mrr", "map")

pytestmark = pytest.mark.filterwarnings("ignore:unsafe cast:Warning")  # numba, inside ranx


# ----------------------------------------------------------------------------------------------------------
# independent references


def ref_ranking(row, exclude=()) -> list[int]:
    """All items not in `exclude`, by descending float32 score, NaN like -inf, ties -> lower id."""
    excluded = set(exclude)
    values = [float(v) for v in np.asarray(row, dtype=np.float32)]
    values = [-math.inf if math.isnan(v) else v for v in values]
    return sorted((j for j in range(len(values)) if j not in excluded), key=lambda j: (-values[j], j))


def ref_metrics(ranked: list[int], relevant: set[int], k: int) -> dict[str, float]:
    """One user's metrics at k, straight from the definitions (L_u = first k ranked items)."""
    top = ranked[:k]
    rel = [1.0 if item in relevant else 0.0 for item in top]
    n_rel = len(relevant)
    hits = sum(rel)
    capped = min(n_rel, k)
    dcg = sum(r / math.log2(j + 2) for j, r in enumerate(rel))
    idcg = sum(1.0 / math.log2(j + 2) for j in range(capped))
    first = next((j + 1 for j, r in enumerate(rel) if r), None)
    ap = sum(rel[j] * sum(rel[: j + 1]) / (j + 1) for j in range(len(rel)))
    return {
        "ndcg": dcg / idcg,
        "recall": hits / n_rel,
        "precision": hits / k,
        "hit": 1.0 if hits > 0 else 0.0,
        "mrr": 1.0 / first if first else 0.0,
        "map": ap / capped,
    }


def to_csr(sets: list[set[int]], n_items: int) -> sp.csr_matrix:
    rows = [u for u, s in enumerate(sets) for _ in s]
    cols = [j for s in sets for j in sorted(s)]
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(sets), n_items))


def make_case(seed: int, ties: str, n_users: int = 60, n_items: int = 200):
    """Scores, masked sets and relevant sets (disjoint from masked) with |R| below, around and above 20."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(n_users, n_items))
    if ties == "rounded":
        raw = np.round(raw, 1)
    elif ties == "integer":
        raw = rng.integers(-2, 3, size=(n_users, n_items)).astype(np.float64)
    scores = raw.astype(np.float32)
    size_pool = [0, 1, 2, 3, 5, 8, 12, 19, 20, 21, 30, 45]
    masked, truth = [], []
    for u in range(n_users):
        m = set(rng.choice(n_items, int(rng.integers(0, 31)), replace=False).tolist())
        free = np.array(sorted(set(range(n_items)) - m))
        n_rel = size_pool[u % len(size_pool)]
        truth.append(set(rng.choice(free, n_rel, replace=False).tolist()))
        masked.append(m)
    return scores, masked, truth


def ref_mean_metrics(scores, masked, truth, ks):
    users = [u for u in range(len(truth)) if truth[u]]
    out = {f"{m}_at_{k}": 0.0 for m in METRICS for k in ks}
    for u in users:
        ranked = ref_ranking(scores[u], masked[u])
        for k in ks:
            for name, value in ref_metrics(ranked, truth[u], k).items():
                out[f"{name}_at_{k}"] += value
    return {name: total / len(users) for name, total in out.items()}, users


# ----------------------------------------------------------------------------------------------------------
# top_k_items


SPECIAL = np.array(
    [
        np.nan,
        -np.inf,
        np.inf,
        -0.0,
        0.0,
        -1.5,
        1.5,
        2.0,
        -3.0,
        1e-30,
        -1e-30,
        1e-45,
        -1e-45,
        3.4e38,
        -3.4e38,
        7.0,
    ],
    dtype=np.float32,
)


@pytest.mark.parametrize("k", [1, 3, 17, 39, 40, 41, 100])
def test_top_k_items_matches_plain_sort_with_special_values(k):
    rng = np.random.default_rng(0)
    scores = rng.choice(SPECIAL, size=(30, 40))  # many duplicates -> many ties
    scores[0] = np.nan
    scores[1] = -0.0
    scores[1, ::2] = 0.0  # -0.0 and 0.0 must tie -> plain id order
    scores[2] = -np.inf
    scores[2, 7] = np.nan  # NaN ranks like -inf: ties with it by id
    scores[3] = np.inf
    top = top_k_items(scores, k)
    assert top.shape == (30, min(k, 40))
    for u in range(30):
        assert top[u].tolist() == ref_ranking(scores[u])[:k], u
    assert top[0].tolist() == list(range(min(k, 40)))
    assert top[1].tolist() == list(range(min(k, 40)))
    assert top[2].tolist() == list(range(min(k, 40)))


@pytest.mark.parametrize("k", [1, 4, 10, 64, 65, 500])
def test_top_k_items_matches_plain_sort_random_with_ties(k):
    rng = np.random.default_rng(1)
    continuous = rng.normal(scale=100, size=(25, 65)).astype(np.float32)
    ties = rng.integers(-3, 4, size=(25, 65)).astype(np.float32)
    for scores in (continuous, ties, -np.abs(continuous)):
        top = top_k_items(scores, k)
        for u in range(len(scores)):
            assert top[u].tolist() == ref_ranking(scores[u])[:k]


def test_top_k_items_single_item_and_all_equal():
    assert top_k_items(np.array([[np.nan]], np.float32), 5).tolist() == [[0]]
    assert top_k_items(np.full((3, 9), 2.5, np.float32), 4).tolist() == [[0, 1, 2, 3]] * 3
    # the order within the top-k is the ranking order, not item order
    assert top_k_items(np.array([[1.0, 3.0, 2.0, 3.0]], np.float32), 3).tolist() == [[1, 3, 2]]


def test_top_k_items_does_not_modify_its_input():
    scores = np.array([[np.nan, -0.0, 1.0]], np.float32)
    before = scores.copy()
    top_k_items(scores, 2)
    np.testing.assert_array_equal(scores, before)
    assert np.signbit(scores[0, 1])


# ----------------------------------------------------------------------------------------------------------
# exclusion, membership, Recommender.recommend


def padded(ranked: list[int], k: int, n_items: int) -> list[int]:
    """The first k of a ranking, padded with -1 up to min(k, n_items) where it is shorter."""
    top = ranked[:k]
    return top + [-1] * (min(k, n_items) - len(top))


@pytest.mark.parametrize("k", [1, 5, 30, 33, 34, 40, 100])
def test_top_k_items_never_returns_excluded_items(k):
    rng = np.random.default_rng(2)
    n_users, n_items = 24, 40
    scores = rng.choice(SPECIAL, size=(n_users, n_items))
    excluded = [
        set(rng.choice(n_items, int(rng.integers(0, 8)), replace=False).tolist()) for _ in range(n_users)
    ]
    excluded[0] = set(range(n_items))  # nothing left: a row of -1
    excluded[1] = set(range(0, n_items, 2))
    scores[1, 1::2] = np.nan  # the only candidates score NaN, excluded ones +inf
    scores[1, ::2] = np.inf
    excluded[2] = set(range(10))
    scores[2] = -np.inf
    excluded[3] = set()
    exclude = to_csr(excluded, n_items)
    before = exclude.copy()
    top = top_k_items(scores, k, exclude=exclude)
    assert top.shape == (n_users, min(k, n_items))
    for u in range(n_users):
        assert top[u].tolist() == padded(ref_ranking(scores[u], excluded[u]), k, n_items), u
        assert not set(top[u].tolist()) & excluded[u]
    assert (top[0] == -1).all()
    assert (exclude != before).nnz == 0  # the exclusion matrix is left as it was


def test_top_k_items_exclusion_beats_nan_and_minus_inf():
    scores = np.array([[5.0, np.nan, 1.0, -np.inf], [np.inf, -np.inf, np.inf, np.nan]], np.float32)
    exclude = sp.csr_matrix(np.array([[1, 0, 1, 0], [1, 0, 1, 0]], np.float32))
    assert top_k_items(scores, 2, exclude=exclude).tolist() == [[1, 3], [1, 3]]
    assert top_k_items(scores, 4, exclude=exclude).tolist() == [[1, 3, -1, -1], [1, 3, -1, -1]]


def test_membership_ignores_padding():
    truth = sp.csr_matrix(np.array([[0, 0, 0, 1], [1, 0, 0, 0]], np.float32))
    top = np.array([[3, -1, -1], [-1, -1, -1]])
    assert membership(top, truth).tolist() == [[True, False, False], [False, False, False]]


def test_membership_matches_python_sets():
    rng = np.random.default_rng(3)
    n_users, n_items, k = 20, 50, 12
    top = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    truth = [
        set(rng.choice(n_items, int(rng.integers(0, 15)), replace=False).tolist()) for _ in range(n_users)
    ]
    truth[0] = set()
    truth[-1] = set()
    got = membership(top, to_csr(truth, n_items))
    expected = np.array([[int(top[u, j]) in truth[u] for j in range(k)] for u in range(n_users)])
    np.testing.assert_array_equal(got, expected)
    # empty truth matrix
    assert not membership(top, sp.csr_matrix((n_users, n_items))).any()


def test_membership_with_unsorted_csr_indices():
    # row 0 holds {4, 1}, row 1 holds {3, 0, 2}, stored out of order
    truth = sp.csr_matrix((np.ones(5), np.array([4, 1, 3, 0, 2]), np.array([0, 2, 5])), shape=(2, 6))
    top = np.array([[1, 2, 4], [5, 0, 3]])
    assert membership(top, truth).tolist() == [[True, False, True], [False, True, True]]


class FixedScores(Recommender):
    def __init__(self, scores: np.ndarray):
        self.scores = scores

    def score(self, users):
        return self.scores[users]


def test_recommend_never_returns_excluded_items():
    scores, masked, _ = make_case(4, "integer", n_users=30, n_items=80)
    model = FixedScores(scores)
    exclude = to_csr(masked, 80)
    users = np.array([7, 0, 29, 3, 3, 15])
    for k in (1, 10, 50, 70, 80, 200):  # up to 30 of 80 items are excluded: longer lists end in -1
        top = model.recommend(users, k, exclude=exclude)
        assert top.shape == (len(users), min(k, 80))
        for row, u in zip(top, users, strict=True):
            assert not set(row.tolist()) & masked[u]
            assert row.tolist() == padded(ref_ranking(scores[u], masked[u]), k, 80)
    # without exclusion: the plain ranking
    top = model.recommend(users, 10)
    for row, u in zip(top, users, strict=True):
        assert row.tolist() == ref_ranking(scores[u])[:10]


def test_recommend_prefers_unmasked_nan_score_over_masked_item():
    model = FixedScores(np.array([[5.0, np.nan, 1.0]], np.float32))
    exclude = sp.csr_matrix(np.array([[1, 0, 1]], np.float32))
    assert model.recommend(np.array([0]), 1, exclude=exclude).tolist() == [[1]]
    assert model.recommend(np.array([0]), 3, exclude=exclude).tolist() == [[1, -1, -1]]


# ----------------------------------------------------------------------------------------------------------
# ranking_metrics_from_hits


def test_ranking_metrics_from_hits_by_hand():
    hits = np.array([[1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 1]], dtype=bool)
    n_rel = np.array([3, 2, 1])
    out = ranking_metrics_from_hits(hits, n_rel, [2, 5])
    d = [1 / math.log2(j + 2) for j in range(5)]
    # user 0, |R| = 3
    assert out["recall_at_5"][0] == pytest.approx(2 / 3, abs=1e-12)
    assert out["precision_at_5"][0] == pytest.approx(2 / 5, abs=1e-12)
    assert out["ndcg_at_5"][0] == pytest.approx((d[0] + d[2]) / (d[0] + d[1] + d[2]), abs=1e-12)
    assert out["ndcg_at_2"][0] == pytest.approx(d[0] / (d[0] + d[1]), abs=1e-12)
    assert out["map_at_5"][0] == pytest.approx((1 + 2 / 3) / 3, abs=1e-12)
    assert out["map_at_2"][0] == pytest.approx(1 / 2, abs=1e-12)
    assert out["mrr_at_2"][0] == 1.0
    # user 1: no hits
    for name in ("recall", "precision", "ndcg", "map", "mrr", "hit"):
        assert out[f"{name}_at_5"][1] == 0.0
    # user 2, |R| = 1 (fewer than K): ideal DCG is one item, MAP divides by 1
    assert out["ndcg_at_5"][2] == pytest.approx(d[1] + d[4], abs=1e-12)
    assert out["mrr_at_5"][2] == pytest.approx(1 / 2, abs=1e-12)
    assert out["map_at_5"][2] == pytest.approx(1 / 2 + 2 / 5, abs=1e-12)
    assert out["hit_at_2"][2] == 1.0
    assert out["recall_at_2"][2] == 1.0
    assert out["precision_at_2"][2] == pytest.approx(1 / 2, abs=1e-12)


@pytest.mark.parametrize("ties", ["continuous", "rounded", "integer"])
def test_ranking_metrics_from_hits_matches_reference_per_user(ties):
    scores, masked, truth = make_case(5, ties, n_users=40, n_items=120)
    users = [u for u in range(40) if truth[u]]
    ranked = {u: ref_ranking(scores[u], masked[u]) for u in users}
    hits = np.array([[item in truth[u] for item in ranked[u][:20]] for u in users])
    out = ranking_metrics_from_hits(hits, np.array([len(truth[u]) for u in users]), KS)
    for i, u in enumerate(users):
        for k in KS:
            for name, value in ref_metrics(ranked[u], truth[u], k).items():
                assert out[f"{name}_at_{k}"][i] == pytest.approx(value, abs=1e-12), (name, k, u)


# ----------------------------------------------------------------------------------------------------------
# full_ranking_metrics


@pytest.mark.parametrize("ties", ["continuous", "rounded", "integer"])
def test_full_ranking_metrics_match_definitions(ties):
    scores, masked, truth = make_case(6, ties)
    n_items = scores.shape[1]
    got = full_ranking_metrics(
        lambda users: scores[users], to_csr(masked, n_items), to_csr(truth, n_items), KS
    )
    expected, users = ref_mean_metrics(scores, masked, truth, KS)
    assert got["users_evaluated"] == len(users) < len(truth)  # users with no relevant items are skipped
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name
    # coverage: share of the catalogue in at least one evaluated user's top-k
    for k in KS:
        shown = {j for u in users for j in ref_ranking(scores[u], masked[u])[:k]}
        assert got[f"coverage_at_{k}"] == pytest.approx(len(shown) / n_items, abs=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("ties", ["continuous", "rounded", "integer"])
def test_full_ranking_metrics_match_ranx(ties):
    from ranx import Qrels, Run, evaluate

    scores, masked, truth = make_case(7, ties)
    n_items = scores.shape[1]
    got = full_ranking_metrics(
        lambda users: scores[users], to_csr(masked, n_items), to_csr(truth, n_items), KS
    )
    users = [u for u in range(len(truth)) if truth[u]]
    ranked = {u: ref_ranking(scores[u], masked[u]) for u in users}
    qrels = Qrels({f"u{u}": {f"i{j}": 1 for j in truth[u]} for u in users})
    names = {"ndcg": "ndcg", "recall": "recall", "precision": "precision", "hit": "hit_rate", "mrr": "mrr"}
    for k in KS:
        # scores k..1 over our top-k so ranx ranks exactly our list
        run = Run({f"u{u}": {f"i{j}": float(k - r) for r, j in enumerate(ranked[u][:k])} for u in users})
        theirs = evaluate(qrels, run, [f"{m}@{k}" for m in [*names.values(), "map"]], return_mean=False)
        for ours, name in names.items():
            assert got[f"{ours}_at_{k}"] == pytest.approx(float(np.mean(theirs[f"{name}@{k}"])), abs=1e-9)
        # ranx's AP divides by |R|, RecBole's (ours) by min(|R|, k)
        hits = np.array([[j in truth[u] for j in ranked[u][:k]] for u in users])
        n_rel = np.array([len(truth[u]) for u in users])
        ours_map = ranking_metrics_from_hits(hits, n_rel, [k])[f"map_at_{k}"]
        assert got[f"map_at_{k}"] == pytest.approx(float(ours_map.mean()), abs=1e-9)
        rescaled = ours_map * np.minimum(n_rel, k) / n_rel
        assert float(rescaled.mean()) == pytest.approx(float(np.mean(theirs[f"map@{k}"])), abs=1e-9)
        qids = list(qrels.keys())  # ranx's per-query order
        by_user = dict(zip([f"u{u}" for u in users], rescaled, strict=True))
        np.testing.assert_allclose([by_user[q] for q in qids], theirs[f"map@{k}"], rtol=0, atol=1e-9)


def test_full_ranking_metrics_independent_of_batch_size():
    scores, masked, truth = make_case(8, "rounded")
    n_items = scores.shape[1]
    pop = np.random.default_rng(8).random(n_items)
    args = (to_csr(masked, n_items), to_csr(truth, n_items), [10, 1, 5, 20, 10])
    calls = []

    def score(users):
        calls.append(np.array(users))
        return scores[users]

    results = [full_ranking_metrics(score, *args, item_popularity=pop, batch_users=b) for b in (1, 7, 1000)]
    evaluated = np.flatnonzero([bool(t) for t in truth])
    assert len(calls) == len(evaluated) + -(-len(evaluated) // 7) + 1
    # only evaluated users, each once per run (blocks are scored on worker threads, in any order)
    np.testing.assert_array_equal(np.sort(np.concatenate(calls[: len(evaluated)])), evaluated)
    assert set(results[0]) == set(results[1]) == set(results[2])
    assert {k for k in results[0] if k.startswith("ndcg")} == {f"ndcg_at_{k}" for k in KS}
    for other in results[1:]:
        for name, value in results[0].items():
            assert other[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name


def test_mean_popularity_is_the_average_popularity_of_recommended_items():
    scores, masked, truth = make_case(9, "integer", n_users=30, n_items=90)
    pop = np.random.default_rng(9).random(90)
    got = full_ranking_metrics(
        lambda users: scores[users], to_csr(masked, 90), to_csr(truth, 90), [3, 10], item_popularity=pop
    )
    users = [u for u in range(30) if truth[u]]
    for k in (3, 10):
        shown = [j for u in users for j in ref_ranking(scores[u], masked[u])[:k]]
        assert got[f"mean_popularity_at_{k}"] == pytest.approx(float(np.mean(pop[shown])), abs=1e-12)


def assert_matches_reference(scores, masked, truth, ks):
    """Our metrics equal the per-user reference loop; returns (our metrics, users the reference scored)."""
    n_items = scores.shape[1]
    got = full_ranking_metrics(
        lambda users: scores[users], to_csr(masked, n_items), to_csr(truth, n_items), ks
    )
    expected, users = ref_mean_metrics(scores, masked, truth, ks)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name
    return got, users


def test_full_ranking_metrics_k_larger_than_catalogue():
    rng = np.random.default_rng(10)
    n_items = 8
    scores = rng.integers(0, 3, size=(15, n_items)).astype(np.float32)
    truth = [set(rng.choice(n_items, int(rng.integers(0, 6)), replace=False).tolist()) for _ in range(15)]
    masked = [set() for _ in range(15)]
    ks = [3, 8, 12]
    got, _ = assert_matches_reference(scores, masked, truth, ks)
    assert got["coverage_at_8"] == got["coverage_at_12"] == 1.0


def test_full_ranking_metrics_perfect_and_worst_rankers():
    n_users, n_items = 10, 50
    rng = np.random.default_rng(11)
    truth = [set(rng.choice(n_items, 1 + u, replace=False).tolist()) for u in range(n_users)]
    best = np.zeros((n_users, n_items), np.float32)
    for u, items in enumerate(truth):
        best[u, list(items)] = 1.0
    none = sp.csr_matrix((n_users, n_items))
    got = full_ranking_metrics(lambda users: best[users], none, to_csr(truth, n_items), [5])
    for name in ("ndcg", "hit", "mrr", "map"):
        assert got[f"{name}_at_5"] == pytest.approx(1.0, abs=1e-12)
    assert got["recall_at_5"] == pytest.approx(np.mean([min(len(t), 5) / len(t) for t in truth]), abs=1e-12)
    assert got["precision_at_5"] == pytest.approx(np.mean([min(len(t), 5) / 5 for t in truth]), abs=1e-12)
    worst = -best
    got = full_ranking_metrics(lambda users: worst[users], none, to_csr(truth, n_items), [5])
    assert all(got[f"{m}_at_5"] == 0.0 for m in METRICS)


def short_lists_case():
    """12 items; some users have most of the catalogue masked, so fewer than K candidates remain."""
    rng = np.random.default_rng(12)
    n_users, n_items = 16, 12
    scores = rng.integers(0, 3, size=(n_users, n_items)).astype(np.float32)
    masked, truth = [], []
    for u in range(n_users):
        m = set(rng.choice(n_items, [0, 3, 7, 9][u % 4], replace=False).tolist())
        free = sorted(set(range(n_items)) - m)
        truth.append(set(rng.choice(free, min(len(free), 1 + u % 3), replace=False).tolist()))
        masked.append(m)
    masked[5] = set(range(n_items)) - {n_items - 2}  # only one candidate left
    truth[5] = {n_items - 2}
    masked[6] = set(range(1, n_items))  # only item 0 is left
    truth[6] = {0}
    for u in range(n_users):  # the last item is never a candidate (so -1 padding must not count as it)
        masked[u].add(n_items - 1)
        truth[u].discard(n_items - 1)
    return scores, masked, truth


def test_full_ranking_metrics_with_fewer_candidates_than_k():
    scores, masked, truth = short_lists_case()
    n_items = scores.shape[1]
    ks = [2, 5, 10]
    got, users = assert_matches_reference(scores, masked, truth, ks)
    for k in ks:  # padding (-1) is not an item: coverage counts only listed items
        shown = {j for u in users for j in ref_ranking(scores[u], masked[u])[:k]}
        assert n_items - 1 not in shown
        assert got[f"coverage_at_{k}"] == pytest.approx(len(shown) / n_items, abs=1e-12)
    assert got["coverage_at_10"] < 1.0


def test_mean_popularity_with_fewer_candidates_than_k():
    # "the average share of training users who played a recommended item": an average over the items
    # actually recommended, padding slots excluded
    scores, masked, truth = short_lists_case()
    n_items = scores.shape[1]
    pop = np.linspace(0.05, 0.95, n_items)
    got = full_ranking_metrics(
        lambda users: scores[users],
        to_csr(masked, n_items),
        to_csr(truth, n_items),
        [10],
        item_popularity=pop,
    )
    users = [u for u in range(len(truth)) if truth[u]]
    shown = [j for u in users for j in ref_ranking(scores[u], masked[u])[:10]]
    assert got["mean_popularity_at_10"] == pytest.approx(float(np.mean(pop[shown])), abs=1e-12)


@pytest.mark.parametrize(
    ("ks", "primary", "expected"),
    [
        ([10, 20, 50], "ndcg_at_10", [10]),
        ([10, 20, 50], "recall_at_50", [10, 50]),
        ([5], "map_at_20", [5, 20]),
    ],
)
def test_valid_is_scored_at_the_primary_metrics_k_too(ks, primary, expected):
    from airush.music.task import validated_ks

    assert validated_ks(ks, primary) == expected


def test_music_plots_draw_what_the_metrics_hold(tmp_path):
    from airush.music.plots import metrics_over_k, save_evaluation_plots

    metrics = {
        "ndcg_at_10": 0.1,
        "ndcg_at_20": 0.15,
        "recall_at_10": 0.2,
        "cold_ndcg_at_10": 0.05,
        "cold_ndcg_at_20": 0.06,
        "valid_ndcg_at_10": 0.3,
        "coverage_at_10": 0.3,
        "mean_popularity_at_10": 12.0,
        "users_evaluated": 50.0,
    }
    assert metrics_over_k(metrics) == {
        "ndcg": {10: 0.1, 20: 0.15},
        "recall": {10: 0.2},
        "coverage": {10: 0.3},
        "mean_popularity": {10: 12.0},
    }
    assert metrics_over_k(metrics, "cold_") == {"ndcg": {10: 0.05, 20: 0.06}}
    written = save_evaluation_plots(metrics, {"train_loss": {0: 1.0, 1: 0.5}, "flat": {0: 1.0}}, tmp_path)
    names = [p.name for p in written]
    assert names == [
        "metrics_over_k.png",
        "cold_vs_all.png",
        "coverage_popularity.png",
        "training_curves.png",
    ]
    assert all(p.stat().st_size > 1000 for p in written)
    assert save_evaluation_plots({"users_evaluated": 3.0}, {}, tmp_path / "none") == []
    spread = {"ndcg_at_10": np.array([0.0, 0.0, 0.5, 1.0])}
    (histogram,) = save_evaluation_plots({}, {}, tmp_path / "hist", spread)
    assert histogram.name == "ndcg_at_10_per_user.png" and histogram.stat().st_size > 1000


def test_per_user_values_are_the_users_behind_the_mean():
    from airush.music.metrics import full_ranking_metrics

    rng = np.random.default_rng(0)
    n_users, n_items = 60, 40
    truth = sp.random(n_users, n_items, density=0.1, format="csr", random_state=1)
    truth.data[:] = 1.0
    masked = sp.random(n_users, n_items, density=0.1, format="csr", random_state=2)
    masked = (masked - masked.multiply(truth)).tocsr()  # a known item is never also a test item
    scores = rng.random((n_users, n_items))
    per_user = {"ndcg_at_10": np.empty(0), "recall_at_5": np.empty(0)}
    means = full_ranking_metrics(
        lambda u: scores[u], masked, truth, [5, 10], batch_users=7, per_user=per_user
    )
    for name, values in per_user.items():
        assert len(values) == means["users_evaluated"] == (np.diff(truth.indptr) > 0).sum()
        assert values.mean() == pytest.approx(means[name], rel=1e-12)
