"""`xbench report` and `xbench compare` on results made by the real pipeline (bm25 and a tiny real
sentence-transformers model on the tiny task), plus a copy under a hostile model name."""

from __future__ import annotations

import base64
import re

import markupsafe
import numpy as np
import pandas as pd
import pytest
from helpers import BOARD, EVIL, doctored, html_tables, invoke
from scipy import stats

from xbench.analysis.report import render
from xbench.analysis.significance import macro_weights, paired_units, significance_table
from xbench.errors import XbenchError
from xbench.results.store import collect, load


@pytest.fixture(scope="module")
def page(report_dirs, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("report") / "index.html"
    assert render(report_dirs, out, n_resamples=500) == 3
    return out.read_text()


def test_leaderboard_values_and_per_language_tables(page, report_dirs):
    tables = html_tables(page)
    results = {r.model.name: r for r in collect(report_dirs)}
    board = tables["board-tiny"]
    assert list(board.columns) == BOARD
    assert sorted(board.index) == sorted(results)
    for name, r in results.items():
        for column in BOARD:
            setting, metric = column.split(" ")
            assert board.loc[name, column] == f"{r.summary[setting]['macro'][metric]:.3f}", (name, column)
    multi = [results[n].summary["multi"]["macro"]["map"] for n in board.index]
    assert multi == sorted(multi, reverse=True)  # best main score first
    for setting in ("mono", "cross", "multi"):
        langs = tables[f"lang-tiny-{setting}"]
        assert list(langs.columns) == ["de", "en", "fr"]  # from the data
        assert langs.loc["bm25", "fr"] == f"{results['bm25'].summary[setting]['fr']['map']:.3f}"


def test_significance_sections_and_tier_marks(page, report_dirs):
    tables = html_tables(page)
    results = {r.model.name: r for r in collect(report_dirs)}
    st = load(report_dirs[0] / "tiny-st" / "tiny.json").model.name  # a local model is named by its path
    marks = 0
    for setting in ("mono", "cross", "multi"):
        expected = significance_table(results, setting, "map", n_resamples=500)
        shown = tables[f"sig-tiny-{setting}"]
        assert list(shown.index) == list(expected.index)
        assert list(shown["tier"]) == [str(t) for t in expected["tier"]]
        assert shown.loc[EVIL, "map"] == shown.loc[st, "map"]  # the copy ties with its original
        marks += int((expected["tier"] == 1).sum())
    assert page.count('class="best"') == marks
    assert "(query, candidate language) pair; 8 units" in page
    # 3 models, 2 of them identical: 1 test. Exact sign flips reach p = 2/2^units: 2/2^8 in cross (8 units), but
    # 2/2^5 = 0.0625 >= alpha in mono and multi (5 queries), where the page must say that nothing can separate
    assert page.count("Tests: 1 (every pair") == 3 and "smallest adjusted p they can reach: 0.00781" in page
    assert page.count("smallest adjusted p they can reach: 0.0625") == 2
    assert page.count('<p class="warn">No model can be separated from another here') == 2


def test_plots_and_reproducibility_are_embedded(page, report_dirs):
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3 + 2  # a heatmap per model, rank-distance bars, same-language bars
    assert all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from anywhere
    for r in collect(report_dirs):
        assert str(markupsafe.escape(r.run.command)) in page
        assert r.data_sha256 in page and f"sentence-transformers {r.run.libraries['sentence-transformers']}" in page


def test_user_strings_are_escaped(page):
    assert page.count("<script") == 1  # the page's own sorting script, nothing from the data
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "<b>bold</b>" not in page
    assert EVIL in html_tables(page)["board-tiny"].index  # shown as text


def test_exports_same_tables(report_dirs, tmp_path):
    results = {r.model.name: r for r in collect(report_dirs)}
    dirs = [str(d) for d in report_dirs]
    for fmt in ("csv", "md", "latex"):
        res = invoke("report", *dirs, "--format", fmt, "--out", str(tmp_path / f"out.{fmt}"), "--resamples", "100")
        assert res.exit_code == 0, res.output
    long = pd.read_csv(tmp_path / "out.csv")
    board = long[long["table"] == "board-tiny"].set_index(["row", "column"])["value"].astype(float)
    for name, r in results.items():
        assert board[(name, "multi map")] == pytest.approx(r.summary["multi"]["macro"]["map"], rel=1e-12)
    md = (tmp_path / "out.md").read_text()
    assert "## tiny: leaderboard" in md and "&lt;script&gt;alert(1)&lt;/script&gt;\\|$x_1$" in md
    bm25 = next(line for line in md.splitlines() if line.startswith("| bm25 "))
    assert f"{results['bm25'].summary['mono']['macro']['map']:.4g}" in bm25
    latex = (tmp_path / "out.latex").read_text()
    assert latex.count(r"\begin{tabular}") == 1 + 3 + 3 and r"\$x\_1\$" in latex
    assert md.count("**Warning:** No model can be separated") == 2 == latex.count("Warning: No model can be separated")


def test_collect_errors(report_dirs, tmp_path):
    with pytest.raises(XbenchError, match="results folder not found"):
        collect([tmp_path / "nowhere"])
    with pytest.raises(XbenchError, match="two results files hold model 'bm25' on task 'tiny'"):
        render([report_dirs[0], report_dirs[0]], tmp_path / "x.html")


def test_a_full_run_and_its_language_subsets_are_rows_of_their_own(tiny_results, tmp_path):
    full = tiny_results / "results" / "bm25" / "tiny.json"

    def on(*langs: str):
        def edit(raw: dict) -> None:  # the report reads summaries and the recorded languages; it does not validate
            raw["task"]["languages"] = list(langs)
            raw["summary"]["mono"]["macro"]["map"] = 0.1 * len(langs)
        return edit

    folder = tmp_path / "r"
    doctored(full, folder / "bm25" / "tiny.json", lambda raw: None)
    doctored(full, folder / "bm25" / "tiny.en+de.json", on("en", "de"))
    doctored(full, folder / "bm25" / "tiny.de.json", on("de"))
    out = tmp_path / "index.html"
    render([folder], out, n_resamples=100)
    board = html_tables(out.read_text())["board-tiny"]
    assert sorted(board.index) == ["bm25", "bm25 (de)", "bm25 (en+de)"]  # collect's order: equal main scores
    assert board.loc["bm25 (de)", "mono map"] == "0.100"
    assert "bm25 (de) on de only; bm25 (en+de) on en, de only (of de, en, fr)" in out.read_text()
    # two subsets, the full run from another model: each subset is labelled; the same languages twice is ambiguous
    (folder / "bm25" / "tiny.json").unlink()
    render([folder, tiny_results / "results" / "tiny-st"], out, n_resamples=100)
    st = load(tiny_results / "results" / "tiny-st" / "tiny.json").model.name
    assert sorted(html_tables(out.read_text())["board-tiny"].index) == sorted(["bm25 (de)", "bm25 (en+de)", st])
    doctored(full, tmp_path / "s" / "bm25" / "tiny.de.json", on("de"))
    with pytest.raises(XbenchError, match="two results files hold model 'bm25' on task 'tiny'"):
        render([folder, tmp_path / "s"], out)


def test_robustness_section_only_when_domain_results_exist(tiny_results, tmp_path):
    render([tiny_results / "results"], tmp_path / "plain.html", n_resamples=100)
    assert "robustness" not in html_tables((tmp_path / "plain.html").read_text())

    def sport(raw: dict) -> None:  # the same rankings as a "sport" split of tiny: no drop
        raw["task"].update(name="tiny-sport", domain="sport", general="tiny")
        raw["summary"]["multi"]["macro"]["map"] -= 0.25  # the report reads summaries; it does not validate

    doctored(tiny_results / "results" / "bm25" / "tiny.json", tmp_path / "d" / "bm25" / "tiny-sport.json", sport)
    out = tmp_path / "index.html"
    render([tiny_results / "results", tmp_path / "d"], out, n_resamples=100)
    table = html_tables(out.read_text())["robustness"]
    assert list(table.index) == ["bm25"]
    assert (table.loc["bm25", "domain"], table.loc["bm25", "drop"]) == ("sport", "0.250")


def test_compare_prints_paired_tests_and_language_differences(tiny_results):
    res = invoke("compare", "bm25", str(tiny_results / "results" / "tiny-st" / "tiny.json"), "--task", "tiny",
                 "--results-dir", str(tiny_results / "results"))
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
