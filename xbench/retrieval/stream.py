"""Exact top-k over a corpus too large for memory: its vectors come as shards (start position, matrix), e.g.
memory-mapped files, and only the running top k of every query is held.

`TopK` keeps, per query, every candidate scoring at or above the current k-th best score, so candidates tied at
the cut-off all survive until the end, where the core's tie policy (score descending, then candidate id) picks
among them; the result is therefore independent of the shard order and size. `exact_search` scores each shard in
column blocks of bounded size and feeds them to a `TopK`: peak memory is one score block plus the queries,
whatever the corpus size. `recall_vs_exact` measures an approximate index against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from tqdm.auto import tqdm

from xbench.retrieval.exact import DEFAULT_BLOCK_BYTES

Shards = Iterable[tuple[int, np.ndarray]]
"""(position of the first row, (rows, dim) float32 matrix) pairs; together they cover the pool's positions once."""


def _pack(rows: np.ndarray, n_rows: int, *columns: tuple[np.ndarray, float | int]) -> list[np.ndarray]:
    """Ragged entries (row ids ascending, as a flat np.flatnonzero gives them) as (n_rows, widest) arrays, each column
    padded with its fill value after the row's entries."""
    counts = np.bincount(rows, minlength=n_rows)
    slot = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]
    width = int(counts.max(initial=0))
    out = []
    for values, fill in columns:
        packed = np.full((n_rows, width), fill, dtype=values.dtype)
        packed[rows, slot] = values
        out.append(packed)
    return out


def _kth(scores: np.ndarray, k: int) -> np.ndarray:
    """Each row's k-th best score; -inf for rows holding fewer than k (padding is -inf)."""
    width = scores.shape[1]
    if width < k:
        return np.full(len(scores), -np.inf, dtype=np.float32)
    return np.partition(scores, width - k, axis=1)[:, width - k]


class TopK:
    """The exact running top k of `n_queries` score rows, fed block by block (`add`) and read once (`result`).

    Kept per row: every candidate scoring >= the row's k-th best score so far (ties at the cut-off included),
    as padded arrays (-inf / -1 after a row's entries). A block costs one comparison pass against that cut (and,
    for rows holding fewer than k so far, one partition of the block); its few candidates are then merged with
    the kept ones and cut again.
    """

    def __init__(self, n_queries: int, k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        self.k = k
        self.scores = np.full((n_queries, 0), -np.inf, dtype=np.float32)
        self.positions = np.full((n_queries, 0), -1, dtype=np.int64)

    def add(self, scores: np.ndarray, offset: int) -> None:
        """Merge a (n_queries, m) float32 score block for pool positions offset .. offset+m-1."""
        scores = np.asarray(scores, dtype=np.float32)
        n, m = scores.shape
        if n != len(self.scores):
            raise ValueError(f"a score block of {n} rows for {len(self.scores)} queries")
        cut = _kth(self.scores, self.k)
        fresh = np.flatnonzero(cut == -np.inf) if m > self.k else np.zeros(0, dtype=np.int64)
        if len(fresh):  # rows holding fewer than k so far (the first block): the block's own k-th best is the cut
            block = scores if len(fresh) == n else scores[fresh]
            cut[fresh] = np.partition(block, m - self.k, axis=1)[:, m - self.k]
        rows, cols = np.divmod(np.flatnonzero(scores >= cut[:, None]), m)  # flat: 2-D np.nonzero is 10x slower
        self._fold(*_pack(rows, n, (scores[rows, cols], -np.inf), (cols + offset, -1)))

    def merge(self, other: TopK) -> None:
        """Fold in the top k of other pool positions (a shard searched elsewhere, e.g. by a Ray worker). Each keeps
        every candidate >= its own k-th best, so the result is what one TopK fed both's blocks would hold."""
        if other.k != self.k or len(other.scores) != len(self.scores):
            raise ValueError(f"merging a top {other.k} of {len(other.scores)} queries into a top {self.k} of "
                             f"{len(self.scores)}")
        self._fold(other.scores, other.positions)

    def _fold(self, new_scores: np.ndarray, new_positions: np.ndarray) -> None:
        """Keep, of the held and the new candidates (padded arrays), those >= their row's k-th best."""
        scores, positions = np.hstack([self.scores, new_scores]), np.hstack([self.positions, new_positions])
        keep = (scores >= _kth(scores, self.k)[:, None]) & (positions >= 0)
        rows, cols = np.divmod(np.flatnonzero(keep), keep.shape[1])
        self.scores, self.positions = _pack(rows, len(scores), (scores[rows, cols], -np.inf),
                                            (positions[rows, cols], -1))

    def result(self, order_key: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(positions (n_queries, k) int64, scores float32) ordered by score descending, then by
        `order_key(positions)` ascending (e.g. the candidates' ids; default: the position itself), cut at k;
        -1 / -inf where a row has fewer than k candidates (a candidate scored -inf counts as none, as in
        `rank_pool`)."""
        scores, positions = self.scores, self.positions
        valid = (positions >= 0) & (scores > -np.inf)
        key = np.where(valid, positions, np.iinfo(np.int64).max)
        if order_key is not None:
            key[valid] = np.unique(order_key(positions[valid]), return_inverse=True)[1]
        order = np.lexsort((key, np.where(valid, -scores, np.inf)), axis=1)[:, : self.k]
        top = np.where(np.take_along_axis(valid, order, axis=1), np.take_along_axis(positions, order, axis=1), -1)
        top_scores = np.where(top >= 0, np.take_along_axis(scores, order, axis=1), -np.inf).astype(np.float32)
        pad = ((0, 0), (0, self.k - top.shape[1]))
        return np.pad(top, pad, constant_values=-1), np.pad(top_scores, pad, constant_values=-np.inf)


def exact_search(queries: np.ndarray, shards: Shards, k: int, block_bytes: int = DEFAULT_BLOCK_BYTES,
                 desc: str | None = None) -> TopK:
    """Exact inner-product top k of every query over the shards, in score blocks of at most `block_bytes`.

    Blocks split a shard's rows (every query against some rows), so a memory-mapped shard is read once, in order.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    top = TopK(len(queries), k)
    step = max(1, block_bytes // (4 * max(len(queries), 1)))
    for start, matrix in tqdm(shards, desc=desc, disable=desc is None, leave=False, unit="shard"):
        for row in range(0, len(matrix), step):
            scores = queries @ matrix[row : row + step].T
            if not (np.isfinite(scores.min(initial=0.0)) and np.isfinite(scores.max(initial=0.0))):  # NaN propagates
                raise FloatingPointError(f"NaN or infinite scores against corpus rows {start + row}..; the model's "
                                         "embeddings (queries or stored vectors) are not finite: check its embeddings")
            top.add(scores, start + row)
    return top


def recall_vs_exact(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |approx ∩ exact| / |exact| for (n_queries, k) position lists padded with -1; queries
    without exact results are left out (nan if none has any). Each list holds a position once at most."""
    both = np.sort(np.hstack([approx, exact]), axis=1)
    hits = np.count_nonzero((both[:, 1:] == both[:, :-1]) & (both[:, 1:] >= 0), axis=1)
    sizes = np.count_nonzero(exact >= 0, axis=1)
    has = sizes > 0
    return float(np.mean(hits[has] / sizes[has])) if has.any() else float("nan")
