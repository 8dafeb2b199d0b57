"""The one retrieval core: exact scoring in memory-bounded blocks, deterministic ranks, top-k.

Every model, dense or lexical, reaches the metrics through `rank_pool`. The rank of a relevant candidate d for
a query is 1 + #(candidates scoring higher) + #(candidates scoring the same with a smaller id), which is
exactly its position under the tie policy "score descending, then candidate id ascending" (the pool is ordered
by id, so id order is position order). Those counts come from one comparison pass per relevant candidate when a
query has few, else from one sort of each score row and a binary search (the multi setting: a relevant
candidate per language, and the top k); only exact ties are recounted. All metrics come from these ranks and
the top-k list, so they always describe the same ranking."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from xbench.ragged import pad, split_rows

ScoreFn = Callable[[np.ndarray], np.ndarray]
"""Maps query positions (b,) to a (b, pool size) float32 score block, columns in pool order."""

DEFAULT_BLOCK_BYTES = 256 << 20


@dataclass(frozen=True)
class Ranking:
    ranks: list[np.ndarray]  # per query: 1-based rank of each relevant candidate, aligned with `relevant`
    top: np.ndarray  # (n_queries, k) pool positions of the top k, -1 where the pool is smaller than k


def dense_scorer(queries: np.ndarray, pool: np.ndarray) -> ScoreFn:
    """Dot product (cosine for normalised embeddings) of the given queries against the whole pool."""
    pool_t = np.ascontiguousarray(pool.T)
    return lambda rows: queries[rows] @ pool_t


SORT_FROM_WIDTH = 5
"""Relevant candidates per query from which one sort of each score row beats a comparison pass per relevant
candidate (measured: a row sort costs about as much as 8 passes; the binary searches after it are nearly free)."""


def _count_below(sorted_rows: np.ndarray, values: np.ndarray, inclusive: bool) -> np.ndarray:
    """(rows, m) counts of entries of each ascending row below values[i, j] (at or below when `inclusive`): one
    binary search over every row at once, since numpy's searchsorted takes a single sorted array."""
    n = sorted_rows.shape[1]
    lo = np.zeros(values.shape, dtype=np.int64)
    hi = np.full(values.shape, n, dtype=np.int64)
    for _ in range(n.bit_length()):
        mid = (lo + hi) // 2
        probe = np.take_along_axis(sorted_rows, np.minimum(mid, n - 1), axis=1)
        below = (probe <= values) if inclusive else (probe < values)
        active = lo < hi
        lo = np.where(active & below, mid + 1, lo)
        hi = np.where(active & ~below, mid, hi)
    return lo


def _top_k(scores: np.ndarray, sorted_rows: np.ndarray, k: int) -> np.ndarray:
    """Top-k positions per row under the tie policy; the k-th largest score comes from the sorted rows, and only
    rows with ties at that cut-off need a per-row sort of their tied candidates."""
    n = scores.shape[1]
    kk = min(k, n)
    out = np.full((scores.shape[0], k), -1, dtype=np.int64)
    if kk == 0:
        return out
    cutoff = sorted_rows[:, n - kk : n - kk + 1]
    at_cutoff = n - _count_below(sorted_rows, cutoff, inclusive=False)[:, 0]
    clean = np.flatnonzero(at_cutoff == kk)  # exactly kk candidates at or above the cut-off: the usual case
    block = scores[clean]
    cols = np.nonzero(block >= cutoff[clean])[1].reshape(len(clean), kk)
    order = np.lexsort((cols, -np.take_along_axis(block, cols, axis=1)), axis=-1)
    out[clean, :kk] = np.take_along_axis(cols, order, axis=1)
    for i in np.flatnonzero(at_cutoff != kk):
        cand = np.flatnonzero(scores[i] >= cutoff[i])
        out[i, :kk] = cand[np.lexsort((cand, -scores[i, cand]))[:kk]]
    return out


def _ranks_of_relevant(scores: np.ndarray, relevant: list[np.ndarray], positions: np.ndarray,
                       sorted_rows: np.ndarray | None) -> list[np.ndarray]:
    """Rank of every relevant candidate in its row: counted against the sorted rows when given, else by one
    comparison pass over the block per relevant slot; exact ties are rare, so only tied entries are recounted."""
    rel = pad(relevant, 0, np.int64)
    width = rel.shape[1]
    valid = np.arange(width) < np.fromiter(map(len, relevant), dtype=np.int64, count=len(relevant))[:, None]
    rel_scores = np.take_along_axis(scores, rel, axis=1)
    if sorted_rows is not None:
        at_or_below = _count_below(sorted_rows, rel_scores, inclusive=True)
        counts = scores.shape[1] - at_or_below
        tied = at_or_below - _count_below(sorted_rows, rel_scores, inclusive=False) > 1
    else:
        counts = np.empty_like(rel)
        tied = np.zeros_like(valid)
        for j in range(width):
            s = rel_scores[:, j : j + 1]
            counts[:, j] = np.count_nonzero(scores > s, axis=1)
            tied[:, j] = np.count_nonzero(scores == s, axis=1) > 1
    for j in range(width):
        rows = np.flatnonzero(tied[:, j] & valid[:, j])
        if len(rows):
            counts[rows, j] += np.count_nonzero(
                (scores[rows] == rel_scores[rows, j : j + 1]) & (positions < rel[rows, j : j + 1]), axis=1)
    return split_rows(1 + counts[valid], np.nonzero(valid)[0], len(relevant))


def rank_pool(
    score: ScoreFn,
    relevant: Sequence[np.ndarray],
    pool_size: int,
    k: int = 10,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    desc: str | None = None,
    exclude: Sequence[np.ndarray] | None = None,
) -> Ranking:
    """Rank the pool for every query; `relevant[i]` holds the pool positions of query i's relevant candidates.

    Queries are scored in blocks of at most `block_bytes` of scores, so the full query x pool matrix never
    exists for big pools. `k=0` skips the top-k list when only the ranks are needed. `exclude[i]` holds pool
    positions withheld from query i (scored -inf: below every candidate, never in its top k).
    """
    n_q = len(relevant)
    block = max(1, block_bytes // (4 * max(pool_size, 1)))
    positions = np.arange(pool_size)
    ranks: list[np.ndarray] = []
    tops = []
    for start in tqdm(range(0, n_q, block), desc=desc, disable=desc is None, leave=False, unit="block"):
        rows = np.arange(start, min(start + block, n_q))
        scores = np.array(score(rows), dtype=np.float32, copy=True if exclude is not None else None)  # views are shared
        if not (np.isfinite(scores.min(initial=0.0)) and np.isfinite(scores.max(initial=0.0))):  # NaN propagates
            raise FloatingPointError("the model produced NaN or infinite scores; check its embeddings")
        if exclude is not None:
            for i, q in enumerate(rows.tolist()):
                scores[i, exclude[q]] = -np.inf
        block_relevant = [relevant[q] for q in rows.tolist()]
        wide = max((len(r) for r in block_relevant), default=0) >= SORT_FROM_WIDTH
        sorted_rows = np.sort(scores, axis=1) if k or wide else None
        ranks.extend(_ranks_of_relevant(scores, block_relevant, positions, sorted_rows))
        if k:
            assert sorted_rows is not None  # sorted above whenever k > 0
            top = _top_k(scores, sorted_rows, k)
            top[(top >= 0) & (np.take_along_axis(scores, np.maximum(top, 0), axis=1) == -np.inf)] = -1
            tops.append(top)
    top = np.concatenate(tops) if tops else np.empty((0, k), dtype=np.int64)
    return Ranking(ranks=ranks, top=top)
