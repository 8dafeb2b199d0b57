"""Significance statistics: hand-checked exact cases, scipy as the reference, the macro weighting checked
against the aggregates that `xbench run` stored, the error rate under a null simulated here, and the committed
16-model grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from xbench.analysis.significance import (
    EXACT,
    MONTE_CARLO,
    T_TEST,
    PairedTest,
    _distinct_columns,
    bootstrap_ci,
    holm,
    macro_weights,
    paired_randomization_test,
    paired_units,
    separate,
    significance_table,
    tiers,
    unit_scores,
    weighted_t_test,
)
from xbench.results.store import load

GRID = Path(__file__).resolve().parents[2] / "experiments" / "results" / "paper-cpu" / "results"


@pytest.mark.parametrize("diffs, expected", [
    ([1, 2, 3, 4], 2 / 16),   # only all-plus and all-minus reach |sum| >= 10
    ([1, 1, 2, -1], 8 / 16),  # sum 3; the three +-1 units give 3,1,-1,-3 in 1,3,3,1 ways; +-2: |S| >= 3 in 8
    ([0.5, -0.5], 1.0),       # observed 0: every sign vector is as extreme
])
def test_exact_sign_flip_by_hand(diffs, expected):
    b = np.zeros(len(diffs))
    assert paired_randomization_test(np.array(diffs, dtype=float), b) == pytest.approx(expected, abs=1e-12)


def _scipy_p(a, b, w, n_resamples, seed=0):
    res = stats.permutation_test((a, b), lambda x, y, axis: np.sum(w * (x - y), axis=axis),
                                 permutation_type="samples", n_resamples=n_resamples, vectorized=True, rng=seed)
    return res.pvalue


def test_exact_test_equals_scipy_with_weights():
    rng = np.random.default_rng(1)
    a, b = rng.random(10), rng.random(10)
    w = rng.integers(1, 4, size=10).astype(float)
    ours = paired_randomization_test(a, b, w, n_resamples=9999)  # 2^10 = 1024 <= 9999: exact in both
    assert ours == pytest.approx(_scipy_p(a, b, w / w.sum(), 9999), abs=1e-12)


def test_monte_carlo_test_agrees_with_scipy():
    rng = np.random.default_rng(2)
    a = rng.random(300)
    b = a - 0.005 + rng.normal(0, 0.2, 300)  # a small effect: p around 0.1 (paired t-test: 0.091)
    ours = paired_randomization_test(a, b, n_resamples=9999, seed=3)
    reference = _scipy_p(a, b, np.full(300, 1 / 300), 9999)
    assert 0.01 < reference < 0.5
    assert ours == pytest.approx(reference, abs=0.015)  # ~3.5 Monte Carlo standard errors of the difference
    assert paired_randomization_test(a, b, n_resamples=9999, seed=3) == ours  # seeded


@pytest.mark.parametrize("weighted", [False, True])
def test_bootstrap_ci_agrees_with_scipy(weighted):
    rng = np.random.default_rng(4)
    x = rng.random(400)
    w = rng.integers(1, 5, size=400).astype(float) if weighted else np.ones(400)
    low, high = bootstrap_ci(x, w if weighted else None, n_resamples=9999, seed=5)
    ref = stats.bootstrap((x, w), lambda x, w, axis: np.sum(x * w, axis=axis) / np.sum(w, axis=axis), paired=True,
                          vectorized=True, method="percentile", n_resamples=9999, rng=6).confidence_interval
    width = ref.high - ref.low
    assert low == pytest.approx(ref.low, abs=0.05 * width) and high == pytest.approx(ref.high, abs=0.05 * width)
    mean = np.sum(x * w) / np.sum(w)
    assert low < mean < high


def test_holm_by_hand():
    # sorted 0.01 x4 = 0.04; 0.03 x3 = 0.09; 0.04 x2 = 0.08 -> raised to 0.09 (monotone); 0.2 x1 = 0.2
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_tiers_by_hand():
    p = np.ones((4, 4))
    for (i, j), v in {(0, 1): 0.3, (0, 2): 0.001, (0, 3): 0.001, (1, 2): 0.01, (1, 3): 0.01, (2, 3): 0.5}.items():
        p[i, j] = p[j, i] = v
    assert tiers([0.9, 0.85, 0.6, 0.58], p) == [1, 1, 2, 2]
    assert tiers([0.58, 0.6, 0.85, 0.9], p[::-1, ::-1]) == [2, 2, 1, 1]  # order of the input does not matter
    # model 2 is not separable from the best (a noisy one), model 1 is: 2 stays in tier 1, below 1 in score
    p[0, 1] = p[1, 0] = 0.001
    p[0, 2] = p[2, 0] = 0.3
    p[1, 3] = p[3, 1] = 0.5
    assert tiers([0.9, 0.85, 0.6, 0.58], p) == [1, 2, 1, 2]


def test_macro_weights_reproduce_the_stored_macro_scores(tiny_results):
    for path in (tiny_results / "results").rglob("*.json"):
        result = load(path)
        for setting in result.settings:
            units = unit_scores(result, setting, "map")
            assert np.dot(macro_weights(units.index), units) == pytest.approx(result.summary[setting]["macro"]["map"])
    cross = unit_scores(result, "cross", "map")
    assert len(cross) == 8  # q1 in en/de/fr: 6 ordered pairs; q2 in en/de: 2 more


def test_significance_table_on_real_runs_matches_scipy(tiny_results):
    results = {load(p).model.name: load(p) for p in (tiny_results / "results").rglob("*.json")}
    for setting in ("mono", "cross", "multi"):
        table = significance_table(results, setting, "map", n_resamples=2000)
        units = paired_units(results, setting, "map")
        w = macro_weights(units.index)
        best, other = table.index
        # two models: one comparison, so Holm leaves it alone; 5 or 8 units: exact in both implementations
        assert table.loc[other, "p_vs_best"] == pytest.approx(_scipy_p(units[best], units[other], w, 2000))
        assert table.loc[best, "tier"] == 1
        assert table.loc[other, "tier"] == (2 if table.loc[other, "p_vs_best"] < 0.05 else 1)
        assert table.loc[best, "map"] == pytest.approx(results[best].summary[setting]["macro"]["map"])


def test_weighted_t_test_with_equal_weights_is_scipys_paired_t_test():
    rng = np.random.default_rng(7)
    a = rng.random((200, 3))
    b = a - 0.02 + rng.normal(0, 0.15, (200, 3))
    expected = stats.ttest_rel(a, b).pvalue  # per column
    assert expected.min() > 1e-4 and expected.max() < 0.9
    assert weighted_t_test(a - b) == pytest.approx(expected, rel=1e-9)
    assert weighted_t_test(a[:, 0] - b[:, 0], np.full(200, 3.0)) == pytest.approx(expected[0], rel=1e-9)
    assert weighted_t_test(np.zeros(40)) == 1.0 and weighted_t_test(np.full(40, 0.1)) == 0.0


def test_weighted_t_test_by_hand():
    d, w = np.array([1.0, 2, 3, 6]), np.array([1.0, 1, 2, 4])
    # normalised weights 1/8, 1/8, 1/4, 1/2: mean 0.125 + 0.25 + 0.75 + 3 = 4.125; residuals -3.125, -2.125,
    # -1.125, 1.875; sum w^2 r^2 = (9.765625 + 4.515625 + 4 * 1.265625 + 16 * 3.515625) / 64 = 75.59375 / 64;
    # variance x n/(n-1) = 4/3; Kish n_eff = 64 / (1 + 1 + 4 + 16) = 64/22, so df = 42/22
    t = 4.125 / np.sqrt(4 / 3 * 75.59375 / 64)
    assert t == pytest.approx(3.28701, abs=1e-5)
    assert weighted_t_test(d, w) == pytest.approx(2 * stats.t.sf(t, 42 / 22), rel=1e-12)
    assert weighted_t_test(d, 5 * w) == pytest.approx(weighted_t_test(d, w), rel=1e-12)  # only shares matter


def test_weighted_variance_is_the_bootstraps_not_a_pooled_one():
    # three query languages of 100, 400 and 1600 queries, macro-weighted; the small language is the noisy one
    sizes, spreads = [100, 400, 1600], [0.6, 0.2, 0.05]
    rng = np.random.default_rng(8)
    d = np.concatenate([rng.normal(0.02, s, n) for n, s in zip(sizes, spreads)])
    w = np.concatenate([np.full(n, 1 / (3 * n)) for n in sizes])
    se = stats.bootstrap((d, w), lambda d, w, axis: np.sum(d * w, axis=axis) / np.sum(w, axis=axis), paired=True,
                         vectorized=True, n_resamples=3000, rng=9).standard_error
    mean, df = np.dot(w, d), 1 / np.sum(w ** 2) - 1
    assert stats.t.isf(weighted_t_test(d, w) / 2, df) == pytest.approx(abs(mean) / se, rel=0.05)
    pooled = np.sqrt(np.dot(w, (d - mean) ** 2) * np.sum(w ** 2))  # weighted variance / Kish n_eff
    assert pooled < 0.8 * se  # would overstate significance: it ignores which units carry the weight


def test_test_choice_and_its_p_value_floor():
    assert PairedTest.choose(None, 30, 2000).kind == T_TEST
    assert PairedTest.choose(None, 29, 2000).kind == MONTE_CARLO  # 2^29 sign vectors > 2000
    assert PairedTest.choose(None, 10, 2000).kind == EXACT  # 1024 sign vectors
    skewed = np.r_[np.full(20, 1.0), np.full(80, 0.01)]  # 100 units, Kish n_eff = 1.8^2 / 20.008 = 16.2
    assert PairedTest.choose(skewed, 100, 2000).kind == MONTE_CARLO
    assert PairedTest.choose(None, 10, 2000).smallest_p == 2 / 1024
    assert PairedTest.choose(None, 29, 2000).smallest_p == 1 / 2001
    assert PairedTest.choose(None, 30, 2000).smallest_p == 0


def _pairwise_holm_by_scipy(x: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(x.shape[1], 1)
    adjusted = np.ones((x.shape[1],) * 2)
    adjusted[i, j] = adjusted[j, i] = holm(stats.ttest_rel(x[:, i], x[:, j]).pvalue)
    return adjusted


def test_separate_16_models_over_5000_units():
    rng = np.random.default_rng(10)
    base = rng.random(5000)
    x = base[:, None] + 0.01 * np.arange(16) + rng.normal(0, 0.1, (5000, 16))
    sep = separate(np.column_stack([x, x[:, 7]]))  # model 16 is a copy of model 7
    assert sep.test.kind == T_TEST and sep.tests == 16 * 15 // 2  # the copy adds no test
    assert sep.tiers[15] == 1 and sep.tiers[0] > 1 and sep.tiers[16] == sep.tiers[7]
    assert np.all(np.diff(sep.tiers[:16]) <= 0)  # 0.01 apart: tiers follow the ranking here
    expected = _pairwise_holm_by_scipy(x)[15]  # equal weights: scipy's paired t-test, Holm over the 120 pairs
    expected[15] = np.nan
    assert sep.p_vs_best == pytest.approx(np.r_[expected, expected[7]], rel=1e-9, nan_ok=True)
    assert sep.scores[:16] == pytest.approx(x.mean(axis=0), rel=1e-12) and sep.scores[16] == sep.scores[7]


def test_no_false_separation_under_the_null():
    """16 exchangeable models (reciprocal ranks drawn alike), macro weights over 3 languages: separating any model
    must happen in at most alpha of the seeds, up to Monte Carlo error. Testing only the observed best against
    the rest (m - 1 tests) does not: the best is selected from the same data."""
    sizes, alpha, n_seeds = [50, 100, 150], 0.05, 200
    w = np.concatenate([np.full(n, 1 / (3 * n)) for n in sizes])
    false, naive = 0, 0
    for seed in range(n_seeds):
        rng = np.random.default_rng(seed)
        hit = rng.uniform(0.2, 0.9, size=(len(w), 1))  # per-unit difficulty, shared by all models
        x = 1 / rng.geometric(hit, size=(len(w), 16))
        sep = separate(x, w, alpha)
        false += max(sep.tiers) > 1 or np.nanmin(sep.p_vs_best) < alpha
        best = int(np.argmax(w @ x))
        naive += holm(weighted_t_test(x[:, [best]] - np.delete(x, best, axis=1), w)).min() < alpha
    bound = alpha + 3 * np.sqrt(alpha * (1 - alpha) / n_seeds)
    assert false / n_seeds <= bound
    assert naive / n_seeds > bound


def _grid(task: str) -> dict:
    return {r.model.name: r for r in map(load, sorted(GRID.glob(f"*/{task}.json")))}


@pytest.mark.parametrize("task", ["mlqa-r", "xquad-r"])
def test_untuned_base_is_separated_on_the_committed_grid(task):
    results = _grid(task)
    assert len(results) == 16
    table = significance_table(results, "multi", "map")
    assert table["method"].iloc[0].startswith("paired t-test") and table["tests"].iloc[0] == 120
    assert table.loc["me5-small", "tier"] > 1 and table.loc["me5-small", "p_vs_best"] < 0.05
    units = paired_units(results, "multi", "map")
    w = macro_weights(units.index)
    raw = weighted_t_test(units[table.index[0]] - units["me5-small"], w)
    assert table.loc["me5-small", "p_vs_best"] <= min(1, 120 * raw * (1 + 1e-9))  # Holm never exceeds Bonferroni


def _sign_flip_one_pair(d: np.ndarray, w: np.ndarray, n_resamples: int, seed: int) -> float:
    """The sign-flip test as xbench ran it before the resampling was shared by all pairs: one pair at a time, each
    drawing its own sign matrix from a fresh stream."""
    v = w * d
    observed = abs(v.sum())
    threshold = observed * (1 - 1e-9)
    if len(d) < 63 and 2 ** len(d) <= n_resamples:
        every = (np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1
        return float(np.mean(np.abs(v.sum() - 2 * every @ v) >= threshold))
    rng = np.random.default_rng(seed)
    hits = 0
    step = max(1, 4_000_000 // len(d))
    for start in range(0, n_resamples, step):
        rows = min(step, n_resamples - start)
        flips = np.unpackbits(rng.integers(0, 256, size=(rows, (len(d) + 7) // 8), dtype=np.uint8), axis=1,
                              count=len(d))
        hits += int(np.sum(np.abs(v.sum() - 2 * (flips @ v)) >= threshold))
    return (hits + 1) / (n_resamples + 1)


@pytest.mark.parametrize("units, n_resamples", [(8, 2000), (12, 999), (40, 2000), (25, 9999)])
def test_shared_resampling_gives_the_p_values_of_one_test_per_pair_bit_for_bit(units, n_resamples):
    rng = np.random.default_rng(units)
    x = np.round(rng.random((units, 7)) * 3) / 3  # few distinct values: ties and sums that cancel to rounding
    x[:, 6] = x[:, 5]  # a pair with every difference 0
    w = rng.integers(1, 5, units).astype(float)
    i, j = np.triu_indices(7, 1)
    diffs = x[:, i] - x[:, j]
    kind = EXACT if 2 ** units <= n_resamples else MONTE_CARLO
    shared = PairedTest(kind, units, units, n_resamples).pvalues(diffs, w, seed=11)
    one_by_one = [_sign_flip_one_pair(d, w / w.sum(), n_resamples, 11) for d in diffs.T]
    assert shared.tolist() == one_by_one


def test_distinct_columns_are_numpys():
    rng = np.random.default_rng(12)
    for _ in range(200):
        x = np.round(rng.random((int(rng.integers(1, 40)), 9)) * 2) / 2
        x[:, rng.integers(0, 9, 4)] = x[:, rng.integers(0, 9, 4)]
        x[0, 0] = -0.0  # equal to 0.0 as a number
        distinct, model_of = np.unique(x, axis=1, return_inverse=True)
        ours, ours_of = _distinct_columns(x)
        assert np.array_equal(ours, distinct) and np.array_equal(ours_of, model_of.ravel())
