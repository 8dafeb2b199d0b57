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

Ties: FAISS does not order equal scores by id. The search fetches TIE_MARGIN results beyond K and re-sorts
them by (score desc, pool position asc), which is the core's (score desc, id asc), before cutting at K. So
faiss-flat gives rank_pool's ranks, except where equal scores straddle rank K and run more than TIE_MARGIN
past it (FAISS may then keep a larger id), and where two scores differ only in the last float32 bit (FAISS
and numpy multiply with different BLAS kernels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xbench.errors import XbenchError
from xbench.retrieval.exact import Ranking, rank_pool
from xbench.retrieval.protocols import Scorer, VectorScorer
from xbench.tasks.spec import SEARCH_METHODS as METHODS
from xbench.tasks.spec import TaskSpec

AUTO_POOL = 200_000  # above this the exact core's copies of the pool's vectors outweigh a sharded scan's one shard
SHARD_SIZE = 1 << 16  # vectors per IndexFlatIP shard: 96 MiB at 384 dimensions
TIE_MARGIN = 16
TRAIN_PER_LIST = 64  # IVF training points per list (FAISS warns below 39)


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


def rank(retriever: Scorer, query_rows: np.ndarray, cand_rows: np.ndarray, relevant: Sequence[np.ndarray],
         plan: SearchPlan, top: int = 0, exclude: Sequence[np.ndarray] | None = None) -> Ranking:
    """Rank one slice (pool = `cand_rows`, ordered by id) by the plan; ranks below the depth become inf."""
    method = plan.method_for(len(cand_rows), retriever)
    if method == "exact" or exclude is not None:  # withheld candidates (bitext) only exist in small exact pools
        ranking = rank_pool(retriever.scorer(query_rows, cand_rows), relevant, len(cand_rows), k=top,
                            exclude=exclude)
        if plan.depth is None:
            return ranking
        ranks = [np.where(r > plan.depth, np.inf, r) for r in ranking.ranks]
        return Ranking(ranks=ranks, top=np.where(np.arange(top) < plan.depth, ranking.top, -1))
    assert isinstance(retriever, VectorScorer)  # method_for chose FAISS only for retrievers with vectors
    queries, docs = retriever.embeddings()
    found = search(np.ascontiguousarray(queries[query_rows], dtype=np.float32), docs, cand_rows, plan, method)
    ranks = []
    for row, rel in zip(found, relevant):
        hit = row[:, None] == rel[None, :]
        ranks.append(np.where(hit.any(axis=0), hit.argmax(axis=0) + 1.0, np.inf))
    return Ranking(ranks=ranks, top=found[:, :top])


def search(queries: np.ndarray, docs: np.ndarray, cand_rows: np.ndarray, plan: SearchPlan, method: str) -> np.ndarray:
    """(n_queries, depth) pool positions of the top `plan.depth` by inner product, -1 past the pool's end."""
    import faiss  # lazy: only for FAISS search (faiss-cpu or faiss-gpu)

    assert plan.depth is not None  # method_for and search_plan choose FAISS only with a depth
    n, k = len(cand_rows), min(len(cand_rows), plan.depth + TIE_MARGIN)
    if method == "faiss-flat":
        heap = faiss.ResultHeap(len(queries), k, keep_max=True)
        for start in range(0, n, SHARD_SIZE):
            index = faiss.IndexFlatIP(queries.shape[1])
            index.add(_gather(docs, cand_rows[start : start + SHARD_SIZE]))
            scores, ids = index.search(queries, min(k, index.ntotal))
            heap.add_result(scores, np.where(ids >= 0, ids + start, -1))
        heap.finalize()
        scores, ids = heap.D, heap.I
    elif method in ("faiss-ivf", "faiss-hnsw"):
        scores, ids = _index(docs, cand_rows, plan, method).search(queries, k)
    else:
        raise ValueError(f"not a FAISS method: {method!r}")
    return _tie_sorted(scores, ids, plan.depth)


def _gather(docs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(docs[rows], dtype=np.float32)


def _index(docs: np.ndarray, cand_rows: np.ndarray, plan: SearchPlan, method: str) -> Any:
    """An IVF-Flat (trained on a seeded sample) or HNSW index over the pool, filled shard by shard."""
    import faiss  # lazy: only for FAISS search (faiss-cpu or faiss-gpu)

    n, dim = len(cand_rows), docs.shape[1]
    params = faiss.ParameterSpace()
    if method == "faiss-ivf":
        nlist = min(plan.nlist or max(1, int(4 * np.sqrt(n))), n)
        index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, size=min(n, nlist * TRAIN_PER_LIST), replace=False)
        index.train(_gather(docs, cand_rows[np.sort(sample)]))
        params.set_index_parameter(index, "nprobe", min(plan.nprobe, nlist))
    else:
        assert plan.depth is not None  # method_for and search_plan choose FAISS only with a depth
        index = faiss.index_factory(dim, "HNSW32,Flat", faiss.METRIC_INNER_PRODUCT)
        params.set_index_parameter(index, "efSearch", max(plan.ef_search, plan.depth + TIE_MARGIN))
    for start in range(0, n, SHARD_SIZE):
        index.add(_gather(docs, cand_rows[start : start + SHARD_SIZE]))
    return index


def _tie_sorted(scores: np.ndarray, ids: np.ndarray, depth: int) -> np.ndarray:
    """Re-sort each row by (score desc, position asc), missing results (-1) last; keep `depth` columns."""
    missing = ids < 0
    order = np.lexsort((np.where(missing, np.iinfo(np.int64).max, ids), np.where(missing, np.inf, -scores)))
    kept = np.take_along_axis(ids, order, axis=1)[:, :depth]
    return np.pad(kept, ((0, 0), (0, depth - kept.shape[1])), constant_values=-1)
