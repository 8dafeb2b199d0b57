"""xbench.scoring.bias on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np

from xbench.scoring.bias import first_hit_language, rank_distance, same_language_share
from xbench.scoring.metrics import pad_ranks


def test_rank_distance() -> None:
    ranks, grades = pad_ranks(
        [list(range(1, 12)), [3, 50, 7], [4], [2, math.inf, 9], [1, 5, 8], [math.inf, 6], []],
        [[1] * 11, [1, 1, 1], [1], [1, 1, 1], [1, 0, 1], [1, 1], []],
    )
    np.testing.assert_array_equal(
        rank_distance(ranks, grades),
        [10,  # 11 relevant at ranks 1..11
         47,  # 50 - 3
         np.nan,  # a single relevant: no spread
         7,  # the not-retrieved relevant is ignored
         7,  # the grade-0 candidate at rank 5 is not relevant, but 8 - 1 still is the spread
         np.nan,  # only one relevant was ranked
         np.nan],  # nothing at all
    )


def test_same_language_share_ignores_padding() -> None:
    top = np.array([["en", "de", "en", "fr"], ["de", "de", "", ""], ["en", "", "", ""], ["", "", "", ""]],
                   dtype=object)
    np.testing.assert_allclose(same_language_share(top, np.array(["en", "de", "fr", "en"], dtype=object)),
                               [2 / 4, 2 / 2, 0 / 1, np.nan])


def test_first_hit_language() -> None:
    ranks, grades, langs = pad_ranks(
        [[9, 4, 6], [math.inf, 3], [1, 2], [math.inf], []],
        [[1, 1, 1], [1, 1], [0, 2], [1], []],
        [["de", "fr", "en"], ["en", "de"], ["en", "fr"], ["en"], []],
    )
    assert first_hit_language(ranks, grades, langs).tolist() == ["fr", "de", "fr", "", ""]


def test_first_hit_language_without_any_relevant_column() -> None:
    ranks, grades, langs = pad_ranks([[], []], [[], []], [[], []])
    assert first_hit_language(ranks, grades, langs).tolist() == ["", ""]
