"""The one retrieval core: exact scoring in memory-bounded blocks, deterministic ranks, top-k.

Every model, dense or lexical, reaches the metrics through `rank_pool`. It never sorts the pool: the rank of a
relevant candidate d for a query is 1 + #(candidates scoring higher) + #(candidates scoring the same with a
smaller id), which is exactly its position under the tie policy "score descending, then candidate id
ascending" (the pool is ordered by id, so id order is position order). All metrics come from these ranks and
the top-k list, so they always describe the same ranking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

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


def _top_k(block: np.ndarray, k: int) -> np.ndarray:
    """Top-k positions per row under the tie policy, via a partial sort (ties at the cut-off included)."""
    n = block.shape[1]
    kk = min(k, n)
    out = np.full((block.shape[0], k), -1, dtype=np.int64)
    part = np.argpartition(-block, kk - 1, axis=1)[:, :kk]
    cutoff = np.take_along_axis(block, part, axis=1).min(axis=1)
    for i, row in enumerate(block):
        cand = np.flatnonzero(row >= cutoff[i])
        order = np.lexsort((cand, -row[cand]))[:kk]
        out[i, :kk] = cand[order]
    return out


def _ranks_of_relevant(scores: np.ndarray, relevant: list[np.ndarray], positions: np.ndarray) -> list[np.ndarray]:
    """Rank of every relevant candidate in its row, one pass over the block per relevant slot."""
    width = max((len(r) for r in relevant), default=0)
    rel = np.zeros((len(relevant), width), dtype=np.int64)
    valid = np.zeros_like(rel, dtype=bool)
    for i, r in enumerate(relevant):
        rel[i, : len(r)] = r
        valid[i, : len(r)] = True
    rel_scores = np.take_along_axis(scores, rel, axis=1)
    counts = np.empty_like(rel)
    for j in range(width):
        s = rel_scores[:, j : j + 1]
        counts[:, j] = np.count_nonzero(scores > s, axis=1)
        tied = np.flatnonzero(np.count_nonzero(scores == s, axis=1) > 1)  # exact ties are rare: look only there
        if len(tied):
            counts[tied, j] += np.count_nonzero(
                (scores[tied] == s[tied]) & (positions < rel[tied, j : j + 1]), axis=1)
    return [1 + counts[i, valid[i]] for i in range(len(relevant))]


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
        scores = np.asarray(score(rows), dtype=np.float32)
        if not np.isfinite(scores).all():
            raise FloatingPointError("the model produced NaN or infinite scores; check its embeddings")
        if exclude is not None:
            for i, q in enumerate(rows):
                scores[i, exclude[q]] = -np.inf
        ranks.extend(_ranks_of_relevant(scores, [relevant[q] for q in rows], positions))
        if k:
            top = _top_k(scores, k)
            top[(top >= 0) & (np.take_along_axis(scores, np.maximum(top, 0), axis=1) == -np.inf)] = -1
            tops.append(top)
    top = np.concatenate(tops) if tops else np.empty((0, k), dtype=np.int64)
    return Ranking(ranks=ranks, top=top)
