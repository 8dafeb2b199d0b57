"""Fixed-depth runs and FAISS top-k search for large candidate pools, behind the core's `Ranking`.

The exact core (`xbench.retrieval.exact.rank_pool`) scores the whole pool and knows the rank of every relevant
candidate. For corpora of millions of passages (MIRACL) it would copy the pool's vectors and score rows per
slice, so a task can ask in its spec `options` (the loader must accept SEARCH_OPTIONS) for:

- `depth: K`: rank like a TREC run of K results. A relevant candidate ranked below K is not retrieved (rank
  inf: it stays in every denominator, as in trec_eval). The cut applies to every model and method, so map and
  mrr mean the same thing whoever found the top K; results store such ranks as 0 (`PerQuery.depth`).
- `search: exact | faiss-flat | faiss-ivf | faiss-hnsw | auto` (default auto): how dense models find the
  top K. faiss-flat is exact: the pool is scanned in shards of SHARD_SIZE vectors, each searched with an
  IndexFlatIP and merged in a ResultHeap, so memory beyond the model's embeddings is bounded by one shard.
  faiss-ivf (IVF-Flat) and faiss-hnsw (HNSW32-Flat) are approximate and hold the whole pool in the index; an
  HNSW graph built on several threads differs from run to run. auto = faiss-flat when the spec sets a depth
  and the pool exceeds AUTO_POOL candidates, exact otherwise. Lexical models (BM25) have no vectors: they are
  always ranked exactly, then cut at the depth.

`search` reads the pool as shards (first position, vectors): a task's in-memory pool through `Gathered`, or a
corpus's memory-mapped vector shards (`xbench.retrieval.stream` holds the numpy exact search over the same
shards). A built IVF/HNSW index can be saved and reused (`build_index`). With a GPU build of faiss that sees a
GPU, flat and IVF indexes run there; CPU-only installs are unchanged.

Ties: FAISS does not order equal scores by id. The search fetches TIE_MARGIN results beyond K and re-sorts
them by (score desc, pool position asc), which is the core's (score desc, id asc), before cutting at K. So
faiss-flat gives rank_pool's ranks, except where equal scores straddle rank K and run more than TIE_MARGIN
past it (FAISS may then keep a larger id), and where two scores differ only in the last float32 bit (FAISS
and numpy multiply with different BLAS kernels).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, overload

import numpy as np

from xbench.errors import XbenchError
from xbench.ragged import Ragged
from xbench.retrieval.exact import Ranking, rank_pool, ranks_in
from xbench.retrieval.protocols import Scorer, VectorScorer
from xbench.retrieval.stream import exact_search
from xbench.tasks.spec import SEARCH_METHODS as METHODS
from xbench.tasks.spec import TaskSpec

AUTO_POOL = 200_000  # above this the exact core's copies of the pool's vectors outweigh a sharded scan's one shard
SHARD_SIZE = 1 << 16  # vectors per IndexFlatIP shard: 96 MiB at 384 dimensions
TIE_MARGIN = 16
APPROXIMATE = ("faiss-ivf", "faiss-hnsw")  # may miss true top-k neighbours
TRAIN_PER_LIST = 64  # IVF training points per list (FAISS warns below 39)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchPlan:
    """How a task's slices are ranked: depth of the run and the method for dense retrievers."""

    method: str = "auto"
    depth: int | None = None
    nlist: int | None = None
    nprobe: int = 32
    ef_search: int = 128

    def method_for(self, pool_size: int, retriever: Scorer) -> str:
        """The method one slice uses: FAISS needs vectors and a depth."""
        if self.depth is None or not isinstance(retriever, VectorScorer):
            return "exact"
        if self.method == "auto":
            return "faiss-flat" if pool_size > AUTO_POOL else "exact"
        return self.method


def _positive_int(spec: TaskSpec, options: dict[str, Any], key: str) -> int | None:
    value = options.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise XbenchError(f"task {spec.name}: field `options.{key}` is {value!r}; give a positive integer.")
    return value


def search_plan(spec: TaskSpec) -> SearchPlan:
    """The spec's search options, checked: a bad value names the field; a depth must cover every metric cut-off."""
    options = spec.options
    method = options.get("search", "auto")
    if method not in METHODS:
        raise XbenchError(f"task {spec.name}: field `options.search` is {method!r}; use one of {list(METHODS)}.")
    depth = _positive_int(spec, options, "depth")
    if depth is None and method not in ("auto", "exact"):
        raise XbenchError(f"task {spec.name}: field `options.search` is {method!r}, which finds a top k: set "
                          "`options.depth` (e.g. 100) too.")
    cut_offs = [int(m.partition("@")[2]) for m in spec.metrics if "@" in m]
    if depth is not None and max(cut_offs, default=0) > depth:
        raise XbenchError(f"task {spec.name}: field `options.depth` is {depth}, below the metric cut-off "
                          f"{max(cut_offs)} in `metrics`; raise the depth to at least {max(cut_offs)}.")
    tuning = {key: _positive_int(spec, options, key) for key in ("nlist", "nprobe", "ef_search")}
    return SearchPlan(method=method, depth=depth, **{k: v for k, v in tuning.items() if v is not None})


def rank(retriever: Scorer, query_rows: np.ndarray, cand_rows: np.ndarray, relevant: Ragged,
         plan: SearchPlan, top: int = 0, exclude: Sequence[np.ndarray] | None = None) -> Ranking:
    """Rank one slice (pool = `cand_rows`, ordered by id) by the plan; ranks below the depth become inf."""
    method = plan.method_for(len(cand_rows), retriever)
    if method == "exact" or exclude is not None:  # withheld candidates (bitext) only exist in small exact pools
        ranking = rank_pool(retriever.scorer(query_rows, cand_rows), relevant, len(cand_rows), k=top,
                            exclude=exclude, finite=getattr(retriever, "finite_scores", False))
        if plan.depth is None:
            return ranking
        ranks = ranking.ranks.like(np.where(ranking.ranks.values > plan.depth, np.inf, ranking.ranks.values))
        return Ranking(ranks=ranks, top=np.where(np.arange(top) < plan.depth, ranking.top, -1))
    assert isinstance(retriever, VectorScorer)  # method_for chose FAISS only for retrievers with vectors
    queries, docs = retriever.embeddings()
    found = search(np.ascontiguousarray(queries[query_rows], dtype=np.float32), Gathered(docs, cand_rows), plan,
                   method)
    return Ranking(ranks=ranks_in(found, relevant), top=found[:, :top])


class Gathered(Sequence[tuple[int, np.ndarray]]):
    """`docs[cand_rows]` as shards of SHARD_SIZE pool positions, each gathered when read: the in-memory pool
    searched like a corpus's vector shards, at the cost of one shard's copy rather than the whole pool's."""

    def __init__(self, docs: np.ndarray, cand_rows: np.ndarray) -> None:
        self.docs, self.cand_rows, self.size = docs, cand_rows, SHARD_SIZE

    def __len__(self) -> int:
        return -(-len(self.cand_rows) // self.size)

    @overload
    def __getitem__(self, i: int) -> tuple[int, np.ndarray]: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[tuple[int, np.ndarray]]: ...

    def __getitem__(self, i: int | slice) -> tuple[int, np.ndarray] | Sequence[tuple[int, np.ndarray]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        start = range(0, len(self.cand_rows), self.size)[i]  # IndexError past the end ends iteration
        return start, np.ascontiguousarray(self.docs[self.cand_rows[start : start + self.size]], dtype=np.float32)


def search(queries: np.ndarray, shards: Sequence[tuple[int, np.ndarray]], plan: SearchPlan, method: str,
           index_path: Path | None = None, order_key: Callable[[np.ndarray], np.ndarray] | None = None,
           ) -> np.ndarray:
    """(n_queries, depth) pool positions of the top `plan.depth` by inner product, -1 past the pool's end.

    `shards` are (first pool position, vectors) in pool order: a corpus's memory-mapped vector shards, or an
    in-memory pool as `Gathered`. faiss-flat reads them once; an IVF or HNSW build twice (the training sample,
    then the vectors), unless `index_path` holds a matching index saved by an earlier build (see `build_index`).
    """
    assert plan.depth is not None  # method_for and search_plan choose FAISS only with a depth
    n = pool_size(shards)
    k = min(n, plan.depth + TIE_MARGIN)
    if method == "faiss-flat":
        scores, ids = _flat_search(queries, shards, k)
    elif method in INDEXES:
        scores, ids = build_index(shards, replace(plan, method=method), index_path).search(queries, k)
    else:
        raise ValueError(f"not a FAISS method: {method!r}")
    found = _tie_sorted(scores, ids, plan.depth, order_key)
    if method == "faiss-flat" and k < n and order_key is not None:
        # ties at the cut-off that run past what FAISS returned: FAISS kept some of them by position, the tie
        # policy wants the smallest keys; those rows (rare with real models) are searched again exactly
        cut = scores[:, min(plan.depth, k) - 1]
        tied = np.flatnonzero(scores[:, k - 1] >= cut)
        if len(tied):
            found[tied] = exact_search(queries[tied], shards, plan.depth).result(order_key)[0]
    return found


def pool_size(shards: Sequence[tuple[int, np.ndarray]]) -> int:
    if not len(shards):
        return 0
    start, last = shards[-1]
    return start + len(last)


@cache
def _gpu_resources() -> tuple[Any, ...]:
    """One set of GPU resources per GPU for the process (each holds scratch memory; made once, not per index);
    none without a GPU build of faiss that sees a GPU (faiss-cpu may lack get_num_gpus altogether)."""
    import faiss  # lazy: only for FAISS search (faiss-cpu or faiss-gpu)

    return tuple(faiss.StandardGpuResources() for _ in range(getattr(faiss, "get_num_gpus", lambda: 0)()))


def gpu_count() -> int:
    """GPUs a GPU build of faiss sees (0 with faiss-cpu): the streamed search then runs flat on them."""
    return len(_gpu_resources())


def _on_gpus(index: Any) -> Any:
    """The index cloned onto every GPU (as replicas), or unchanged on a CPU-only install."""
    import faiss  # lazy: only for FAISS search (faiss-cpu or faiss-gpu)

    resources = _gpu_resources()
    return faiss.index_cpu_to_gpu_multiple_py(list(resources), index) if resources else index


def _flat_search(queries: np.ndarray, shards: Sequence[tuple[int, np.ndarray]], k: int,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Exact: one IndexFlatIP (on the GPUs when there are) refilled with each shard in turn and searched, the
    results merged in a ResultHeap; memory beyond the vectors is one shard's copy in the index."""
    import faiss  # lazy: only for FAISS search (faiss-cpu or faiss-gpu)

    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    index = _on_gpus(faiss.IndexFlatIP(queries.shape[1]))
    for start, matrix in shards:
        index.reset()
        index.add(np.ascontiguousarray(matrix, dtype=np.float32))
        scores, ids = index.search(queries, min(k, index.ntotal))
        heap.add_result(scores, np.where(ids >= 0, ids + start, -1))
    heap.finalize()
    return heap.D, heap.I


def _ivf(n: int, plan: SearchPlan) -> tuple[str, dict[str, int], bool]:
    """IVF-Flat over nlist = 4 sqrt(n) lists (or the plan's), nprobe of them searched; trains and runs on GPUs."""
    nlist = min(plan.nlist or max(1, int(4 * np.sqrt(n))), n)
    return f"IVF{nlist},Flat", {"nprobe": min(plan.nprobe, nlist)}, True


def _hnsw(n: int, plan: SearchPlan) -> tuple[str, dict[str, int], bool]:
    """HNSW32-Flat searched with a beam of at least the depth plus the tie margin; FAISS has no GPU HNSW."""
    assert plan.depth is not None  # method_for and search_plan choose FAISS only with a depth
    return "HNSW32,Flat", {"efSearch": max(plan.ef_search, plan.depth + TIE_MARGIN)}, False


INDEXES: dict[str, Callable[[int, SearchPlan], tuple[str, dict[str, int], bool]]] = {
    "faiss-ivf": _ivf, "faiss-hnsw": _hnsw}
"""Approximate methods: (pool size, plan) -> (FAISS factory string, search parameters, runs on GPUs)."""


def build_index(shards: Sequence[tuple[int, np.ndarray]], plan: SearchPlan, index_path: Path | None = None) -> Any:
    """The plan's approximate index over the pool, filled shard by shard (IVF trained first on a seeded sample),
    with its search parameters set, on the GPUs where it can run there.

    With `index_path` (a place that belongs to these vectors, e.g. beside their shards) the built index is saved
    there (written to a temp file, then renamed), and a later call reuses it when it matches (kind, lists,
    dimension, number of vectors) instead of building again; a damaged or mismatching file is rebuilt."""
    import faiss  # lazy: only for FAISS search (faiss-cpu or faiss-gpu)

    n, dim = pool_size(shards), shards[0][1].shape[1]
    factory, params, gpu = INDEXES[plan.method](n, plan)
    index: Any = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    saved = _saved_index(index_path, index, n) if index_path is not None else None
    cpu_index = index if saved is None else saved
    space = faiss.ParameterSpace()
    for name, value in params.items():
        space.set_index_parameter(cpu_index, name, value)
    index = _on_gpus(cpu_index) if gpu else cpu_index  # parameters set before: a GPU clone copies them
    if saved is not None:
        return index
    if not index.is_trained:
        sample = np.random.default_rng(0).choice(n, size=min(n, cpu_index.nlist * TRAIN_PER_LIST), replace=False)
        index.train(_rows(shards, np.sort(sample)))
    for _, matrix in shards:
        index.add(np.ascontiguousarray(matrix, dtype=np.float32))
    if index_path is not None:
        _save_index(index if index is cpu_index else faiss.index_gpu_to_cpu(index), index_path)
    return index


def _rows(shards: Sequence[tuple[int, np.ndarray]], positions: np.ndarray) -> np.ndarray:
    """The vectors at the given ascending pool positions, gathered shard by shard."""
    parts = []
    for start, matrix in shards:
        local = positions[(positions >= start) & (positions < start + len(matrix))] - start
        if len(local):
            parts.append(np.asarray(matrix[local], dtype=np.float32))
    return np.ascontiguousarray(np.concatenate(parts))


def _saved_index(path: Path, fresh: Any, n: int) -> Any | None:
    """The index saved at `path` if it is the one `fresh` would become over n vectors, else None."""
    import faiss  # lazy: only for FAISS search (faiss-cpu or faiss-gpu)

    if not path.is_file():
        return None
    try:
        saved = faiss.read_index(str(path))
    except RuntimeError as exc:  # FAISS reports unreadable and truncated files this way
        log.warning("FAISS index %s is damaged (%s); building it again", path, str(exc).splitlines()[0])
        return None
    if (type(saved), saved.d, saved.ntotal, saved.metric_type, getattr(saved, "nlist", None)) != (
            type(fresh), fresh.d, n, fresh.metric_type, getattr(fresh, "nlist", None)):
        log.warning("FAISS index %s was built for other vectors or settings; building it again", path)
        return None
    return saved


def _save_index(index: Any, path: Path) -> None:
    import faiss  # lazy: only for FAISS search (faiss-cpu or faiss-gpu)

    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        faiss.write_index(index, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        raise XbenchError(f"{path}: cannot save the FAISS index ({exc}); free disk space or give a writable "
                          "index path.") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _tie_sorted(scores: np.ndarray, ids: np.ndarray, depth: int,
                order_key: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Re-sort each row by (score desc, then `order_key` of the position asc: the candidate id, default the
    position itself), missing results (-1) last; keep `depth` columns."""
    missing = ids < 0
    key = np.where(missing, np.iinfo(np.int64).max, ids)
    if order_key is not None:  # rank the keys (e.g. id strings) so that lexsort sees integers
        flat = order_key(np.where(missing, 0, ids)).ravel()
        ranked = np.empty(flat.size, dtype=np.int64)
        ranked[np.argsort(flat, kind="stable")] = np.arange(flat.size)
        key = np.where(missing, np.iinfo(np.int64).max, ranked.reshape(ids.shape))
    order = np.lexsort((key, np.where(missing, np.inf, -scores)))
    kept = np.take_along_axis(ids, order, axis=1)[:, :depth]
    return np.pad(kept, ((0, 0), (0, depth - kept.shape[1])), constant_values=-1)
