"""xbench.ragged: padded rows and their lengths, checked against rows written out by hand."""

from __future__ import annotations

import numpy as np

from xbench.ragged import Ragged, pad


def test_pad_fills_short_rows_and_keeps_strings_whole():
    assert pad([[3, 1], [2], []], -1).tolist() == [[3, 1], [2, -1], [-1, -1]]
    assert pad([np.array([5]), np.array([6, 7])], 0, np.float64).tolist() == [[5.0, 0.0], [6.0, 7.0]]
    assert pad([["de", "zh"], ["en"]], "").tolist() == [["de", "zh"], ["en", ""]]


def test_grouped_places_each_value_in_its_row_in_order():
    rows = Ragged.grouped(np.array([10, 11, 12, 13]), np.array([0, 0, 2, 2]), 4, fill=-1)
    assert rows.values.tolist() == [[10, 11], [-1, -1], [12, 13], [-1, -1]]
    assert rows.lengths.tolist() == [2, 0, 2, 0]
    assert [r.tolist() for r in rows.rows()] == [[10, 11], [], [12, 13], []]
    assert rows.valid.tolist() == [[True, True], [False, False], [True, True], [False, False]]


def test_rows_of_a_ragged_keep_their_width_and_lengths():
    rows = Ragged.of([[1, 2, 3], [4], [5, 6]])
    part = rows[1:]
    assert part.values.tolist() == [[4, 0, 0], [5, 6, 0]] and part.lengths.tolist() == [1, 2]
    assert rows[np.array([2, 0])].lengths.tolist() == [2, 3]
    assert rows.filled(-9).tolist() == [[1, 2, 3], [4, -9, -9], [5, 6, -9]]
    assert rows.like(rows.values * 10).rows()[2].tolist() == [50, 60]
