"""The significance cache: a table read back equals the computed one bit for bit; a second report, in any format,
computes no test and no bootstrap (spied on); another seed or other results miss; a damaged entry is recomputed."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from xbench.analysis import significance
from xbench.analysis.cache import SignificanceCache, content_hash
from xbench.analysis.render import render
from xbench.analysis.significance import significance_table
from xbench.results.store import collect, load


@pytest.fixture()
def spy(monkeypatch) -> dict[str, int]:
    """Counts of the two expensive computations behind every significance table."""
    calls = {"separate": 0, "bootstrap": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(significance, "separate", counting("separate", significance.separate))
    monkeypatch.setattr(significance, "bootstrap_cis", counting("bootstrap", significance.bootstrap_cis))
    return calls


def test_a_second_report_in_any_format_computes_nothing(report_dirs, tmp_path, spy):
    render(report_dirs, tmp_path / "index.md", fmt="md", n_resamples=300, cache_dir=tmp_path / "cache")
    assert spy == {"separate": 3, "bootstrap": 3}  # tiny: mono, cross, multi
    assert len(list((tmp_path / "cache" / "significance").glob("*.json"))) == 3
    for fmt, out in (("html", "index.html"), ("csv", "index.csv"), ("latex", "index.tex")):
        render(report_dirs, tmp_path / out, fmt=fmt, n_resamples=300, cache_dir=tmp_path / "cache")
    assert spy == {"separate": 3, "bootstrap": 3}
    render(report_dirs, tmp_path / "other.md", fmt="md", n_resamples=300, seed=1, cache_dir=tmp_path / "cache")
    assert spy == {"separate": 6, "bootstrap": 6}  # another seed: other resamples, computed


def test_tables_come_back_bit_for_bit_and_keys_follow_the_content(tiny_results, tmp_path):
    results = {r.model.name: r for r in collect([tiny_results / "results"])}
    cache = SignificanceCache(tmp_path)
    key = {"runs": sorted(content_hash(r) for r in results.values()), "setting": "cross"}
    computed = cache.table(key, lambda: significance_table(results, "cross", "map", n_resamples=300))
    again = SignificanceCache(tmp_path).table(key, lambda: pytest.fail("computed again"))
    pd.testing.assert_frame_equal(again, computed, check_exact=True)
    assert (cache.hits, cache.misses) == (0, 1)
    bm25 = load(tiny_results / "results" / "bm25" / "tiny.json")
    assert content_hash(bm25) == content_hash(results["bm25"])  # read twice: the same content
    bm25.run.command += " --force"
    assert content_hash(bm25) != content_hash(results["bm25"])


def test_a_damaged_entry_is_recomputed_and_an_unwritable_cache_only_costs_time(tmp_path, caplog):
    frame = pd.DataFrame({"p": [0.5]}, index=pd.Index(["a"], name="model"))
    cache = SignificanceCache(tmp_path)
    cache.table({"k": 1}, lambda: frame)
    entry = next((tmp_path / "significance").glob("*.json"))
    entry.write_text("{")
    with caplog.at_level(logging.WARNING):
        assert cache.table({"k": 1}, lambda: frame * 2)["p"].tolist() == [1.0]
    assert "damaged significance cache entry" in caplog.text
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with caplog.at_level(logging.WARNING):
        assert SignificanceCache(blocked).table({"k": 1}, lambda: frame)["p"].tolist() == [0.5]
    assert "significance cache not written" in caplog.text
