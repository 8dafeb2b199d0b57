"""The retrieval core against a brute-force full sort under the same tie policy (score desc, then id asc), on both
of its paths (numpy blocks, torch blocks), and its dense products against the thread count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from xbench.retrieval.exact import SORT_FROM_WIDTH, TILE, _Above, dense_scorer, dot, rank_pool, torch_scorer

# The same score block as numpy (the CPU path) or as a torch tensor (the path of an accelerator, run on the CPU).
BLOCKS = {"numpy": lambda block: block, "torch": torch.from_numpy}


def brute_force(scores: np.ndarray) -> np.ndarray:
    """Full ranking per row: lexsort on (position, -score) = score descending, then id ascending."""
    return np.stack([np.lexsort((np.arange(len(row)), -row)) for row in scores])


@pytest.mark.parametrize("block", sorted(BLOCKS))
@pytest.mark.parametrize("block_bytes", [4, 64, 1 << 20])
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("k", "most_relevant", "high"), [(10, 3, False), (0, SORT_FROM_WIDTH - 1, False),
                                                     (0, SORT_FROM_WIDTH + 3, False), (10, SORT_FROM_WIDTH + 3, True),
                                                     (10, SORT_FROM_WIDTH + 3, False)])
def test_ranks_and_top_k_match_full_sort_with_ties(seed, block_bytes, k, most_relevant, high, block):
    """Every way of ranking numpy blocks, comparison passes (few relevant), the sorted entries above each row's
    lowest relevant score (many relevant, scored `high`), one sort per row (many relevant, some scored low), and
    the torch path, all against the brute-force order."""
    rng = np.random.default_rng(seed)
    n_q, n = 23, 57
    scores = rng.integers(0, 4, size=(n_q, n)).astype(np.float32)  # few distinct values: ties everywhere
    scores[::4] += rng.normal(size=(len(scores[::4]), n)).astype(np.float32)  # and rows without ties
    sizes = rng.integers(1, most_relevant + 1, size=n_q)
    relevant = [np.argsort(-row, kind="stable")[rng.choice(12, size=m, replace=False)] if high
                else rng.choice(n, size=m, replace=False) for row, m in zip(scores, sizes)]
    ranking = rank_pool(lambda rows: BLOCKS[block](scores[rows]), relevant, n, k=k, block_bytes=block_bytes)
    order = brute_force(scores)
    for q in range(n_q):
        position = np.empty(n, dtype=np.int64)
        position[order[q]] = np.arange(1, n + 1)
        assert ranking.ranks.rows()[q].tolist() == position[relevant[q]].tolist()
        assert ranking.top[q].tolist() == order[q, :k].tolist() if k else ranking.top.size == 0


@pytest.mark.parametrize("floor", [[-0.0, 1.5], [-5.0, -np.inf]])
def test_counts_above_a_floor_by_hand(floor):
    """Entries above (and at or above) each value, and the k-th largest, by hand: -0.0 equals 0.0 and -inf sorts
    lowest, both ways (a high floor keeps 7 of 16 entries: integer keys; a low one keeps all: rows sorted)."""
    scores = np.array([[0.0, 0.5, -0.0, 2.0, -1.0, -5.0, -5.0, -5.0],
                       [-np.inf, 3.0, 3.0, -2.0, 1.5, -5.0, -5.0, -5.0]], dtype=np.float32)
    above = _Above(scores, np.array(floor, dtype=np.float32))
    keys = floor[0] == 0.0
    assert (above.sorted_rows is None) == keys
    values = np.array([[0.5, -0.0], [3.0, 1.5]], dtype=np.float32)
    assert above.count(values, inclusive=False).tolist() == [[1, 2], [0, 2]]
    assert above.count(values, inclusive=True).tolist() == [[2, 4], [2, 3]]
    assert above.kth_largest(2).tolist() == [0.5, 3.0]
    fourth = above.kth_largest(4)  # the high floor kept only 3 entries of the second row
    assert fourth[0] == 0.0 and (np.isnan(fourth[1]) if keys else fourth[1] == -2.0)


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_pool_smaller_than_k_is_padded(block):
    scores = np.array([[0.5, 0.9, 0.5]], dtype=np.float32)
    ranking = rank_pool(lambda rows: BLOCKS[block](scores[rows]), [np.array([2])], 3, k=5)
    assert ranking.top.tolist() == [[1, 0, 2, -1, -1]]
    assert ranking.ranks.rows()[0].tolist() == [3]  # tied with position 0, which has the smaller id


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_excluded_candidates_rank_last_and_leave_the_top_k(block):
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [0.2, 0.2, 0.2, 0.2]], dtype=np.float32)
    shared = BLOCKS[block](scores)
    exclude = [np.array([0, 2]), np.array([1, 2, 3])]
    ranking = rank_pool(lambda rows: shared[rows], [np.array([1, 2]), np.array([0, 3])], 4, k=3, exclude=exclude)
    # row 0: 0.5 (1), 0.1 (3), then the withheld 0 and 2 at -inf in id order; row 1: only 0 competes, then 1, 2, 3
    assert [r.tolist() for r in ranking.ranks.rows()] == [[1, 4], [1, 4]]
    assert ranking.top.tolist() == [[1, 3, -1], [0, -1, -1]]
    assert (np.asarray(shared) == scores).all()  # the scorer's block is not written into


@pytest.mark.parametrize("scorer", [dense_scorer, lambda q, d: torch_scorer(q, d, "cpu")])
def test_dense_scorers_are_dot_products(scorer):
    rng = np.random.default_rng(0)
    q, d = rng.normal(size=(4, 8)).astype(np.float32), rng.normal(size=(6, 8)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(scorer(q, d)(np.array([1, 3]))), q[[1, 3]] @ d.T, rtol=1e-5, atol=1e-6)


def test_torch_scorer_ranks_like_the_numpy_path():
    """Integer-valued vectors give exact dot products on both paths, with ties everywhere."""
    rng = np.random.default_rng(1)
    q, d = rng.integers(-2, 3, size=(40, 6)).astype(np.float32), rng.integers(-2, 3, size=(90, 6)).astype(np.float32)
    relevant = [rng.choice(90, size=rng.integers(1, 12), replace=False) for _ in range(40)]
    exclude = [rng.choice(90, size=3, replace=False) for _ in range(40)]
    cpu, dev = (rank_pool(scorer, relevant, 90, k=10, block_bytes=4 * 90 * 7, exclude=exclude)
                for scorer in (dense_scorer(q, d), torch_scorer(q, d, "cpu")))
    assert [r.tolist() for r in cpu.ranks.rows()] == [r.tolist() for r in dev.ranks.rows()]
    assert cpu.top.tolist() == dev.top.tolist()


def test_dot_is_bit_identical_for_one_and_two_threads():
    """Several tiles each way, edge tiles included; BLAS itself would move the last bits with the thread count."""
    rng = np.random.default_rng(2)
    q = rng.normal(size=(TILE[0] + 37, 96)).astype(np.float32)
    pool_t = rng.normal(size=(96, 2 * TILE[1] + 11)).astype(np.float32)
    with threadpool_limits(1, user_api="blas"):
        one = dot(q, pool_t)
    with threadpool_limits(2, user_api="blas"):
        two = dot(q, pool_t)
    assert one.tobytes() == two.tobytes()
    np.testing.assert_allclose(one, q.astype(np.float64) @ pool_t, rtol=1e-4, atol=1e-4)


def test_non_finite_scores_are_refused():
    with pytest.raises(FloatingPointError):
        rank_pool(lambda rows: np.full((len(rows), 3), np.nan, dtype=np.float32), [np.array([0])], 3)
    with pytest.raises(FloatingPointError):
        rank_pool(lambda rows: torch.full((len(rows), 3), torch.nan), [np.array([0])], 3)


def test_ranks_only_mode_skips_top_k():
    scores = np.array([[0.1, 0.7, 0.3]], dtype=np.float32)
    ranking = rank_pool(lambda rows: scores[rows], [np.array([0, 2])], 3, k=0)
    assert ranking.ranks.rows()[0].tolist() == [3, 2] and ranking.top.size == 0
