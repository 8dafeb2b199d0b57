"""The summary across tasks on a small data set worked out by hand: means over tasks only where a model has them
all, scores under a language selection, Borda points with ties, seeds averaged before ranking."""

from __future__ import annotations

import math

import pytest

from xbench.analysis.summary import RANK, Selection, borda, summarise, summary_table

TASKS = [{"name": "a", "family": "qa", "domain": "general", "langs": ["de", "en"], "settings": ["mono", "multi"]},
         {"name": "b", "family": "bitext", "domain": "news", "langs": ["en", "fr"], "settings": ["multi"]}]


def run(label: str, group: str, a: dict | None, b: dict | None) -> dict:
    scores, rd = {}, {}
    for name, values in (("a", a), ("b", b)):
        if values is not None:
            scores[name] = {s: v for s, v in values.items() if s != "rd"}
            rd[name] = values["rd"]
    return {"label": label, "group": group, "scores": scores, "rd": rd}


DATA = {"tasks": TASKS, "runs": [
    run("m-s0", "m", {"mono": {"de": 0.8, "en": 0.6, "macro": 0.7}, "multi": {"de": 0.5, "en": 0.3, "macro": 0.4},
                      "rd": {"de": 10.0, "en": 30.0, "macro": 20.0}},
        {"multi": {"en": 0.2, "fr": 0.4, "macro": 0.3}, "rd": {"en": 4.0, "fr": 6.0, "macro": 5.0}}),
    run("m-s1", "m", {"mono": {"de": 0.9, "en": 0.7, "macro": 0.8}, "multi": {"de": 0.5, "en": 0.5, "macro": 0.5},
                      "rd": {"de": 10.0, "en": 10.0, "macro": 10.0}},
        {"multi": {"en": 0.4, "fr": 0.4, "macro": 0.4}, "rd": {"en": 3.0, "fr": 3.0, "macro": 3.0}}),
    run("bm25", "bm25", {"mono": {"de": 0.9, "en": 0.9, "macro": 0.9}, "multi": {"de": 0.1, "en": 0.1, "macro": 0.1},
                         "rd": {"de": 50.0, "en": 50.0, "macro": 50.0}}, None),
]}


def test_means_over_every_selected_task_and_borda_ranks():
    frame, ranks = summarise(DATA)
    assert frame.loc["m-s0", "mono map"] == pytest.approx(0.7)  # only task a has mono
    assert frame.loc["m-s0", "multi map"] == pytest.approx((0.4 + 0.3) / 2)
    assert frame.loc["m-s1", "multi rank_distance"] == pytest.approx((10 + 3) / 2)
    assert math.isnan(frame.loc["bm25", "multi map"])  # no result on b: no mean (it would rank bm25 on a alone)
    assert frame.loc["bm25", "mono map"] == pytest.approx(0.9) and frame["tasks"].tolist() == [2, 2, 1]
    # voters (a, mono): m 0.75 vs bm25 0.9; (a, multi): m 0.45 vs 0.1; (b, multi): m alone
    # points: m = 0 + 1 + 0 = 1, bm25 = 1 + 0 = 1: a tie, both rank 1
    assert ranks == {"m": 1, "bm25": 1}


def test_a_language_selection_averages_the_selected_query_languages():
    frame, ranks = summarise(DATA, Selection(languages=frozenset({"de"})))  # task b has no de: left out
    assert frame.loc["m-s0", "multi map"] == pytest.approx(0.5) and frame.loc["m-s0", "mono map"] == pytest.approx(0.8)
    assert frame.loc["bm25", "multi map"] == pytest.approx(0.1) and frame["tasks"].tolist() == [1, 1, 1]
    # (a, mono): seeds 0.8, 0.9 -> m 0.85 below bm25's 0.9; (a, multi): m 0.5 above 0.1: a point each
    assert ranks == {"m": 1, "bm25": 1}


def test_family_domain_and_setting_selections():
    frame, ranks = summarise(DATA, Selection(families=frozenset({"bitext"}), settings=frozenset({"multi"})))
    assert list(frame.columns) == ["multi map", "multi rank_distance", "tasks"]
    assert frame.loc["m-s1", "multi map"] == pytest.approx(0.4) and math.isnan(frame.loc["bm25", "multi map"])
    assert ranks == {"m": 1}  # bm25 has no result there: not ranked
    frame, _ = summarise(DATA, Selection(domains=frozenset({"general"}), settings=frozenset({"mono"})))
    assert list(frame.columns) == ["mono map", "multi rank_distance", "tasks"]
    assert frame["multi rank_distance"].isna().all()  # multi is not selected


def test_borda_counts_half_a_point_per_tie():
    per_task = {"x": {("t", "mono"): 0.5, ("u", "mono"): 0.2}, "y": {("t", "mono"): 0.5, ("u", "mono"): 0.3},
                "z": {("t", "mono"): 0.1}}
    # t: x and y tie above z: 1.5 each, z 0; u: y 1, x 0 -> x 1.5, y 2.5, z 0
    assert borda(per_task) == {"y": 1, "x": 2, "z": 3}


def test_summary_table_folds_seeds_and_ranks_configurations():
    cards = {"m-s0": {"max_seq_length": 64}, "m-s1": {"max_seq_length": 64}, "bm25": {}}
    rows = summary_table(DATA, cards).rows()
    assert [r.label for r in rows] == ["m", "bm25"]
    m = {c.name: cell for c, cell in zip(summary_table(DATA, cards).columns, rows[0].cells)}
    assert m[RANK].text == "1" and m["max tokens"].text == "64"
    assert (m["multi map"].text, m["multi map"].sd) == ("0.400", "0.071")  # seeds 0.35, 0.45
    assert [r.label for r in rows[0].members] == ["m-s0", "m-s1"] and rows[0].members[0].cells[0].text == ""
