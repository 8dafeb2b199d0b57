"""One slice, ranked: a query set against a candidate pool, through the shared retrieval core, down to the ranks
of every relevant candidate (the per-query data a results file stores) and the slice's mean scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from xbench.models.base import Retriever
from xbench.ragged import Ragged
from xbench.results.schema import NOT_RETRIEVED, PerQuery, SliceResult
from xbench.retrieval.ann import SearchPlan, rank
from xbench.retrieval.exact import Ranking
from xbench.scoring.aggregate import padded_scores, slice_means
from xbench.tasks.settings import Slice
from xbench.tasks.taskdata import TaskData

TOP_K = 10
EXACT = SearchPlan()  # the whole pool ranked exactly (no depth)


def run_slice(retriever: Retriever, data: TaskData, sl: Slice, metrics: list[str],
              search: SearchPlan = EXACT) -> SliceResult:
    """Rank one slice's pool for its queries and keep the ranks of every relevant candidate (0 = not retrieved
    within the task's `depth`; `search` may find the top `depth` with FAISS, see xbench/retrieval/ann.py)."""
    return slice_result(*_ranked(retriever, data, sl, search), metrics, search.depth)


def run_slices(retriever: Retriever, data: TaskData, todo: Sequence[Slice], metrics: list[str],
               search: SearchPlan = EXACT, desc: str | None = None) -> list[SliceResult]:
    """`run_slice` for every slice, in order, with every candidate's language read once for all of them."""
    langs = data.candidates["lang"].to_numpy()  # once: each call converts every string
    return [slice_result(*_ranked(retriever, data, sl, search, langs), metrics, search.depth)
            for sl in (todo if desc is None else tqdm(todo, desc=desc, unit="slice"))]  # -q sets TQDM_DISABLE


def _ranked(retriever: Retriever, data: TaskData, sl: Slice, search: SearchPlan, langs: np.ndarray | None = None,
            ) -> tuple[Slice, Ranking, Ragged, Ragged, np.ndarray]:
    """The slice ranked, with what `slice_result` needs besides: relevant positions, grades, pool languages
    (`langs`: every candidate's language, when the caller has them)."""
    cand_langs = (data.candidates["lang"].to_numpy() if langs is None else langs)[sl.cand_rows]
    relevant, grades = _relevant(data, sl)
    multi = sl.setting == "multi"  # the top-10 languages feed the same-language share, a multi-only figure
    hidden = _hidden(data, sl) if data.exclude else None  # bitext: a query's own text never competes
    ranking = rank(retriever, sl.query_rows, sl.cand_rows, relevant, search, top=TOP_K if multi else 0,
                   exclude=hidden)
    return sl, ranking, relevant, grades, cand_langs


def slice_result(sl: Slice, ranking: Ranking, relevant: Ragged, grades: Ragged, cand_langs: np.ndarray,
                 metrics: list[str], depth: int | None) -> SliceResult:
    """A ranked slice as stored: ranks of every relevant candidate (ascending, grades aligned) and the means.
    `relevant`/`grades`: per query, pool positions of its relevant candidates and their grades; `cand_langs`:
    the language of each pool position (the multi setting stores the languages of the top 10)."""
    multi = sl.setting == "multi"
    lengths = relevant.lengths
    ranks = ranking.ranks.filled(np.inf)
    order = np.argsort(ranks, axis=1, kind="stable")  # ascending; padding (inf, after every real rank) stays last
    ranks = np.take_along_axis(ranks, order, axis=1)
    grade_rows = np.take_along_axis(grades.filled(1), order, axis=1)

    uniform = bool((lengths == ranks.shape[1]).all())  # every query has as many relevant candidates: no padding

    def rows(padded: np.ndarray) -> list[list]:
        return padded.tolist() if uniform else [row[:n] for row, n in zip(padded.tolist(), lengths.tolist())]

    top_langs = [[cand_langs[p] for p in row if p >= 0] for row in ranking.top] if multi else None
    pq = PerQuery(
        query_index=sl.query_rows.tolist(),
        ranks=rows(np.where(np.isinf(ranks), NOT_RETRIEVED, ranks).astype(int)),
        depth=depth,
        grades=rows(grade_rows) if (grade_rows != 1).any() else None,
        top_langs=top_langs,
        rel_langs=rows(np.take_along_axis(cand_langs[relevant.values], order, axis=1)) if multi else None,
    )
    padding = ~relevant.valid  # the padding stayed last: the same cells before and after the sort
    scores = slice_means(padded_scores(ranks, np.where(padding, 0, grade_rows), top_langs, metrics, sl.query_lang))
    return SliceResult(setting=sl.setting, query_lang=sl.query_lang, cand_lang=sl.cand_lang,
                       n_queries=len(sl.query_rows), n_candidates=len(sl.cand_rows), scores=scores, per_query=pq)


def _relevant(data: TaskData, sl: Slice) -> tuple[Ragged, Ragged]:
    """Per query of the slice: pool positions of its relevant candidates (ascending) and their grades."""
    starts = data.judgement_starts[sl.query_rows]
    lengths = data.judgement_starts[sl.query_rows + 1] - starts
    q = np.repeat(np.arange(len(sl.query_rows)), lengths)
    picked = data.judgements[starts[q] + np.arange(len(q)) - np.repeat(np.cumsum(lengths) - lengths, lengths)]
    pool_at = np.full(len(data.candidates), -1)
    pool_at[sl.cand_rows] = np.arange(len(sl.cand_rows))
    p, g = pool_at[picked[:, 1]], picked[:, 2]
    keep = p >= 0
    q, p, g = q[keep], p[keep], g[keep]
    if not (np.diff(sl.cand_rows) > 0).all():  # else the pool follows the candidate rows: p is ascending already
        order = np.lexsort((p, q))
        q, p, g = q[order], p[order], g[order]
    return Ragged.grouped(p, q, len(sl.query_rows)), Ragged.grouped(g, q, len(sl.query_rows))


def _hidden(data: TaskData, sl: Slice) -> list[np.ndarray]:
    """Per query of the slice: pool positions of the candidates withheld from it (`TaskData.exclude`)."""
    position = dict(zip(data.candidates["id"].to_numpy()[sl.cand_rows], range(len(sl.cand_rows))))
    return [np.array([position[d] for d in data.exclude.get(q, ()) if d in position], dtype=np.int64)
            for q in data.queries["id"].to_numpy()[sl.query_rows]]
