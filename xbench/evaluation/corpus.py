"""A task whose pool is a streamed corpus (MIRACL), evaluated language by language.

Each language is a unit of work: its queries and qrels are loaded, the model searches the corpus to the task's
depth (streamed: dense vectors in on-disk shards, a BM25 index on disk), the language's results file is written,
and everything is freed before the next language. The ranking follows the core's tie policy (score desc, then
candidate id asc) down to `options.depth`: a relevant passage below the depth is not retrieved (rank 0 stored,
inf for the metrics), as trec_eval sees a run file. Languages run separately merge into one file
(xbench/results/merge.py).
"""

from __future__ import annotations

import numpy as np

from xbench.errors import XbenchError
from xbench.evaluation.kernel import slice_result
from xbench.models.base import CorpusSearcher, Hits, Retriever
from xbench.ragged import Ragged
from xbench.results.schema import SliceResult
from xbench.retrieval.ann import SearchPlan
from xbench.retrieval.exact import Ranking, ranks_in
from xbench.tasks.settings import Slice
from xbench.tasks.taskdata import CorpusPart


def searcher(retriever: Retriever, task: str) -> CorpusSearcher:
    if not isinstance(retriever, CorpusSearcher):
        raise XbenchError(f"it streams its corpus, and model {retriever.info.name} cannot search a streamed "
                          "corpus (it has no `search_corpus`); use a dense encoder or bm25.")
    return retriever


def rank_part(retriever: CorpusSearcher, part: CorpusPart, plan: SearchPlan, metrics: list[str],
              ) -> tuple[SliceResult, Hits, list[str]]:
    """The mono slice of one language: its queries with a relevant passage in the corpus, searched to the depth.
    Returns the slice, the search's counts and notes, and the data notes (judged passages absent)."""
    import pyarrow as pa  # lazy: the corpus ids are an Arrow array
    import pyarrow.compute as pc

    assert plan.depth is not None  # run_parts refuses a streamed task without a depth
    ids = part.corpus.ids()
    qrels, rows, absent = part.judged(ids)
    query_ids = part.queries["id"].tolist()
    if not len(rows):
        raise XbenchError(f"language {part.lang}: no query has a relevant passage in the corpus "
                          f"({part.corpus.rows:,} passages); check the corpus and the qrels.")
    pairs = [(j, d, g) for j, i in enumerate(rows.tolist()) for d, g in qrels[query_ids[i]].items() if g > 0]
    # one lookup for every relevant passage: index_in hashes the corpus's ids once per call
    where = pc.index_in(pa.array([d for _, d, _ in pairs], pa.string()), value_set=ids).to_numpy(False)
    row_of = np.array([j for j, _, _ in pairs], dtype=np.int64)
    order = np.lexsort((where, row_of))
    relevant = Ragged.grouped(where[order].astype(np.int64), row_of[order], len(rows))
    grades = Ragged.grouped(np.array([g for _, _, g in pairs], dtype=np.int64)[order], row_of[order], len(rows))

    def by_id(positions: np.ndarray) -> np.ndarray:
        """The tie key: candidate ids (strings) of pool positions."""
        flat = positions.ravel()
        return np.asarray(ids.take(pa.array(flat)).to_numpy(False), dtype=object).reshape(positions.shape)

    hits = retriever.search_corpus(part.queries["text"].to_numpy()[rows].tolist(), part.corpus, plan, by_id)
    sl = Slice("mono", part.lang, part.lang, rows, np.arange(0))
    ranking = Ranking(ranks=ranks_in(hits.positions, relevant), top=hits.positions[:, :0])
    result = slice_result(sl, ranking, relevant, grades,
                          np.array([part.lang]), metrics, plan.depth)
    result = result.model_copy(update={"n_candidates": part.corpus.rows})
    return result, hits, [*part.notes, *([absent] if absent else [])]
