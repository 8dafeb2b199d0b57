"""The one retrieval core: exact scoring in memory-bounded blocks, deterministic ranks, top-k.

Every model, dense or lexical, reaches the metrics through `rank_pool`. The rank of a relevant candidate d for
a query is 1 + #(candidates scoring higher) + #(candidates scoring the same with a smaller id), which is
exactly its position under the tie policy "score descending, then candidate id ascending" (the pool is ordered
by id, so id order is position order). Those counts come from one comparison pass per relevant candidate when a
query has few, else from the entries at or above the row's lowest relevant score, sorted once, and a binary
search (the multi setting: a relevant candidate per language); only exact ties are recounted. The top k are the
candidates at or above each row's k-th largest score (read from those sorted entries, or found by one
linear-time partition), ordered by one small lexsort. All metrics come from these ranks and the top-k list, so
they always describe the same ranking.

Scores on an accelerator (`dense_scorer(..., device="cuda")`) stay there: a score block that is a torch tensor is
ranked by torch on its device (one stable sort per row: the same tie policy), and only the ranks and the top k
come back.

Dense scores on the CPU are the same bits whatever the BLAS thread count (`dot`): a multi-threaded matrix product
splits its work by the thread count, and the split changes the last bits of some dot products, enough to swap
near-tied candidates (two of 13,090 XQuAD-R multi ranks moved between one and two threads)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, Union

import numpy as np
from numpy.typing import ArrayLike
from threadpoolctl import ThreadpoolController
from tqdm.auto import tqdm

from xbench.ragged import Ragged

if TYPE_CHECKING:
    import torch

Scores = Union[np.ndarray, "torch.Tensor"]
"""A (queries, pool size) float32 score block: a numpy array, or a torch tensor on the device that scored it."""
ScoreFn = Callable[[np.ndarray], Scores]
"""Maps query positions (b,) to a (b, pool size) float32 score block, columns in pool order: a numpy array, or a
torch tensor on the device that scored it (ranked there)."""

DEFAULT_BLOCK_BYTES = 256 << 20
TILE = (256, 2048)
"""(query rows, pool columns) of one single-threaded matrix product in `dot`: big enough for BLAS to run near its
peak, small enough that a few hundred queries against a big pool still give every core tiles."""


@dataclass(frozen=True)
class Ranking:
    ranks: Ragged  # per query: 1-based rank (float64; inf past a search depth) of each relevant, aligned with them
    top: np.ndarray  # (n_queries, k) pool positions of the top k, -1 where the pool is smaller than k


def ranks_in(found: np.ndarray, relevant: Ragged) -> Ragged:
    """The ranks a search's top lists give: each relevant candidate's 1-based place in its query's row of `found`
    ((queries, depth) pool positions), inf where the row lacks it."""
    ranks = np.empty(relevant.values.shape, dtype=np.float64)
    for start in range(0, len(found), 1024):  # (rows, depth, width) comparisons, a bounded number of rows at once
        rows = slice(start, start + 1024)
        hit = found[rows, :, None] == relevant.values[rows, None, :]
        ranks[rows] = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1.0, np.inf)
    return relevant.like(ranks)


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def dot(queries: np.ndarray, pool_t: np.ndarray) -> np.ndarray:
    """queries @ pool_t (float32), bit for bit the same whatever the BLAS thread count.

    The product is cut into fixed TILE-sized tiles, each computed by a single-threaded BLAS call, and the tiles run
    on as many Python threads as BLAS had (matmul releases the GIL): a tile's bits depend on its shape only, and
    the shapes depend on the matrix sizes only, so one thread and sixteen give the same scores at the same speed.
    """
    m, n = len(queries), pool_t.shape[1]
    out = np.empty((m, n), dtype=np.result_type(queries, pool_t))
    tiles = [(r, c) for r in range(0, m, TILE[0]) for c in range(0, n, TILE[1])]

    def tile(rc: tuple[int, int]) -> None:
        r, c = rc
        np.matmul(queries[r : r + TILE[0]], pool_t[:, c : c + TILE[1]], out=out[r : r + TILE[0], c : c + TILE[1]])

    workers = min(threads(), len(tiles))  # counted before the limit below sets BLAS to one thread
    with _blas().select(user_api="blas").limit(limits=1), ThreadPoolExecutor(workers) as pool:
        list(pool.map(tile, tiles))
    return out


def threads() -> int:
    """The cores the scoring may use: as many threads as BLAS was given (OMP_NUM_THREADS and the like)."""
    blas = _blas().select(user_api="blas")
    return max(1, max([lib.num_threads for lib in blas.lib_controllers] or [os.cpu_count() or 1]))


def dense_scorer(queries: np.ndarray, pool: np.ndarray, device: str = "cpu", pool_t: np.ndarray | None = None,
                 ) -> ScoreFn:
    """Dot product (cosine for normalised embeddings) of the given queries against the whole pool: on the CPU
    through `dot` (thread-count independent), on any other device through `torch_scorer`. `pool_t`: the pool
    transposed and contiguous, from a caller that scores many query sets against one pool (a copy saved each)."""
    if device != "cpu":
        return torch_scorer(queries, pool, device)
    pool_t = np.ascontiguousarray(pool.T) if pool_t is None else pool_t
    return lambda rows: dot(queries[rows], pool_t)


def torch_scorer(queries: np.ndarray, pool: np.ndarray, device: str) -> ScoreFn:
    """Dot product in torch on `device` (`cuda`, `cuda:1`; `cpu` for tests): the vectors move there once and each
    block is a tensor on it, which `rank_pool` ranks there without copying the scores back."""
    import torch  # lazy: heavy; only an accelerator run scores with it

    q = torch.from_numpy(np.ascontiguousarray(queries)).to(device)
    p_t = torch.from_numpy(np.ascontiguousarray(pool)).to(device).T
    return lambda rows: q[torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(device)] @ p_t


def _is_tensor(block: Any) -> TypeGuard[torch.Tensor]:
    """A torch tensor, told apart without importing torch (a run that never imported it has none)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(block, torch.Tensor)


SORT_FROM_WIDTH = 5
"""Relevant candidates per query from which ordering each row once (`_Above`) beats a comparison pass per relevant
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


def _ordered(values: np.ndarray) -> np.ndarray:
    """float32 scores -> uint64 in the same order (-0.0 and 0.0 alike): the low half of an integer sort key."""
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0.0)).view(np.uint32)  # -0.0 + 0.0 is 0.0
    return np.where(bits >> 31 == 1, ~bits, bits | np.uint32(1 << 31)).astype(np.uint64)


def _unordered(keys: np.ndarray) -> np.ndarray:
    """The float32 scores back from the low half of `_ordered` keys."""
    bits = (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return np.where(bits >> 31 == 1, bits & np.uint32(~(1 << 31) & 0xFFFFFFFF), ~bits).view(np.float32)


class _Above:
    """How many entries of each score row lie above given values, for many values per row (the multi setting: a
    relevant candidate per language), exact for values at or above the row's `floor` (its lowest relevant score).

    A good model ranks every relevant candidate high, so only a few percent of a row sit at or above its floor:
    those alone become one sorted array of (row, score) integer keys, and each count is a binary search in it
    (half the time of sorting every row). Where most entries pass the floor (a lexical model whose other-language
    answers score 0), each row is sorted as floats instead, which is then the cheaper way."""

    def __init__(self, scores: np.ndarray, floor: np.ndarray) -> None:
        self.n = scores.shape[1]
        rows, cols = np.divmod(np.flatnonzero(scores >= floor[:, None]), self.n)
        self.sorted_rows: np.ndarray | None = None
        if 2 * len(rows) > scores.size:
            self.sorted_rows = np.sort(scores, axis=1)
            return
        self.keys = np.sort(rows.astype(np.uint64) << np.uint64(32) | _ordered(scores[rows, cols]))
        bounds = np.searchsorted(self.keys, np.arange(len(scores) + 1, dtype=np.uint64) << np.uint64(32))
        self.starts, self.ends = bounds[:-1], bounds[1:]

    def count(self, values: np.ndarray, inclusive: bool) -> np.ndarray:
        """(rows, m) counts of entries above values[i, j] (at or above when `inclusive`)."""
        if self.sorted_rows is not None:
            return self.n - _count_below(self.sorted_rows, values, inclusive=not inclusive)
        probe = np.arange(len(values), dtype=np.uint64)[:, None] << np.uint64(32) | _ordered(values)
        found = np.searchsorted(self.keys, probe.ravel(), "left" if inclusive else "right")
        return self.ends[:, None] - found.reshape(values.shape)

    def kth_largest(self, kk: int) -> np.ndarray:
        """(rows,) each row's kk-th largest score (1 <= kk <= row length); NaN where fewer than kk entries of the
        row passed its floor."""
        if self.sorted_rows is not None:
            return self.sorted_rows[:, self.n - kk].copy()
        out = np.full(len(self.ends), np.nan, dtype=np.float32)
        enough = self.ends - self.starts >= kk
        out[enough] = _unordered(self.keys[self.ends[enough] - kk])
        return out


def _top_k(scores: np.ndarray, cutoff: np.ndarray, k: int) -> np.ndarray:
    """Top-k positions per row under the tie policy, given each row's k-th largest score (`cutoff`, (rows, 1)):
    the candidates at or above it are the top k plus any tied at the cut-off; one lexsort of those few orders
    them by score, then position, and each row keeps its first k."""
    n = scores.shape[1]
    out = np.full((scores.shape[0], k), -1, dtype=np.int64)
    if min(k, n) == 0:
        return out
    rows, cols = np.divmod(np.flatnonzero(scores >= cutoff), n)  # flat: numpy's 2-D nonzero is 10x slower
    order = np.lexsort((cols, -scores[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    place = np.arange(len(rows)) - np.searchsorted(rows, rows)  # 0-based place within its row
    keep = place < k
    out[rows[keep], place[keep]] = cols[keep]
    return out


def _ranks_of_relevant(scores: np.ndarray, relevant: Ragged, rel_scores: np.ndarray, above: _Above | None,
                       ) -> np.ndarray:
    """(rows, width) rank of every relevant candidate in its row (`rel_scores`: their scores; padding ranks are
    meaningless): counted by `above` when given, else by one comparison pass over the block per relevant slot;
    exact ties are rare, so only tied entries are recounted."""
    rel, valid = relevant.values, relevant.valid
    width = rel.shape[1]
    if above is not None:
        counts = above.count(rel_scores, inclusive=False)
        tied = above.count(rel_scores, inclusive=True) - counts > 1
    else:
        counts = np.empty_like(rel)
        tied = np.zeros_like(valid)
        for j in range(width):
            s = rel_scores[:, j : j + 1]
            counts[:, j] = (scores > s).sum(axis=1, dtype=np.int32)  # a third faster than count_nonzero
            tied[:, j] = (scores == s).sum(axis=1, dtype=np.int32) > 1
    positions = np.arange(scores.shape[1])
    for j in range(width):
        rows = np.flatnonzero(tied[:, j] & valid[:, j])
        if len(rows):
            counts[rows, j] += np.count_nonzero(
                (scores[rows] == rel_scores[rows, j : j + 1]) & (positions < rel[rows, j : j + 1]), axis=1)
    return 1 + counts


def _hidden(exclude: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the cells withheld from a block's queries, for one vectorised assignment of -inf."""
    lengths = np.fromiter(map(len, exclude), dtype=np.int64, count=len(exclude))
    cols = np.concatenate([np.asarray(e, dtype=np.int64) for e in exclude]) if len(exclude) else np.zeros(0, np.int64)
    return np.repeat(np.arange(len(exclude)), lengths), cols


def _not_finite() -> FloatingPointError:
    return FloatingPointError("the model produced NaN or infinite scores; check its embeddings")


def _rank_block(raw: ArrayLike, relevant: Ragged, k: int, exclude: list[np.ndarray] | None,
                finite: bool) -> tuple[np.ndarray, np.ndarray]:
    """Ranks and top k of one numpy score block (see the module docstring); a big block's rows are ranked in
    parallel chunks (numpy's sorts and comparisons release the GIL), each row on its own, so the result does not
    depend on the chunking."""
    scores = np.array(raw, dtype=np.float32, copy=True if exclude is not None else None)  # views are shared
    if not finite and not (np.isfinite(scores.min(initial=0.0)) and np.isfinite(scores.max(initial=0.0))):
        raise _not_finite()  # (NaN propagates through min and max)
    if exclude is not None:
        scores[_hidden(exclude)] = -np.inf
    n_chunks = min(threads(), scores.size // PARALLEL_FROM + 1, len(relevant))
    if n_chunks <= 1:
        return _rank_rows(scores, relevant, k)
    bounds = np.linspace(0, len(relevant), n_chunks + 1).astype(int).tolist()
    with ThreadPoolExecutor(n_chunks) as pool:
        parts = list(pool.map(lambda a, b: _rank_rows(scores[a:b], relevant[a:b], k), bounds[:-1], bounds[1:]))
    return np.concatenate([ranks for ranks, _ in parts]), np.concatenate([top for _, top in parts])


PARALLEL_FROM = 1 << 22
"""Score cells from which a block is ranked in parallel chunks: below it, the threads cost more than they save."""


def _rank_rows(scores: np.ndarray, relevant: Ragged, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Ranks (padded like `relevant`) and top k of some rows of a score block (finite, withheld cells already at
    -inf)."""
    n, kk = scores.shape[1], min(k, scores.shape[1])
    rel_scores = np.take_along_axis(scores, relevant.values, axis=1)
    wide = relevant.values.shape[1] >= SORT_FROM_WIDTH
    above = _Above(scores, np.where(relevant.valid, rel_scores, np.inf).min(axis=1)) if wide else None
    ranks = _ranks_of_relevant(scores, relevant, rel_scores, above)
    if not kk:
        return ranks, np.full((len(relevant), k), -1, dtype=np.int64)
    cutoff = above.kth_largest(kk) if above is not None else np.full(len(relevant), np.nan, dtype=np.float32)
    short = np.flatnonzero(np.isnan(cutoff))  # rows whose floor passed fewer than kk: one linear partition each
    cutoff[short] = np.partition(scores[short], n - kk, axis=1)[:, n - kk]
    top = _top_k(scores, cutoff[:, None], k)
    top[(top >= 0) & (np.take_along_axis(scores, np.maximum(top, 0), axis=1) == -np.inf)] = -1
    return ranks, top


def _rank_block_torch(raw: torch.Tensor, relevant: Ragged, k: int, exclude: list[np.ndarray] | None,
                      finite: bool) -> tuple[np.ndarray, np.ndarray]:
    """Ranks and top k of one torch score block, on its device: one stable descending sort per row is the tie
    policy itself (equal scores keep pool order), so a candidate's rank is its place in that order."""
    import torch  # lazy: the block is a tensor, so torch is loaded already

    device = raw.device
    scores = raw.to(torch.float32)
    if not finite and not bool(torch.isfinite(scores).all()):
        raise _not_finite()
    if exclude is not None:
        rows, cols = _hidden(exclude)
        scores = scores.clone()  # the scorer's block may be a view of shared scores
        scores[torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)] = -torch.inf
    n = scores.shape[1]
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    place = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=device).expand_as(order))
    ranks = (place.gather(1, torch.from_numpy(relevant.values).to(device)) + 1).cpu().numpy()
    top = np.full((len(relevant), k), -1, dtype=np.int64)
    kk = min(k, n)
    if kk:
        best = order[:, :kk]
        top[:, :kk] = torch.where(scores.gather(1, best) == -torch.inf, -1, best).cpu().numpy()
    return ranks, top


def rank_pool(
    score: ScoreFn,
    relevant: Ragged | Sequence[np.ndarray],
    pool_size: int,
    k: int = 10,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    desc: str | None = None,
    exclude: Sequence[np.ndarray] | None = None,
    finite: bool = False,
) -> Ranking:
    """Rank the pool for every query; row i of `relevant` holds the pool positions of query i's relevant candidates.

    Queries are scored in blocks of at most `block_bytes` of scores, so the full query x pool matrix never
    exists for big pools. `k=0` skips the top-k list when only the ranks are needed. `exclude[i]` holds pool
    positions withheld from query i (scored -inf: below every candidate, never in its top k). A scorer that
    returns torch tensors has its blocks ranked by torch on their device, with the same ranks. `finite=True`
    skips the check for NaN and infinite scores in every block: the scorer vouches for its scores (a dense
    retriever checks its embedding matrices once, see `xbench.models.base`).
    """
    relevant = relevant if isinstance(relevant, Ragged) else Ragged.of(relevant)
    n_q = len(relevant)
    block = max(1, block_bytes // (4 * max(pool_size, 1)))
    ranks = np.zeros(relevant.values.shape, dtype=np.float64)
    tops = []
    for start in tqdm(range(0, n_q, block), desc=desc, disable=desc is None, leave=False, unit="block"):
        rows = slice(start, min(start + block, n_q))
        hidden = None if exclude is None else list(exclude[rows])
        raw = score(np.arange(rows.start, rows.stop))
        if _is_tensor(raw):
            ranks[rows], top = _rank_block_torch(raw, relevant[rows], k, hidden, finite)
        else:
            ranks[rows], top = _rank_block(raw, relevant[rows], k, hidden, finite)
        tops.append(top)
    top = np.concatenate(tops) if tops and k else np.empty((0, k), dtype=np.int64)
    return Ranking(ranks=relevant.like(ranks), top=top)
