"""Paired significance tests, bootstrap confidence intervals and significance tiers over per-query scores.

Two models are compared on the same units: a query (mono, multi) or a (query, candidate language) pair (cross),
matched by (setting, query language, candidate language, query id). Every unit carries a weight so that the
weighted mean over units is exactly the leaderboard's macro average (each query language counts once; in cross,
each candidate language once within it), which makes the tested statistic the number the leaderboard shows.

Which test: a paired t-test on the weighted mean difference when the units are many (Kish's effective number
>= 30: the central limit theorem makes it accurate there, Dror et al. 2018; on IR metrics it agrees closely with
the randomization test, Smucker, Allan & Carterette 2007), else the sign-flip randomization test, exact when
2^units <= resamples. The t-test's p-value has no resolution floor, so a Holm correction over many pairs cannot
push every p-value above alpha the way a Monte Carlo p >= 1/(resamples + 1) does.

Which tests: every pair of models with different per-unit scores, Holm-corrected together. Testing only "the
best" against the others (m - 1 tests) would not control the error, because the best is chosen from the same
data: under a null of 16 exchangeable models that family separates some model about 20% of the time at alpha
0.05 (the best-vs-worst gap is the range of 16 means, Tukey's studentized range), against ~3% for all pairs.
The control of Demšar's (2006) m - 1 comparisons has to be fixed in advance; the observed best is not.

The statistics are hand-vectorised rather than delegated to `scipy.stats.permutation_test` / `bootstrap`
(which the tests use as references): a cross-lingual setting has ~10^4-10^5 paired units, where a sign-flip test
is a bit matrix times a vector and a block of bootstrap resamples is one count matrix times every model's
scores, while the generic scipy versions permute or resample whole data arrays per resample.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from xbench.results.schema import PerQuery, ResultFile
from xbench.scoring.aggregate import MACRO, per_query_scores
from xbench.scoring.metrics import pad_ranks, per_query

UNIT = ["query_lang", "cand_lang", "query_id"]
# Kish effective units from which the t-test replaces the randomization test: the usual central-limit rule of
# thumb, and a safe one for bounded per-query metrics (Smucker et al. found the two tests' p-values agreeing on
# 50-topic TREC runs). Below it the sign-flip test, which assumes nothing about the differences' distribution.
T_TEST_MIN_UNITS = 30
T_TEST, EXACT, MONTE_CARLO = "t-test", "exact", "monte carlo"
_BLOCK = 4_000_000  # resample-matrix elements per block: bounds memory at ~32 MB per array whatever the units
_RTOL = 1e-9  # null statistics this close to the observed one count as ties (float sums in another order)


def _normalised(weights: np.ndarray | None, n: int) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.all(w >= 0) or not w.sum() > 0:
        raise ValueError(f"weights must be {n} non-negative numbers (one per paired unit) with a positive sum; "
                         f"got shape {w.shape}: pass macro_weights(index) of the paired units, or None")
    return w / w.sum()


def _blocks(n_resamples: int, n: int) -> list[int]:
    """Resamples per block so that one block's (rows, n) resample matrix stays within _BLOCK elements."""
    step = max(1, _BLOCK // max(n, 1))
    return [min(step, n_resamples - i) for i in range(0, n_resamples, step)]


def _exact(n: int, n_resamples: int) -> bool:
    """Enumerate all 2^n sign vectors when that is no more work than the resamples asked for (as scipy does)."""
    return n < 63 and 2 ** n <= n_resamples


def effective_units(weights: np.ndarray | None, n: int) -> float:
    """Kish's effective sample size 1 / sum(w^2) of normalised weights: how many equally weighted units carry as
    much information as these (n when the weights are equal, fewer the more they vary)."""
    return float(1 / np.sum(_normalised(weights, n) ** 2))


def weighted_t_test(diffs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Two-sided p-value of the paired t-test that the weighted mean of `diffs` (n units, or n x k: one test per
    column) is 0.

    The statistic is D = sum(w d) with normalised macro weights w, the number the leaderboard compares. Its variance
    over independent units is sum(w_i^2 Var(d_i)), estimated by V = n/(n-1) sum(w_i^2 (d_i - D)^2): the
    Taylor-linearisation (sandwich) variance of a weighted mean used in survey statistics, and what the bootstrap
    CI beside it estimates. It lets the variance differ between query languages, which a pooled weighted
    variance divided by the effective n would not. The t distribution gets Kish's effective n minus 1 degrees of
    freedom. With equal weights V = s^2 / n and df = n - 1: exactly scipy.stats.ttest_rel / ttest_1samp.
    A zero variance means identical differences: p = 1 if they are all 0, else 0.
    """
    d = np.asarray(diffs, dtype=np.float64)
    n = len(d)
    if n < 2:
        raise ValueError(f"the t-test needs at least 2 paired units, got {n}; use paired_randomization_test")
    w = _normalised(weights, n)
    mean = w @ d
    variance = n / (n - 1) * ((w ** 2) @ (d - mean) ** 2)
    df = 1 / np.sum(w ** 2) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * special.stdtr(df, -np.abs(mean) / np.sqrt(variance))  # Student's t survival function
    return np.where(variance > 0, p, np.where(mean == 0, 1.0, 0.0))


def _sign_flip_p(d: np.ndarray, w: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Two-sided sign-flip p-value of each column of the n x k differences `d`.

    Every column sees the same sign vectors (one stream seeded with `seed`, as if each were tested alone), so the
    sign matrix of a block of resamples is drawn once for all pairs of models, and each pair is one matrix-vector
    product with it. Not one matrix-matrix product for all pairs: that adds in another order, and where a pair's
    observed sum is 0 up to rounding, the order decides ties; a product per pair gives the p-values of a test per
    pair bit for bit.
    """
    v = np.ascontiguousarray(np.asarray(d, dtype=np.float64).reshape(len(d), -1).T) * w  # k x n, a row per pair
    totals = v.sum(axis=1)
    thresholds = np.abs(totals) * (1 - _RTOL)
    n = len(w)
    exact = _exact(n, n_resamples)
    blocks: Iterable[np.ndarray]
    if exact:
        blocks = [((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(np.float64)]
    else:
        rng = np.random.default_rng(seed)
        blocks = (np.unpackbits(rng.integers(0, 256, size=(rows, (n + 7) // 8), dtype=np.uint8), axis=1,
                                count=n).astype(np.float64) for rows in _blocks(n_resamples, n))
    hits = np.zeros(len(v), dtype=np.int64)
    for flips in blocks:
        for j, (row, total, threshold) in enumerate(zip(v, totals, thresholds)):
            hits[j] += np.count_nonzero(np.abs(total - 2 * (flips @ row)) >= threshold)
    return hits / 2 ** n if exact else (hits + 1) / (n_resamples + 1)


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
    return float(_sign_flip_p(d, _normalised(weights, len(d)), n_resamples, seed)[0])


@dataclass(frozen=True)
class PairedTest:
    """The test every pair of models in one setting gets, chosen from the units alone (never from the scores)."""

    kind: str  # T_TEST, EXACT or MONTE_CARLO
    units: int
    effective_units: float
    n_resamples: int

    @classmethod
    def choose(cls, weights: np.ndarray | None, n: int, n_resamples: int) -> PairedTest:
        """The t-test from T_TEST_MIN_UNITS effective units, else the randomization test (exact if it can be)."""
        n_eff = effective_units(weights, n)
        kind = T_TEST if n_eff >= T_TEST_MIN_UNITS else EXACT if _exact(n, n_resamples) else MONTE_CARLO
        return cls(kind, n, n_eff, n_resamples)

    @property
    def smallest_p(self) -> float:
        """The smallest raw p-value this test can return: 0 for the t-test (its p-values go down to ~1e-300),
        2 / 2^n for the exact test (all signs kept, or all flipped), 1 / (resamples + 1) for Monte Carlo."""
        return {T_TEST: 0.0, EXACT: 2.0 ** (1 - self.units), MONTE_CARLO: 1 / (self.n_resamples + 1)}[self.kind]

    def pvalues(self, diffs: np.ndarray, weights: np.ndarray | None, seed: int = 0) -> np.ndarray:
        """One two-sided p-value per column of the n x k per-unit differences."""
        if self.kind == T_TEST:
            return weighted_t_test(diffs, weights)
        return _sign_flip_p(diffs, _normalised(weights, self.units), self.n_resamples, seed)

    def __str__(self) -> str:
        if self.kind == T_TEST:
            return f"paired t-test ({self.effective_units:.0f} effective units)"
        if self.kind == EXACT:
            return f"exact sign-flip randomization test (all 2^{self.units} sign vectors)"
        return f"sign-flip randomization test ({self.n_resamples} resamples)"


def bootstrap_cis(x: np.ndarray, weights: np.ndarray | None = None, confidence: float = 0.95,
                  n_resamples: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of each column's weighted mean sum(w x) / sum(w), resampling units (rows)
    with replacement; every column sees the same resamples.

    Percentile rather than BCa: BCa's jackknife is quadratic in the number of units. A block of resamples is a
    count matrix (bincount of its draws), so one matrix product gives every column's resampled means.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    n = len(x)
    w = _normalised(weights, n)
    terms = np.column_stack([x * w[:, None], w])
    rng = np.random.default_rng(seed)
    means = []
    for rows in _blocks(n_resamples, n):
        draws = rng.integers(0, n, size=(rows, n))
        draws += n * np.arange(rows)[:, None]  # row r's draws count into row r of the count matrix
        counts = np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)
        sums = counts @ terms
        means.append(sums[:, :-1] / sums[:, -1:])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(np.concatenate(means), [tail, 100 - tail], axis=0)
    return low, high


def bootstrap_ci(x: np.ndarray, weights: np.ndarray | None = None, confidence: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the weighted mean of one vector (see bootstrap_cis)."""
    low, high = bootstrap_cis(np.asarray(x, dtype=np.float64)[:, None], weights, confidence, n_resamples, seed)
    return float(low[0]), float(high[0])


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1): controls the family-wise error."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def tiers(scores: Sequence[float] | np.ndarray, adjusted: np.ndarray, alpha: float = 0.05) -> list[int]:
    """Tier of each model by step-down from the best: tier 1 is the best model and every model not significantly
    worse than it (adjusted p >= alpha in the symmetric matrix `adjusted`); without them, the best of the rest
    leads tier 2 the same way; and so on. A model inseparable from the best stays in tier 1 even when one scoring
    above it was separated, so a tier need not be a contiguous run of the ranking."""
    ranking = np.asarray(scores, dtype=np.float64)
    out = np.zeros(len(ranking), dtype=int)
    tier = 0
    while len(rest := np.flatnonzero(out == 0)):
        tier += 1
        leader = rest[np.argmax(ranking[rest])]
        out[rest[np.asarray(adjusted)[leader, rest] >= alpha]] = tier
        out[leader] = tier
    return out.tolist()


def _distinct_columns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(x, axis=1, return_inverse=True)`: the distinct columns in lexicographic order, and each column's
    position among them. numpy builds a structured dtype with one field per row for that, seconds at 10^5 units;
    comparing whole columns as bytes and sorting the few distinct ones as lists gives the same in milliseconds."""
    columns = np.ascontiguousarray(x.T) + 0.0  # + 0.0: -0.0 becomes 0.0, equal as numbers and now as bytes too
    first: dict[bytes, int] = {}
    for j, column in enumerate(columns):
        first.setdefault(column.tobytes(), j)
    order = sorted(first.values(), key=lambda j: columns[j].tolist())
    position = {columns[j].tobytes(): i for i, j in enumerate(order)}
    return x[:, order], np.array([position[column.tobytes()] for column in columns])


@dataclass(frozen=True)
class Separation:
    """What the paired tests say about m models: macro scores, tiers, Holm-adjusted p against the best (NaN for
    the best itself), the test used and how many tests the correction covered."""

    scores: np.ndarray
    tiers: list[int]
    p_vs_best: np.ndarray
    test: PairedTest
    tests: int

    @property
    def smallest_adjusted_p(self) -> float:
        """Holm's first step multiplies by the number of tests: no adjusted p-value can go below this."""
        return min(1.0, self.tests * self.test.smallest_p)


def separate(x: np.ndarray, weights: np.ndarray | None = None, alpha: float = 0.05, n_resamples: int = 2000,
             seed: int = 0) -> Separation:
    """Scores, tiers and p-values against the best for the columns (models) of the units x models matrix `x`.

    Models with identical per-unit scores are tested once, as one: they get the same scores, p-values and tier,
    and their comparison, which no test is needed for, does not count against the others.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or not x.size:
        raise ValueError(f"x must be a units x models matrix with at least one unit; got shape {x.shape}")
    w = _normalised(weights, len(x))
    distinct, model_of = _distinct_columns(x)
    test = PairedTest.choose(w, len(x), n_resamples)
    i, j = np.triu_indices(distinct.shape[1], 1)
    pairwise = np.ones((distinct.shape[1],) * 2)
    pairwise[i, j] = pairwise[j, i] = holm(test.pvalues(distinct[:, i] - distinct[:, j], w, seed))
    scores = (w @ distinct)[model_of]
    adjusted = pairwise[np.ix_(model_of, model_of)]
    best = int(np.argmax(scores))
    p_vs_best = adjusted[best].copy()
    p_vs_best[best] = np.nan
    return Separation(scores, tiers(scores, adjusted, alpha), p_vs_best, test, len(i))


def _slice_values(pq: PerQuery, metrics: list[str], query_lang: str, metric: str) -> np.ndarray:
    """One metric's per-query values in a slice. A metric of the task is computed alone (what per_query_scores
    computes for it, without the task's other metrics and the bias figures); a bias figure through
    per_query_scores."""
    if metric not in metrics:
        return per_query_scores(pq, metrics, query_lang)[metric]
    ranks, grades = pad_ranks(pq.rank_lists(), pq.grade_lists())
    return per_query(ranks, grades, [metric])[metric]


def unit_scores(result: ResultFile, setting: str, metric: str) -> pd.Series:
    """One value of `metric` per unit of `setting`, indexed by (query_lang, cand_lang, query_id). The index is
    built once from flat arrays: a MultiIndex per slice, then concatenated, cost more than the tests."""
    slices = [s for s in result.slices if s.setting == setting]
    values = [_slice_values(s.per_query, result.task.metrics, s.query_lang, metric) for s in slices]
    sizes = [len(v) for v in values]
    index = pd.MultiIndex.from_arrays([np.repeat([s.query_lang for s in slices], sizes).astype(object),
                                       np.repeat([s.cand_lang for s in slices], sizes).astype(object),
                                       [result.query_ids[i] for s in slices for i in s.per_query.query_index]],
                                      names=UNIT)
    return pd.Series(np.concatenate([np.empty(0), *values]), index=index).dropna()


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
    (over all pairwise tests of this setting) and the significance tier; rows best first. The constant columns
    say how it was tested, for the table's caption: units, tests (pairs corrected together), method, and min_p,
    the smallest adjusted p-value the method can reach (at or above alpha nothing can be separated)."""
    table = paired_units(results, setting, metric)
    if table.empty:
        return pd.DataFrame()
    w = macro_weights(table.index)
    sep = separate(table.to_numpy(), w, alpha, n_resamples, seed)
    low, high = bootstrap_cis(table.to_numpy(), w, n_resamples=n_resamples, seed=seed)
    out = pd.DataFrame({
        metric: sep.scores, "ci_low": low, "ci_high": high, "tier": sep.tiers, "p_vs_best": sep.p_vs_best,
        "units": len(table), "tests": sep.tests, "method": str(sep.test), "min_p": sep.smallest_adjusted_p,
    }, index=pd.Index(table.columns, name="model"))
    return out.sort_values(metric, ascending=False, kind="stable")


def compare_pair(a: ResultFile, b: ResultFile, metric: str, n_resamples: int = 9999,
                 seed: int = 0) -> pd.DataFrame:
    """A vs B per setting: macro scores on the paired units, the difference, its bootstrap CI and the p-value of
    the setting's paired test (the same choice as in the report's significance tables)."""
    rows = {}
    for setting in (s for s in a.settings if s in b.settings):
        table = paired_units({"A": a, "B": b}, setting, metric)
        if table.empty:
            continue
        w = macro_weights(table.index)
        diff = (table["A"] - table["B"]).to_numpy()
        low, high = bootstrap_ci(diff, w, n_resamples=n_resamples, seed=seed)
        test = PairedTest.choose(w, len(table), n_resamples)
        rows[setting] = {"units": len(table), "A": float(np.dot(w, table["A"])), "B": float(np.dot(w, table["B"])),
                         "A-B": float(np.dot(w, diff)), "ci_low": low, "ci_high": high,
                         "p": float(test.pvalues(diff[:, None], w, seed)[0])}
    return pd.DataFrame.from_dict(rows, orient="index")


def language_differences(a: ResultFile, b: ResultFile, metric: str) -> pd.DataFrame:
    """A - B per query language (rows) and setting (columns), from the files' summaries."""
    def frame(r: ResultFile) -> pd.DataFrame:
        return pd.DataFrame({s: {lang: v.get(metric, np.nan) for lang, v in by_lang.items()}
                             for s, by_lang in r.summary.items()})

    diff = frame(a).sub(frame(b))
    return diff.reindex([*sorted(lang for lang in diff.index if lang != MACRO), MACRO])
