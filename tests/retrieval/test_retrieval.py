"""The retrieval core against a brute-force full sort under the same tie policy (score desc, then id asc)."""

from __future__ import annotations

import numpy as np
import pytest

from xbench.retrieval.exact import SORT_FROM_WIDTH, dense_scorer, rank_pool


def brute_force(scores: np.ndarray) -> np.ndarray:
    """Full ranking per row: lexsort on (position, -score) = score descending, then id ascending."""
    return np.stack([np.lexsort((np.arange(len(row)), -row)) for row in scores])


@pytest.mark.parametrize("block_bytes", [4, 64, 1 << 20])
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("k", "most_relevant"), [(10, 3), (0, SORT_FROM_WIDTH - 1), (0, SORT_FROM_WIDTH + 3)])
def test_ranks_and_top_k_match_full_sort_with_ties(seed, block_bytes, k, most_relevant):
    """Both ways of ranking: comparison passes (few relevant, no top k) and one sort per row (else)."""
    rng = np.random.default_rng(seed)
    n_q, n = 23, 57
    scores = rng.integers(0, 4, size=(n_q, n)).astype(np.float32)  # few distinct values: ties everywhere
    scores[::4] += rng.normal(size=(len(scores[::4]), n)).astype(np.float32)  # and rows without ties
    relevant = [rng.choice(n, size=rng.integers(1, most_relevant + 1), replace=False) for _ in range(n_q)]
    ranking = rank_pool(lambda rows: scores[rows], relevant, n, k=k, block_bytes=block_bytes)
    order = brute_force(scores)
    for q in range(n_q):
        position = np.empty(n, dtype=np.int64)
        position[order[q]] = np.arange(1, n + 1)
        assert ranking.ranks[q].tolist() == position[relevant[q]].tolist()
        assert ranking.top[q].tolist() == order[q, :k].tolist() if k else ranking.top.size == 0


def test_pool_smaller_than_k_is_padded():
    scores = np.array([[0.5, 0.9, 0.5]], dtype=np.float32)
    ranking = rank_pool(lambda rows: scores[rows], [np.array([2])], 3, k=5)
    assert ranking.top.tolist() == [[1, 0, 2, -1, -1]]
    assert ranking.ranks[0].tolist() == [3]  # tied with position 0, which has the smaller id


def test_dense_scorer_is_dot_product():
    rng = np.random.default_rng(0)
    q, d = rng.normal(size=(4, 8)).astype(np.float32), rng.normal(size=(6, 8)).astype(np.float32)
    np.testing.assert_allclose(dense_scorer(q, d)(np.array([1, 3])), q[[1, 3]] @ d.T, rtol=1e-6)


def test_non_finite_scores_are_refused():
    with pytest.raises(FloatingPointError):
        rank_pool(lambda rows: np.full((len(rows), 3), np.nan, dtype=np.float32), [np.array([0])], 3)


def test_ranks_only_mode_skips_top_k():
    scores = np.array([[0.1, 0.7, 0.3]], dtype=np.float32)
    ranking = rank_pool(lambda rows: scores[rows], [np.array([0, 2])], 3, k=0)
    assert ranking.ranks[0].tolist() == [3, 2] and ranking.top.size == 0
