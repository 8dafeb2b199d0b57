"""Paired significance tests, bootstrap confidence intervals and significance tiers over per-query scores.

Two models are compared on the same units: a query (mono, multi) or a (query, candidate language) pair (cross),
matched by (setting, query language, candidate language, query id). Every unit carries a weight so that the
weighted mean over units is exactly the leaderboard's macro average (each query language counts once; in cross,
each candidate language once within it), which makes the tested statistic the number the leaderboard shows.

The statistics are hand-vectorised rather than delegated to `scipy.stats.permutation_test` / `bootstrap`
(which the tests use as references): a cross-lingual setting has ~10^5 paired units, where a sign-flip test is
a bit matrix times a vector, while the generic scipy versions permute whole data arrays per resample (and BCa
needs an n x n jackknife).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from xbench.aggregate import MACRO, per_query_scores
from xbench.results import ResultFile

UNIT = ["query_lang", "cand_lang", "query_id"]
_BLOCK = 4_000_000  # sign-flip matrix elements per block: bounds memory at ~32 MB whatever the number of units
_RTOL = 1e-9  # null statistics this close to the observed one count as ties (float sums in another order)


def _normalised(weights: np.ndarray | None, n: int) -> np.ndarray:
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64)
    return w / w.sum()


def _blocks(n_resamples: int, n: int) -> list[int]:
    """Resamples per block so that one block's (rows, n) sign-flip matrix stays within _BLOCK elements."""
    step = max(1, _BLOCK // max(n, 1))
    return [min(step, n_resamples - i) for i in range(0, n_resamples, step)]


def paired_randomization_test(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None,
                              n_resamples: int = 9999, seed: int = 0) -> float:
    """Two-sided p-value of the paired sign-flip (approximate randomization) test on the weighted mean difference.

    Under the null hypothesis the two systems are exchangeable on every unit, so each unit's difference keeps or
    flips its sign with probability 1/2. Exact (all 2^n sign vectors, p = share with |T| >= |t|) when
    2^n <= n_resamples, as in scipy; otherwise Monte Carlo with p = (hits + 1) / (n_resamples + 1).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) == 0:
        raise ValueError("no paired units to test")
    v = _normalised(weights, len(d)) * d
    observed = abs(v.sum())
    threshold = observed * (1 - _RTOL)
    if len(d) < 63 and 2 ** len(d) <= n_resamples:
        flips = (np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1
        return float(np.mean(np.abs(v.sum() - 2 * flips @ v) >= threshold))
    rng = np.random.default_rng(seed)
    hits = 0
    for rows in _blocks(n_resamples, len(d)):
        flips = np.unpackbits(rng.integers(0, 256, size=(rows, (len(d) + 7) // 8), dtype=np.uint8),
                              axis=1, count=len(d))
        hits += int(np.sum(np.abs(v.sum() - 2 * (flips @ v)) >= threshold))
    return (hits + 1) / (n_resamples + 1)


def bootstrap_ci(x: np.ndarray, weights: np.ndarray | None = None, confidence: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the weighted mean sum(w x) / sum(w), resampling units with replacement.

    Percentile rather than BCa: BCa's jackknife is quadratic in the number of units. Each resample is a count
    vector (bincount of n draws), which beats gathering an (n_resamples, n) index matrix at 10^5 units.
    """
    x = np.asarray(x, dtype=np.float64)
    w = _normalised(weights, len(x))
    terms = np.stack([x * w, w])
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    for r in range(n_resamples):
        counts = np.bincount(rng.integers(0, len(x), size=len(x)), minlength=len(x)).astype(np.float64)  # BLAS dot
        num, den = terms @ counts
        stats[r] = num / den
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1): controls the family-wise error."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def tiers(scores: Sequence[float], adjusted: np.ndarray, alpha: float = 0.05) -> list[int]:
    """Tier of each model: walking down the scores, a model opens a new tier when it is significantly worse
    (adjusted p < alpha in the symmetric matrix `adjusted`) than the model that opened the current tier."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    out = [0] * len(order)
    leader, tier = order[0] if len(order) else 0, 1
    for i in order:
        if i != leader and adjusted[leader, i] < alpha:
            leader, tier = i, tier + 1
        out[i] = tier
    return out


def unit_scores(result: ResultFile, setting: str, metric: str) -> pd.Series:
    """One value of `metric` per unit of `setting`, indexed by (query_lang, cand_lang, query_id)."""
    parts = []
    for s in (s for s in result.slices if s.setting == setting):
        ids = [result.query_ids[i] for i in s.per_query.query_index]
        index = pd.MultiIndex.from_arrays([[s.query_lang] * len(ids), [s.cand_lang] * len(ids), ids], names=UNIT)
        parts.append(pd.Series(per_query_scores(s.per_query, result.task.metrics, s.query_lang)[metric], index))
    if not parts:
        return pd.Series(dtype=np.float64, index=pd.MultiIndex.from_arrays([[], [], []], names=UNIT))
    return pd.concat(parts).dropna()


def macro_weights(index: pd.MultiIndex) -> np.ndarray:
    """Unit weights whose weighted mean is the macro average: 1 / (query languages x candidate languages of that
    query language x units in that slice)."""
    units = index.to_frame(index=False)
    per_slice = units.groupby(["query_lang", "cand_lang"])["query_id"].transform("size")
    per_lang = units.groupby("query_lang")["cand_lang"].transform("nunique")
    return 1.0 / (units["query_lang"].nunique() * per_lang * per_slice).to_numpy(dtype=np.float64)


def paired_units(results: dict[str, ResultFile], setting: str, metric: str) -> pd.DataFrame:
    """Units x models, keeping only the units that every model scored (the pairing)."""
    return pd.concat({label: unit_scores(r, setting, metric) for label, r in results.items()}, axis=1,
                     join="inner")


def significance_table(results: dict[str, ResultFile], setting: str, metric: str, alpha: float = 0.05,
                       n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per model: macro score on the paired units, bootstrap CI, Holm-adjusted p-value against the best model
    (over all pairwise tests of this setting), and the significance tier. Rows best first."""
    table = paired_units(results, setting, metric)
    if table.empty:
        return pd.DataFrame()
    w = macro_weights(table.index)
    labels = list(table.columns)
    scores = [float(np.dot(w, table[m])) for m in labels]
    pairs = list(combinations(range(len(labels)), 2))
    raw = [paired_randomization_test(table[labels[i]], table[labels[j]], w, n_resamples, seed) for i, j in pairs]
    adjusted = np.ones((len(labels), len(labels)))
    for (i, j), p in zip(pairs, holm(raw)):
        adjusted[i, j] = adjusted[j, i] = p
    best = int(np.argmax(scores))
    cis = [bootstrap_ci(table[m], w, n_resamples=n_resamples, seed=seed) for m in labels]
    out = pd.DataFrame({
        metric: scores,
        "ci_low": [c[0] for c in cis], "ci_high": [c[1] for c in cis],
        "tier": tiers(scores, adjusted, alpha),
        "p_vs_best": [np.nan if i == best else adjusted[best, i] for i in range(len(labels))],
        "units": len(table),
    }, index=pd.Index(labels, name="model"))
    return out.sort_values(metric, ascending=False, kind="stable")


def compare_pair(a: ResultFile, b: ResultFile, metric: str, n_resamples: int = 9999,
                 seed: int = 0) -> pd.DataFrame:
    """A vs B per setting: macro scores on the paired units, the difference, its bootstrap CI and the p-value."""
    rows = {}
    for setting in (s for s in a.settings if s in b.settings):
        table = paired_units({"A": a, "B": b}, setting, metric)
        if table.empty:
            continue
        w = macro_weights(table.index)
        low, high = bootstrap_ci(table["A"] - table["B"], w, n_resamples=n_resamples, seed=seed)
        rows[setting] = {"units": len(table), "A": float(np.dot(w, table["A"])), "B": float(np.dot(w, table["B"])),
                         "A-B": float(np.dot(w, table["A"] - table["B"])), "ci_low": low, "ci_high": high,
                         "p": paired_randomization_test(table["A"], table["B"], w, n_resamples, seed)}
    return pd.DataFrame.from_dict(rows, orient="index")


def language_differences(a: ResultFile, b: ResultFile, metric: str) -> pd.DataFrame:
    """A - B per query language (rows) and setting (columns), from the files' summaries."""
    def frame(r: ResultFile) -> pd.DataFrame:
        return pd.DataFrame({s: {lang: v.get(metric, np.nan) for lang, v in by_lang.items()}
                             for s, by_lang in r.summary.items()})

    diff = frame(a).sub(frame(b))
    return diff.reindex([*sorted(lang for lang in diff.index if lang != MACRO), MACRO])
