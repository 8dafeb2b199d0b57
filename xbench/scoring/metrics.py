"""Per-query ranking metrics computed from ranks alone.

The retrieval core hands over, per query, the 1-based rank of each judged candidate in the full ranking of the
pool (tie policy: score descending, then candidate id ascending) and its relevance grade. Every metric here is a
vectorised function of those two padded arrays, so none of them sorts anything and all of them describe the
same ranking. Conventions follow trec_eval (checked against pytrec_eval in tests/test_metrics.py):

* relevant means grade > 0; grade-0 entries are judged non-relevant and only fill space;
* a relevant candidate that was not retrieved (e.g. beyond a truncated top-k) has rank np.inf: it counts in
  every denominator (AP, recall, ideal DCG) but never in a numerator;
* a query without any relevant candidate scores 0 on every metric (trec_eval does the same). The caller
  normally drops such queries before averaging.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xbench.ragged import pad


def pad_ranks(
    ranks: Sequence[Sequence[float]], grades: Sequence[Sequence[int]], *aligned: Sequence[Sequence[Any]]
) -> tuple[np.ndarray, ...]:
    """Ragged per-query lists -> (n_q, m) float64 ranks padded with np.inf and int grades padded with 0.

    Pass every relevant candidate, with rank np.inf where it was not retrieved (e.g. beyond a truncated top-k
    search), so that it counts in the denominators. Rows are sorted by rank ascending, so cumulative sums along
    a row follow the ranking. `aligned` side arrays (e.g. each candidate's language) are padded with "" (strings)
    or 0 (numbers), permuted the same way and returned after ranks and grades.
    """
    padded_ranks = pad(ranks, np.inf, np.float64)
    order = np.argsort(padded_ranks, axis=1, kind="stable")
    sides = [pad(grades, 0, np.int64)]
    for rows in aligned:
        strings = isinstance(next((x for r in rows for x in r), ""), str)  # all-empty rows count as strings
        sides.append(pad(rows, "" if strings else 0, str if strings else None))
    return tuple(np.take_along_axis(a, order, axis=1) for a in (padded_ranks, *sides))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den == 0 (queries without relevant candidates)."""
    return np.divide(num, den, out=np.zeros(num.shape), where=den > 0)


def _discount(ranks: np.ndarray) -> np.ndarray:
    """DCG discount 1 / log2(rank + 1); 0 at rank np.inf."""
    return 1.0 / np.log2(ranks + 1.0)


def average_precision(ranks: np.ndarray, grades: np.ndarray) -> np.ndarray:
    """(n_q,) AP: mean over the query's relevant candidates of precision at their rank (0 if not retrieved)."""
    relevant = grades > 0
    precision = np.cumsum(relevant, axis=1) / ranks  # rows are rank-sorted: cumsum = #relevant at or above
    return _ratio((precision * relevant).sum(axis=1), relevant.sum(axis=1))


def reciprocal_rank(ranks: np.ndarray, grades: np.ndarray) -> np.ndarray:
    """(n_q,) 1 / rank of the best-ranked relevant candidate, 0 if none was retrieved."""
    return ((grades > 0) / ranks).max(axis=1, initial=0.0)


def recall_at(ranks: np.ndarray, grades: np.ndarray, k: int) -> np.ndarray:
    """(n_q,) share of the query's relevant candidates ranked within the top k."""
    relevant = grades > 0
    return _ratio((relevant & (ranks <= k)).sum(axis=1), relevant.sum(axis=1))


def ndcg_at(ranks: np.ndarray, grades: np.ndarray, k: int) -> np.ndarray:
    """(n_q,) trec_eval ndcg_cut.k: gain = grade, discount 1 / log2(rank + 1), cut at rank k.

    The ideal ranking sorts the query's own grades, including relevant candidates that were not retrieved,
    so a truncated run cannot inflate the score.
    """
    dcg = (grades * _discount(ranks) * (ranks <= k)).sum(axis=1)
    ideal = -np.sort(-grades, axis=1)[:, :k]
    idcg = (ideal * _discount(np.arange(1.0, ideal.shape[1] + 1))).sum(axis=1)
    return _ratio(dcg, idcg)


@dataclass(frozen=True)
class Metric:
    """A per-query metric: `fn(ranks, grades)`, or `fn(ranks, grades, k)` for a cut-off metric named `NAME@K`."""

    fn: Callable[..., np.ndarray]
    cutoff: bool = False


# The one place a metric is added: task specs accept these names, runs compute them, validation recomputes them.
METRICS = {"map": Metric(average_precision), "mrr": Metric(reciprocal_rank),
           "recall": Metric(recall_at, cutoff=True), "ndcg": Metric(ndcg_at, cutoff=True)}


def metric_forms() -> str:
    """The accepted metric names, for error messages: "map, mrr, recall@K or ndcg@K"."""
    forms = [f"{name}@K" if metric.cutoff else name for name, metric in METRICS.items()]
    return ", ".join(forms[:-1]) + f" or {forms[-1]}"


def parse_metric(name: str) -> tuple[Metric, int | None]:
    """`map` -> (Metric, None), `ndcg@10` -> (Metric, 10); anything else is a ValueError naming the forms."""
    family, at, k = name.partition("@")
    metric = METRICS.get(family)
    if metric is None or metric.cutoff != bool(at) or (at and not k.isdigit()):
        raise ValueError(f"unknown metric {name!r}: use {metric_forms()}")
    return metric, int(k) if at else None


def per_query(ranks: np.ndarray, grades: np.ndarray, metrics: Sequence[str]) -> dict[str, np.ndarray]:
    """name -> (n_q,) per-query values, e.g. "map" (per query: AP), "mrr" (RR), "recall@K", "ndcg@K"."""
    out = {}
    for name in metrics:
        metric, k = parse_metric(name)
        out[name] = metric.fn(ranks, grades) if k is None else metric.fn(ranks, grades, k)
    return out
