"""xbench.retrieval.stream: the running top k against rank_pool and a brute-force sort (many exact ties, blocks in
any order), exact search over shards against the full matrix, the non-finite check, recall against exact."""

from __future__ import annotations

import numpy as np
import pytest

from xbench.retrieval.exact import rank_pool
from xbench.retrieval.stream import TopK, exact_search, recall_vs_exact


def fed(scores: np.ndarray, k: int, cuts: list[int], rng: np.random.Generator) -> TopK:
    """A TopK fed the columns of `scores` in blocks split at `cuts`, the blocks in a random order."""
    top = TopK(len(scores), k)
    edges = [0, *cuts, scores.shape[1]]
    blocks = list(zip(edges[:-1], edges[1:]))
    for i in rng.permutation(len(blocks)):
        a, b = blocks[i]
        top.add(scores[:, a:b], a)
    return top


def brute(scores: np.ndarray, k: int, key: np.ndarray) -> list[list[int]]:
    """Per row the first k positions under (score desc, key asc), by Python's sort."""
    return [sorted(range(len(row)), key=lambda j: (-row[j], key[j]))[:k] for row in scores.tolist()]


@pytest.mark.parametrize("k", [1, 7, 50, 300, 450])
@pytest.mark.parametrize("seed", range(3))
def test_topk_equals_rank_pool_with_many_ties(seed, k):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 12, (25, 400)).astype(np.float32)  # ~33 candidates share each score: ties everywhere
    cuts = sorted(rng.choice(np.arange(1, 400), 6, replace=False).tolist())
    positions, top_scores = fed(scores, k, cuts, rng).result()
    expected = rank_pool(lambda rows: scores[rows], [np.array([0])] * 25, 400, k=k).top
    assert positions.tolist() == expected.tolist()
    assert positions.shape == (25, k) and positions.dtype == np.int64
    filled = positions >= 0
    np.testing.assert_array_equal(top_scores[filled], np.take_along_axis(scores, np.maximum(positions, 0), 1)[filled])
    assert (top_scores[~filled] == -np.inf).all() and (filled.sum(axis=1) == min(k, 400)).all()


@pytest.mark.parametrize("seed", range(3))
def test_topk_orders_ties_by_the_key(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, (10, 120)).astype(np.float32)
    ids = np.array([f"doc{x:05d}" for x in rng.permutation(100_000)[:120]])  # id order is not position order
    top = fed(scores, 20, [30, 31, 90], rng)
    positions, _ = top.result(order_key=lambda p: ids[p])
    assert positions.tolist() == brute(scores, 20, ids)
    assert top.result()[0].tolist() == brute(scores, 20, np.arange(120))  # default key: the position


def test_topk_by_hand():
    top = TopK(2, 3)
    top.add(np.array([[0.5, 0.9], [1.0, 1.0]], np.float32), 10)
    top.add(np.array([[0.9, 0.1, 0.7], [1.0, -np.inf, 2.0]], np.float32), 0)
    positions, scores = top.result()
    assert positions.tolist() == [[0, 11, 2], [2, 0, 10]]  # 0.9 at 0 and 11: position 0 first
    assert scores.tolist() == [[np.float32(0.9), np.float32(0.9), np.float32(0.7)], [2.0, 1.0, 1.0]]
    small = TopK(1, 4)
    small.add(np.array([[3.0, -np.inf]], np.float32), 0)
    assert [a.tolist() for a in small.result()] == [[[0, -1, -1, -1]], [[3.0, -np.inf, -np.inf, -np.inf]]]


def test_exact_search_over_shards_equals_the_full_matrix():
    rng = np.random.default_rng(1)
    docs = rng.integers(-3, 4, (1000, 8)).astype(np.float32)  # integer products: exact in any summation order
    queries = rng.integers(-3, 4, (17, 8)).astype(np.float32)
    edges = [0, 130, 131, 600, 1000]
    shards = [(a, docs[a:b]) for a, b in zip(edges[:-1], edges[1:])]
    top = exact_search(queries, shards, k=40, block_bytes=4 * 17 * 50)  # 50 rows a block: blocks inside shards
    positions, scores = top.result()
    full = queries @ docs.T
    assert positions.tolist() == brute(full, 40, np.arange(1000))
    np.testing.assert_array_equal(scores, np.take_along_axis(full, positions, axis=1))


def test_non_finite_scores_name_the_embeddings():
    docs = np.ones((10, 4), np.float32)
    docs[7, 2] = np.nan
    with pytest.raises(FloatingPointError, match="embeddings"):
        exact_search(np.ones((2, 4), np.float32), [(0, docs[:5]), (5, docs[5:])], k=3)


def test_recall_vs_exact_by_hand():
    approx = np.array([[1, 2, 3, -1], [5, 6, -1, -1], [4, -1, -1, -1]])
    exact = np.array([[3, 2, 9, 8], [7, -1, -1, -1], [-1, -1, -1, -1]])
    assert recall_vs_exact(approx, exact) == pytest.approx((2 / 4 + 0 / 1) / 2)  # the third row has nothing to find
    assert recall_vs_exact(exact, exact) == 1.0
