"""Models behind one protocol: a `Retriever` prepares a task once and scores any query set against any pool.

Dense encoders (`encode(texts, role) -> float32 matrix`) become retrievers through `DenseRetriever`, which
encodes every unique text of the task once through the embedding cache; BM25 is a lexical retriever.
Both feed the same retrieval core, so every model is ranked, tied and measured the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from xbench.models.cache import EmbeddingStore, encode_cached
from xbench.models.vectors import VectorShards
from xbench.retrieval import ann
from xbench.retrieval.ann import SearchPlan
from xbench.retrieval.exact import ScoreFn, Scores, dense_scorer
from xbench.retrieval.stream import TopK, exact_search, recall_vs_exact
from xbench.tasks.taskdata import CorpusSource, TaskData

Role = Literal["query", "doc"]
SCORE_BLOCK_BYTES = 512 << 20


@dataclass(frozen=True)
class ModelInfo:
    """Who the model is: `fingerprint` keys the cache; `card` goes into every results file."""

    name: str
    kind: str
    fingerprint: str
    card: dict[str, Any] = field(default_factory=dict)


class Encoder(Protocol):
    info: ModelInfo

    def encode(self, texts: list[str], role: Role) -> np.ndarray: ...


@runtime_checkable
class ShardFiller(Encoder, Protocol):
    """An encoder that writes the missing (key, text) items' vectors into the cache itself, shard by shard
    (cluster encoders: `models.ray`), instead of returning them to the cache loop."""

    def fill(self, items: list[tuple[str, str]], role: Role) -> None: ...


@runtime_checkable
class CorpusFiller(Encoder, Protocol):
    """An encoder that fills a streamed corpus's vector shards and searches them itself (a cluster: models.ray)."""

    def fill_corpus(self, corpus: CorpusSource, shards: VectorShards, desc: str) -> int: ...

    def search_shards(self, queries: np.ndarray, shards: VectorShards, k: int) -> TopK: ...


class Retriever(Protocol):
    info: ModelInfo

    def prepare(self, data: TaskData) -> dict[str, int]:
        """Do the per-task work once (encode, tokenise); return counts such as texts encoded."""

    def scorer(self, query_rows: np.ndarray, cand_rows: np.ndarray) -> ScoreFn: ...


@dataclass
class Hits:
    """A streamed corpus searched for a query set: the top `depth` pool positions per query under the core's tie
    policy (-1 past the pool's end), with what the search did (counts, timings, notes for the results file)."""

    positions: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@runtime_checkable
class CorpusSearcher(Protocol):
    """A retriever that searches a corpus too large to hold (MIRACL), streamed from disk. `order_key` maps pool
    positions to candidate ids, the tie-breaker after the score."""

    info: ModelInfo

    def search_corpus(self, queries: list[str], corpus: CorpusSource, plan: SearchPlan,
                      order_key: Callable[[np.ndarray], np.ndarray]) -> Hits: ...


class DenseRetriever:
    """Embeds each unique (role, text) once through the cache, then scores by dot product."""

    def __init__(self, encoder: Encoder, cache_root: Path, device: str = "cpu") -> None:
        self.encoder = encoder
        self.info = encoder.info
        self.cache_root = cache_root
        self.device = device  # where scores are computed and ranked (torch on an accelerator)
        self._queries = self._cands = np.zeros((0, 0), dtype=np.float32)
        self._block: Scores = self._queries
        self._cands_t: np.ndarray | None = None  # the pool transposed, made once per task for the language blocks
        self._query_langs = self._block_rows = np.zeros(0, dtype=object)
        self.finite_scores = False  # set by `prepare` once the embeddings are checked: the core skips its checks

    def _embed(self, texts: list[str], role: Role) -> tuple[np.ndarray, int]:
        store = EmbeddingStore(self.cache_root, self.info.fingerprint, role)
        encoder = self.encoder
        fill = (lambda items: encoder.fill(items, role)) if isinstance(encoder, ShardFiller) else None
        return encode_cached(texts, lambda t: encoder.encode(t, role), store,
                             desc=f"encoding {role} texts ({self.info.name})", fill=fill)

    def prepare(self, data: TaskData) -> dict[str, int]:
        self._queries, n_q = self._embed(data.queries["text"].tolist(), "query")
        self._cands, n_d = self._embed(data.candidates["text"].tolist(), "doc")
        self._cands_t = None
        self.finite_scores = _bounded(self._queries, self._cands)
        self._query_langs = data.queries["lang"].to_numpy()
        self._block_rows = np.zeros(0, dtype=np.int64)
        unique = data.queries["text"].nunique() + data.candidates["text"].nunique()
        return {"texts": len(data.queries) + len(data.candidates), "unique_texts": int(unique),
                "encoded_now": n_q + n_d}

    def search_corpus(self, queries: list[str], corpus: CorpusSource, plan: SearchPlan,
                      order_key: Callable[[np.ndarray], np.ndarray]) -> Hits:
        """Encode the corpus into on-disk shards (only what no earlier run left there, so an interrupted run
        resumes), then search them shard by shard: exact (a running top-k merged across shards) or with a FAISS
        index saved beside the shards (`options.search`; approximate ones report their recall against exact)."""
        assert plan.depth is not None  # the streamed path requires a depth
        t0 = time.perf_counter()
        q, encoded_q = self._embed(queries, "query")
        shards = VectorShards(self.cache_root, self.info.fingerprint, corpus.fingerprint, corpus.rows)
        timer = _Timer(lambda texts: self.encoder.encode(texts, "doc"))
        desc = f"encoding passages ({self.info.name})"
        if isinstance(self.encoder, CorpusFiller):
            encoded = self.encoder.fill_corpus(corpus, shards, desc)
        else:
            encoded = shards.fill(corpus.batches, timer, desc=desc)
        t1 = time.perf_counter()
        method = "exact" if plan.method == "auto" else plan.method  # numpy's exact search orders ties by id
        method = "faiss-flat" if method == "exact" and ann.gpu_count() else method
        notes = []
        if method == "exact":
            top = (self.encoder.search_shards(q, shards, plan.depth) if isinstance(self.encoder, CorpusFiller)
                   else exact_search(q, shards.shards(), plan.depth, desc=f"searching {corpus.rows:,} passages"))
            positions = top.result(order_key)[0]
        else:  # FAISS as asked (flat, or an approximate index saved beside the shards and reused), or on the GPUs
            saved = None if method == "faiss-flat" else shards.dir / f"{method}.index"
            positions = ann.search(q, shards.shards(), plan, method, saved, order_key)
            if method in ann.APPROXIMATE:
                exact = exact_search(q, shards.shards(), plan.depth).result(order_key)[0]
                notes.append(f"{corpus.rows:,} passages searched with {method}: recall@{plan.depth} against exact "
                             f"search {recall_vs_exact(positions, exact):.4f}")
        t2 = time.perf_counter()
        return Hits(positions=positions, notes=notes,
                    counts={"texts": len(queries) + corpus.rows, "encoded_now": encoded_q + encoded},
                    timings={"encode_s": t1 - t0, "encoder_s": timer.seconds, "search_s": t2 - t1})

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """(query, candidate) embedding matrices, rows aligned with TaskData: FAISS search (xbench.retrieval.ann)
        reads them."""
        return self._queries, self._cands

    def scorer(self, query_rows: np.ndarray, cand_rows: np.ndarray) -> ScoreFn:
        block = self._language_block(query_rows)
        if block is None:
            return dense_scorer(self._queries[query_rows], self._cands[cand_rows], self.device)
        rows_in_block = np.searchsorted(self._block_rows, query_rows)
        cols = _run(cand_rows)
        return lambda rows: _outer(block, _run(rows_in_block[rows]), cols)

    def _language_block(self, query_rows: np.ndarray) -> Scores | None:
        """Scores of all queries of one language against the whole pool, computed once and shared by that
        language's mono, cross and multi slices (each is a column subset); None when it would not fit."""
        if _within(query_rows, self._block_rows):
            return self._block
        group = np.flatnonzero(self._query_langs == self._query_langs[query_rows[0]])
        if not _within(query_rows, group) or len(group) * len(self._cands) * 4 > SCORE_BLOCK_BYTES:
            return None
        self._block_rows = group
        if self._cands_t is None:  # one transposed copy of the pool for every language's block
            self._cands_t = np.ascontiguousarray(self._cands.T)
        self._block = dense_scorer(self._queries[group], self._cands, self.device, self._cands_t)(
            np.arange(len(group)))
        return self._block


def _within(rows: np.ndarray, sorted_rows: np.ndarray) -> bool:
    """Every one of `rows` is in the ascending `sorted_rows` (a binary search each: np.isin sorts both)."""
    at = np.minimum(np.searchsorted(sorted_rows, rows), max(len(sorted_rows) - 1, 0))
    return len(sorted_rows) > 0 and bool((sorted_rows[at] == rows).all())


def _bounded(queries: np.ndarray, cands: np.ndarray) -> bool:
    """Whether every dot product of these vectors is surely finite: by Cauchy-Schwarz no score exceeds the product
    of the largest norms (NaN or inf anywhere makes a norm NaN or inf, and the answer False)."""
    def largest(m: np.ndarray) -> float:
        return float(np.sqrt(np.einsum("ij,ij->i", m, m, dtype=np.float64).max(initial=0.0)))

    return largest(queries) * largest(cands) < 1e37  # float32 holds up to 3.4e38: a margin for rounding


class _Timer:
    """An encode function that counts the seconds spent in it (the encoder's own time, against the harness's)."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray]) -> None:
        self.encode, self.seconds = encode, 0.0

    def __call__(self, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.encode(texts)
        finally:
            self.seconds += time.perf_counter() - t0


def _run(index: np.ndarray) -> slice | np.ndarray:
    """A slice where `index` is one ascending run (a language's rows in a language-sorted pool)."""
    if len(index) and index[-1] - index[0] == len(index) - 1 and (np.diff(index) == 1).all():
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def _outer(block: Scores, rows: slice | np.ndarray, cols: slice | np.ndarray) -> Scores:
    """block[rows x cols]: a view of the shared score block when both are runs, a copy of the subset else."""
    if isinstance(rows, slice) or isinstance(cols, slice):
        return block[rows, cols]
    return block[np.ix_(rows, cols)]
