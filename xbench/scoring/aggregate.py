"""From per-query ranks to per-slice scores, per-language summaries and bias figures.

Everything here reads only what a results file stores (ranks, grades, languages), so `xbench run` and
`xbench submit` compute aggregates with the same code. Averaging follows LAReQA: a slice score is
the mean over its queries; a query language's cross score is first the mean over candidate languages; the
macro score is the mean over query languages.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from xbench.scoring.bias import first_hit_language, rank_distance, same_language_share
from xbench.scoring.metrics import pad_ranks, per_query

MACRO = "macro"
RD, SAME_LANG = "rank_distance", "same_lang@10"


class RankedQueries(Protocol):
    """One slice's per-query data as a results file stores it (`xbench.results.schema.PerQuery`)."""

    @property
    def top_langs(self) -> list[list[str]] | None: ...
    @property
    def rel_langs(self) -> list[list[str]] | None: ...

    def rank_lists(self) -> list[list[float]]: ...

    def grade_lists(self) -> list[list[int]]: ...


class ScoredSlice(Protocol):
    """One scored slice as a results file stores it (`xbench.results.schema.SliceResult`)."""

    @property
    def setting(self) -> str: ...
    @property
    def query_lang(self) -> str: ...
    @property
    def cand_lang(self) -> str: ...
    @property
    def n_queries(self) -> int: ...
    @property
    def scores(self) -> dict[str, float]: ...
    @property
    def per_query(self) -> RankedQueries: ...


def macro(summary: dict[str, dict[str, dict[str, float]]], setting: str, metric: str) -> float:
    """The leaderboard number: `metric`'s macro average in `setting` of a results summary (NaN if not run)."""
    return summary.get(setting, {}).get(MACRO, {}).get(metric, float("nan"))


def main_score(summary: dict[str, dict[str, dict[str, float]]], main_metric: str) -> float | None:
    """The task's main metric (`setting.metric`) macro-averaged; None when that setting did not run (a results
    file leaves it out: never NaN, never null)."""
    setting, _, metric = main_metric.partition(".")
    value = macro(summary, setting, metric)
    return None if math.isnan(value) else value


def per_query_scores(pq: RankedQueries, metrics: Sequence[str], query_lang: str) -> dict[str, np.ndarray]:
    """All per-query values of one slice as a results file stores it (see `padded_scores`)."""
    ranks, grades = pad_ranks(pq.rank_lists(), pq.grade_lists())
    return padded_scores(ranks, grades, pq.top_langs, metrics, query_lang)


def padded_scores(ranks: np.ndarray, grades: np.ndarray, top_langs: list[list[str]] | None,
                  metrics: Sequence[str], query_lang: str) -> dict[str, np.ndarray]:
    """All per-query values of one slice from its padded, rank-sorted arrays (`pad_ranks`; a run hands over its
    arrays without a round trip through lists): the task's metrics, plus bias figures where the slice has them."""
    scores = per_query(ranks, grades, metrics)
    if top_langs is not None:
        scores[RD] = rank_distance(ranks, grades)
        width = max((len(t) for t in top_langs), default=0)
        top = np.array([t + [""] * (width - len(t)) for t in top_langs], dtype=object)
        scores[SAME_LANG] = same_language_share(top, np.full(len(top), query_lang, dtype=object))
    return scores


def slice_means(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Means over queries; NaN entries (e.g. rank distance of a query with one relevant) are left out, and so is
    a figure no query has (EXAMS languages without parallel questions have no rank distance): JSON has no NaN."""
    out = {}
    for name, values in scores.items():
        finite = values[~np.isnan(values)]
        if len(finite):
            out[name] = float(finite.mean())
    return out


def summarise(slices: Sequence[ScoredSlice]) -> dict[str, dict[str, dict[str, float]]]:
    """setting -> query language | 'macro' -> metric -> value."""
    grouped: dict[str, dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    for s in slices:
        grouped[s.setting][s.query_lang].append(s.scores)
    summary = {}
    for setting, by_lang in grouped.items():
        per_lang = {lang: _mean_dicts(rows) for lang, rows in sorted(by_lang.items())}
        summary[setting] = {**per_lang, MACRO: _mean_dicts(list(per_lang.values()))}
    return summary


def _mean_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for r in rows for k in r})
    return {k: float(np.nanmean([r[k] for r in rows if k in r])) for k in keys}


def bias_figures(slices: Sequence[ScoredSlice]) -> dict:
    """Language-bias views: rank distance, same-language share and first-hit language (multi), and the
    query-language x candidate-language mAP matrix (mono + cross)."""
    bias: dict = {}
    multi = [s for s in slices if s.setting == "multi"]
    for key in (RD, SAME_LANG):
        per_lang = {s.query_lang: s.scores[key] for s in multi if key in s.scores}
        if per_lang:
            bias[key] = {**per_lang, MACRO: float(np.nanmean(list(per_lang.values())))}
    matrix: dict[str, dict[str, float]] = defaultdict(dict)
    for s in slices:
        if s.setting in ("mono", "cross") and "map" in s.scores:
            matrix[s.query_lang][s.query_lang if s.setting == "mono" else s.cand_lang] = s.scores["map"]
    if matrix:
        bias["map_matrix"] = dict(matrix)
    shares = {}
    for s in multi:
        if s.per_query.rel_langs is not None:
            ranks, grades, langs = pad_ranks(s.per_query.rank_lists(), s.per_query.grade_lists(), s.per_query.rel_langs)
            first = Counter(first_hit_language(ranks, grades, langs).tolist())
            shares[s.query_lang] = {lang: n / s.n_queries for lang, n in sorted(first.items()) if lang}
    if shares:
        bias["first_hit_language"] = shares
    return bias
