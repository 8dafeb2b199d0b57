"""Language-bias figures for the multi (pooled) setting, after Huang et al. (2023) and Elmahdy et al. (2024).

A language-agnostic retriever ranks a query's relevant answers close together whatever their language, and
fills its top k with candidates of every language rather than mostly the query's own. All inputs are the padded,
rank-sorted arrays from `xbench.scoring.metrics.pad_ranks` (rank np.inf = not retrieved, grade > 0 = relevant).
"""

from __future__ import annotations

import numpy as np


def _ranked_relevant(ranks: np.ndarray, grades: np.ndarray) -> np.ndarray:
    """Mask of relevant candidates that actually received a rank."""
    return (grades > 0) & np.isfinite(ranks)


def rank_distance(ranks: np.ndarray, grades: np.ndarray) -> np.ndarray:
    """(n_q,) max rank - min rank over the ranked relevant candidates; lower = less language bias.

    With one relevant answer per language, a wide spread means some languages' answers sit far below others.
    np.nan when fewer than 2 relevant candidates were ranked (no spread to measure).
    """
    ranked = _ranked_relevant(ranks, grades)
    hi = np.where(ranked, ranks, -np.inf).max(axis=1, initial=-np.inf)
    lo = np.where(ranked, ranks, np.inf).min(axis=1, initial=np.inf)
    return np.where(ranked.sum(axis=1) >= 2, hi - lo, np.nan)


def same_language_share(top_langs: np.ndarray, query_langs: np.ndarray) -> np.ndarray:
    """(n_q,) share of each query's top k written in the query's own language; high = same-language bias.

    `top_langs` (n_q, k) may hold "" padding where the pool has fewer than k candidates; the share is over the
    real entries only (np.nan for a query with none).
    """
    real = top_langs != ""
    same = (top_langs == query_langs[:, None]) & real
    n_real = real.sum(axis=1)
    return np.divide(same.sum(axis=1), n_real, out=np.full(n_real.shape, np.nan), where=n_real > 0)


def first_hit_language(ranks: np.ndarray, grades: np.ndarray, rel_langs: np.ndarray) -> np.ndarray:
    """(n_q,) object array: language of each query's best-ranked relevant candidate, "" if none was ranked.

    `rel_langs` (n_q, m) is aligned with `ranks`; the distribution of first-hit languages shows which
    language a retriever reaches for first.
    """
    ranked = _ranked_relevant(ranks, grades)
    best = np.where(ranked, ranks, np.inf).min(axis=1, initial=np.inf)
    out = np.full(len(ranks), "", dtype=object)
    if ranks.size == 0:
        return out
    # the first entry at the best rank: one per row even where a (forged) file repeats a rank
    first = np.argmax(ranked & (ranks == best[:, None]), axis=1)
    hit = np.isfinite(best)
    out[hit] = rel_langs[np.arange(len(ranks)), first][hit]
    return out
