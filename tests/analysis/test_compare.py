"""`xbench compare`: the paired test against scipy's exact permutation test, per-language differences, JSON, and a
second compare answered from the significance cache."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import invoke
from scipy import stats

from xbench.analysis import compare as compare_module
from xbench.analysis.significance import macro_weights, paired_units
from xbench.results.store import load


def _args(tiny_results, tmp_path, *extra: str) -> list[str]:
    return ["compare", "bm25", str(tiny_results / "results" / "tiny-st" / "tiny.json"), "--task", "tiny",
            "--results-dir", str(tiny_results / "results"), "--cache-dir", str(tmp_path / "cache"), *extra]


def test_compare_prints_paired_tests_and_language_differences(tiny_results, tmp_path):
    res = invoke(*_args(tiny_results, tmp_path))
    assert res.exit_code == 0, res.output
    a, b = (load(tiny_results / "results" / m / "tiny.json") for m in ("bm25", "tiny-st"))
    rows = {line.split()[0]: line.split() for line in res.output.splitlines() if len(line.split()) == 8}
    assert sorted(rows) == ["cross", "mono", "multi"]
    for setting, (_, units, sa, _sb, diff, low, high, p) in rows.items():
        table = paired_units({"a": a, "b": b}, setting, "map")
        w = macro_weights(table.index)
        # rounded statistic: T and its mirror -T must tie exactly in scipy, as they do (by tolerance) in xbench
        exact = stats.permutation_test((table["a"], table["b"]),
                                       lambda x, y, axis, w=w: np.round(np.sum(w * (x - y), axis=axis), 12),
                                       permutation_type="samples", vectorized=True).pvalue
        assert float(p) == pytest.approx(exact, abs=5e-5)
        assert float(sa) == pytest.approx(a.summary[setting]["macro"]["map"], abs=5e-5)
        assert float(low) <= float(diff) <= float(high) and int(units) == len(table)
    assert "A - B map per query language" in res.output and re.search(r"^fr\s", res.output, re.M)

    missing = invoke("compare", "bm25", "nosuch", "--task", "tiny", "--results-dir", str(tiny_results / "results"))
    assert missing.exit_code == 2 and "models there: bm25, tiny-st" in missing.output


def test_a_second_compare_is_read_from_the_cache_and_json_says_the_same(tiny_results, tmp_path, monkeypatch):
    first = invoke(*_args(tiny_results, tmp_path, "--json"))
    assert first.exit_code == 0, first.output

    def computed(*args, **kwargs):
        raise AssertionError("the paired tests were computed again")

    monkeypatch.setattr(compare_module, "compare_pair", computed)
    again = invoke(*_args(tiny_results, tmp_path, "--json"))
    text = invoke(*_args(tiny_results, tmp_path))
    assert again.exit_code == 0 and again.output == first.output
    data = json.loads(again.output)
    assert (data["task"], data["metric"], data["a"]["model"], data["resamples"]) == ("tiny", "map", "bm25", 9999)
    for setting, values in data["settings"].items():
        row = next(line.split() for line in text.output.splitlines() if line.startswith(setting + " "))
        assert f"{values['A-B']:.5f}" == row[4] and values["units"] == int(row[1])
    a, b = (load(tiny_results / "results" / m / "tiny.json") for m in ("bm25", "tiny-st"))
    assert data["languages"]["fr"]["mono"] == pytest.approx(a.summary["mono"]["fr"]["map"]
                                                            - b.summary["mono"]["fr"]["map"])
