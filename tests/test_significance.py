"""Significance statistics: hand-checked exact cases, scipy as the reference, and the macro weighting checked
against the aggregates that `xbench run` stored."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from xbench.results import load
from xbench.significance import (bootstrap_ci, holm, macro_weights, paired_randomization_test, paired_units,
                                 significance_table, tiers, unit_scores)



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
