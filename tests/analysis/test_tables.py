"""Tables apart from their format: fixed decimals per column kind, and the seeds of a configuration folded into one
row (mean ± sd, ranges, values only a configuration has), checked against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from xbench.analysis.tables import KINDS, Column, Table, write


@pytest.mark.parametrize("value, kind, text", [
    (0.51260436, "score", "0.513"),
    (13226.0, "rank_distance", "13226.0"),     # no 1.323e+04
    (1.5e-7, "score", "0.000"),                # no 1.5e-07
    (-0.0001, "score", "0.000"),               # no -0.000
    (-0.25, "drop", "-0.250"),
    (3e-300, "p", "<0.0001"),                  # a p-value too small for the column's decimals
    (0.012345, "p", "0.0123"),
    (np.int64(2), "tier", "2"),
    (np.float64(2.0), "tier", "2"),
    (math.nan, "score", ""),                   # each format writes its own dash
    (None, "rank", ""),
    ("sports", "group_text", "sports"),
])
def test_values_are_written_with_their_columns_fixed_decimals(value, kind, text):
    assert write(value, KINDS[kind]) == text


def _table(**options) -> Table:
    frame = pd.DataFrame({"map": [0.5, 0.7, 0.4, math.nan], "tier": [1, 2, 3, 1], "p": [math.nan, 0.02, 0.001, 1.0],
                          "ci": [0.45, 0.6, 0.3, 0.2], "units": [10, 10, 10, 12]},
                         index=pd.Index(["cfg-s0", "cfg-s1", "base", "empty"], name="model"))
    columns = [Column("map"), Column("tier", "tier"), Column("p", "p"), Column("ci", "interval"),
               Column("units", "count")]
    return Table("t", "a table", frame, columns, groups={"cfg": ["cfg-s0", "cfg-s1"]}, **options)


def test_seeds_fold_into_mean_sd_ranges_and_dashes():
    rows = _table(marks={("cfg-s0", "tier"), ("cfg-s1", "tier"), ("base", "map"), ("empty", "tier")}).rows()
    assert [r.label for r in rows] == ["cfg", "base", "empty"]  # the frame's order of each group's first run
    cfg = rows[0]
    assert [r.label for r in cfg.members] == ["cfg-s0", "cfg-s1"] and cfg.runs == ["cfg-s0", "cfg-s1"]
    texts = [(c.text, c.sd) for c in cfg.cells]
    # mean 0.6, sd sqrt(((0.5-0.6)^2 + (0.7-0.6)^2) / 1) = 0.1414; tiers and p-values as ranges (the best's p is
    # missing); no interval for a folded row; units the same for both: one number
    assert texts == [("0.600", "0.141"), ("1–2", ""), ("0.0200", ""), ("", ""), ("10", "")]
    assert cfg.cells[0].sort == pytest.approx(0.6) and cfg.cells[1].sort == 1.0
    assert cfg.cells[1].marked and not cfg.cells[0].marked  # marked only where every seed is
    assert [c.text for c in cfg.members[1].cells] == ["0.700", "2", "0.0200", "0.600", "10"]
    base, empty = rows[1], rows[2]
    assert base.members == [] and base.cells[0].marked and base.cells[0].sd == ""
    assert empty.cells[0].text == "" and empty.cells[0].sort is None


def test_rows_order_best_first_with_missing_last_and_lower_is_better():
    assert [r.label for r in _table(order_by="map").rows()] == ["cfg", "base", "empty"]  # 0.6, 0.4, missing
    assert [r.label for r in _table(order_by="tier").rows()] == ["cfg", "empty", "base"]  # 1 (1-2), 1, 3


def test_values_only_a_configuration_has_and_drop_tones():
    frame = pd.DataFrame({"a": [0.2, -0.1, 0.05], "worst": [math.nan] * 3},
                         index=pd.Index(["x-s0", "x-s1", "y"], name="model"))
    table = Table("r", "robustness", frame, [Column("a", "drop"), Column("worst", "group_text")],
                  groups={"x": ["x-s0", "x-s1"], "y": ["y"]}, group_values={("x", "worst"): "a", ("y", "worst"): "b"})
    x, y = table.rows()
    assert (x.cells[1].text, y.cells[1].text) == ("a", "b")
    assert [m.cells[1].text for m in x.members] == ["", ""]  # the configuration's, not a seed's
    # tones relative to the largest drop of the table (0.2): mean 0.05 -> 0.25, seeds 1 and -0.5, y 0.25
    assert (x.cells[0].tone, y.cells[0].tone) == (pytest.approx(0.25), pytest.approx(0.25))
    assert [m.cells[0].tone for m in x.members] == [pytest.approx(1.0), pytest.approx(-0.5)]


def test_columns_must_match_the_frame():
    with pytest.raises(ValueError, match="frame columns"):
        Table("t", "t", pd.DataFrame({"a": [1.0]}), [Column("b")])
