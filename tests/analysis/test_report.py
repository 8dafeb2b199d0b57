"""`xbench report` on results made by the real pipeline (bm25 and a tiny real sentence-transformers model on the tiny
task), a copy under a hostile model name, and (seeded_dirs) a configuration trained with two seeds plus a domain
split: the page's tables against the results files, folded seeds, robustness in wide form, the exports and outputs."""

from __future__ import annotations

import re

import markupsafe
import pandas as pd
import pytest
from helpers import BOARD, EVIL, doctored, html_tables, invoke

from xbench.analysis.cards import METHOD_LINKS
from xbench.analysis.render import render
from xbench.analysis.report import build, read
from xbench.analysis.significance import significance_table
from xbench.analysis.summary import summarise
from xbench.errors import XbenchError
from xbench.results.store import collect, load


def shown(page: str) -> dict[str, pd.DataFrame]:
    """The page's tables as strings, run details rows (one full-width cell) left out."""
    return html_tables(re.sub(r'<tr class="details".*?</tr>', "", page, flags=re.S))


def table_html(page: str, table_id: str) -> str:
    return re.search(rf'<table id="{re.escape(table_id)}".*?</table>', page, re.S).group()


@pytest.fixture(scope="module")
def page(report_dirs, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("report")
    assert render(report_dirs, folder / "index.html", n_resamples=500, cache_dir=folder / "cache") == 3
    return (folder / "index.html").read_text()


@pytest.fixture(scope="module")
def seeded_page(seeded_dirs, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("seeded")
    render(seeded_dirs, folder / "index.html", n_resamples=300, cache_dir=folder / "cache")
    return (folder / "index.html").read_text()


def test_leaderboard_values_and_per_language_tables(page, report_dirs):
    tables = shown(page)
    results = {r.model.name: r for r in collect(report_dirs)}
    board = tables["board-tiny"]
    assert list(board.columns) == BOARD
    assert sorted(board.index) == sorted(results)
    for name, r in results.items():
        for column in BOARD:
            setting, metric = column.split(" ")
            decimals = 1 if metric == "rank_distance" else 3
            assert board.loc[name, column] == f"{r.summary[setting]['macro'][metric]:.{decimals}f}", (name, column)
    multi = [results[n].summary["multi"]["macro"]["map"] for n in board.index]
    assert multi == sorted(multi, reverse=True)  # best main score first
    for setting in ("mono", "cross", "multi"):
        langs = tables[f"lang-tiny-{setting}"]
        assert list(langs.columns) == ["de", "en", "fr"]  # from the data
        assert langs.loc["bm25", "fr"] == f"{results['bm25'].summary[setting]['fr']['map']:.3f}"


def test_significance_sections_and_tier_marks(page, report_dirs):
    tables = shown(page)
    results = {r.model.name: r for r in collect(report_dirs)}
    st = load(report_dirs[0] / "tiny-st" / "tiny.json").model.name  # a local model is named by its path
    marks = 0
    for setting in ("mono", "cross", "multi"):
        expected = significance_table(results, setting, "map", n_resamples=500)
        table = tables[f"sig-tiny-{setting}"]
        assert list(table.index) == list(expected.index)
        assert list(table["tier"]) == [str(t) for t in expected["tier"]]
        for label in expected.index:
            assert table.loc[label, "95% CI low"] == f"{expected.loc[label, 'ci_low']:.3f}"
        assert table.loc[EVIL, "map"] == table.loc[st, "map"]  # the copy ties with its original
        marks += int((expected["tier"] == 1).sum())
    assert table_html(page, "board-tiny").count('class="best"') == marks
    assert "(query, candidate language) pair; 8 units" in page
    # 3 models, 2 of them identical: 1 test. Exact sign flips reach p = 2/2^units: 2/2^8 in cross (8 units), but
    # 2/2^5 = 0.0625 >= alpha in mono and multi (5 queries), where the page must say that nothing can separate
    assert page.count("Tests: 1 (every pair") == 3 and "smallest adjusted p they can reach: 0.00781" in page
    assert page.count("smallest adjusted p they can reach: 0.0625") == 2
    assert page.count('<p class="warn">No model can be separated from another here') == 2


def test_plots_are_inline_svg_and_the_page_loads_nothing(page):
    assert page.count("<svg ") == 3 + 2  # a heatmap per model, rank-distance bars, same-language bars
    assert not re.search(r"<(img|link|iframe|object|embed)\b|<[^>]*\ssrc=", page)  # no element loads anything
    links = re.findall(r'href="([^"]*)"', page)
    external = [link for link in links if not link.startswith("#")]
    assert external and all(link.startswith("https://") for link in external)  # citations, model pages: links only
    assert set(METHOD_LINKS.values()) <= set(external)  # the LAReQA paper and its data


def test_run_details_and_copy_buttons_reproduce_every_row(page, report_dirs):
    for r in collect(report_dirs):
        command = str(markupsafe.escape(r.run.command))
        assert f'data-copy="{command}"' in page and f"<code>{command}</code>" in page
        assert r.data_sha256 in page and f"sentence-transformers {r.run.libraries['sentence-transformers']}" in page
    details = re.findall(r'<tr class="details" hidden><td colspan="(\d+)">', table_html(page, "board-tiny"))
    assert details == [str(len(BOARD) + 1)] * 3  # a full-width row per model


def test_user_strings_are_escaped(page):
    assert page.count("<script") == 2  # the page's script and its summary data, nothing from the data
    data = re.search(r'<script type="application/json" id="xb-summary">(.*?)</script>', page, re.S).group(1)
    assert "<" not in data and "\\u003cscript\\u003e" in data  # no string can close the block
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "<b>bold</b>" not in page
    assert EVIL in shown(page)["board-tiny"].index  # shown as text


def test_seeds_fold_into_one_row_with_mean_and_sd(seeded_page, seeded_dirs):
    board = shown(seeded_page)["board-tiny"]
    seeds = {r.model.name: r for r in collect(seeded_dirs) if r.model.name.startswith("hybrid")
             and r.task.name == "tiny"}
    assert [x for x in board.index if "hybrid" in x] == ["hybrid-a0.5", "hybrid-a0.5-s0", "hybrid-a0.5-s1"]
    values = [seeds[f"hybrid-a0.5-s{s}"].summary["multi"]["macro"]["map"] for s in (0, 1)]
    mean, sd = sum(values) / 2, abs(values[0] - values[1]) / 2 ** 0.5  # sample sd of two
    assert board.loc["hybrid-a0.5", "multi map"] == f"{mean:.3f} ± {sd:.3f}"
    assert board.loc["hybrid-a0.5-s1", "multi map"] == f"{values[1]:.3f}"
    assert '<button type="button" class="fold" aria-expanded="false">2 seeds</button>' in seeded_page
    # per task (tiny, tiny.sport): the leaderboard, 3 significance and 3 per-language tables; the summary; robustness
    assert len(re.findall(r'<tr class="member"[^>]*hidden><td class="l">hybrid-a0.5-s0</td>', seeded_page)) == 2 * 7 + 2


def test_robustness_is_models_by_domains_with_coloured_drops(seeded_page):
    table = shown(seeded_page)["robustness-tiny"]
    assert list(table.columns) == ["general score", "sport", "worst domain", "spread"]
    assert table.loc["bm25", "sport"] == "0.250" and table.loc["hybrid-a0.5", "sport"] == "0.100 ± 0.000"
    assert table.loc["hybrid-a0.5", "worst domain"] == "sport" and table.loc["hybrid-a0.5-s0", "worst domain"] == "–"
    cells = re.findall(r'style="background:rgba\((\d+,\d+,\d+),([\d.]+)\)"', table_html(seeded_page, "robustness-tiny"))
    assert ("215,48,39", "0.58") in cells  # bm25's 0.25, the largest drop: the strongest red


def test_summary_across_tasks_and_model_metadata(seeded_page, seeded_dirs):
    report = build(read(seeded_dirs), 300)
    frame, ranks = summarise(report.summary_data)
    table = shown(seeded_page)["summary"]
    assert table.loc["bm25", "multi map"] == f"{frame.loc['bm25', 'multi map']:.3f}"
    assert table.loc["hybrid-a0.5", "rank (Borda)"] == str(ranks["hybrid-a0.5"])
    assert table.loc["hybrid-a0.5", "tasks"] == "2" and table.loc[EVIL, "multi map"] == "–"  # 1 of 2 tasks
    assert (table.loc["hybrid-a0.5", "max tokens"], table.loc["hybrid-a0.5", "license"]) == ("64", "MIT")
    # a table cell shows the link's host (the whole address in its title), so the column stays narrow
    assert '<a href="https://example.org/model" rel="noopener" title="https://example.org/model">example.org</a>' \
        in seeded_page
    assert '<input type="checkbox" name="domain" value="sport" checked>' in seeded_page


def test_exports_and_outputs(report_dirs, tmp_path):
    results = {r.model.name: r for r in collect(report_dirs)}
    dirs = [str(d) for d in report_dirs]
    common = ["--resamples", "100", "--cache-dir", str(tmp_path / "cache")]
    for fmt in ("csv", "latex"):
        res = invoke("report", *dirs, "--format", fmt, "--out", str(tmp_path / f"out.{fmt}"), *common)
        assert res.exit_code == 0 and f"wrote {tmp_path / f'out.{fmt}'} (3 results files)" in res.output
    md = invoke("report", *dirs, "--format", "md", "--out", "-", *common)
    assert md.exit_code == 0 and md.output.startswith("# xbench leaderboard") and "wrote" not in md.output
    long = pd.read_csv(tmp_path / "out.csv")
    board = long[long["table"] == "board-tiny"].set_index(["row", "column"])["value"].astype(float)
    for name, r in results.items():
        assert board[(name, "multi map")] == r.summary["multi"]["macro"]["map"]  # full precision
    assert "## tiny: leaderboard" in md.output and "&lt;script&gt;alert(1)&lt;/script&gt;\\|$x_1$" in md.output
    bm25 = next(line for line in md.output.splitlines() if line.startswith("| bm25 |")
                and line.count("|") == len(BOARD) + 2)
    assert f"| {results['bm25'].summary['mono']['macro']['map']:.3f} |" in bm25 and "nan" not in md.output
    latex = (tmp_path / "out.latex").read_text()
    assert latex.count(r"\begin{tabular}") == 2 + 1 + 3 + 3 and r"\$x\_1\$" in latex  # summary, tasks, task
    assert md.output.count("**Warning:** No model can be separated") == 2 == latex.count("Warning: No model can be")
    folder = invoke("report", *dirs, "--out", f"{tmp_path / 'site'}/", *common)
    assert folder.exit_code == 0, folder.output
    assert sorted(p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("*.html")) == \
        ["index.html", "tasks/tiny.html"]
    assert "board-tiny" in shown((tmp_path / "site" / "tasks" / "tiny.html").read_text())
    html = invoke("report", *dirs, "--out", "-", *common)
    assert html.output.startswith("<!doctype html>") and html.output.rstrip().endswith("</html>")


def test_collect_errors(report_dirs, tmp_path):
    with pytest.raises(XbenchError, match="results folder not found"):
        collect([tmp_path / "nowhere"])
    with pytest.raises(XbenchError, match="two results files hold model 'bm25' on task 'tiny'"):
        render([report_dirs[0], report_dirs[0]], tmp_path / "x.html", cache_dir=tmp_path / "cache")


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
    out, cache = tmp_path / "index.html", tmp_path / "cache"
    render([folder], out, n_resamples=100, cache_dir=cache)
    board = shown(out.read_text())["board-tiny"]
    assert sorted(board.index) == ["bm25", "bm25 (de)", "bm25 (en+de)"]
    assert board.loc["bm25 (de)", "mono map"] == "0.100"
    assert "bm25 (de) on de only; bm25 (en+de) on en, de only (of de, en, fr)" in out.read_text()
    # two subsets, the full run from another model: each subset is labelled; the same languages twice is ambiguous
    (folder / "bm25" / "tiny.json").unlink()
    render([folder, tiny_results / "results" / "tiny-st"], out, n_resamples=100, cache_dir=cache)
    st = load(tiny_results / "results" / "tiny-st" / "tiny.json").model.name
    assert sorted(shown(out.read_text())["board-tiny"].index) == sorted(["bm25 (de)", "bm25 (en+de)", st])
    doctored(full, tmp_path / "s" / "bm25" / "tiny.de.json", on("de"))
    with pytest.raises(XbenchError, match="two results files hold model 'bm25' on task 'tiny'"):
        render([folder, tmp_path / "s"], out, cache_dir=cache)


def test_no_robustness_section_without_domain_results(tiny_results, tmp_path):
    render([tiny_results / "results"], tmp_path / "plain.html", n_resamples=100, cache_dir=tmp_path / "cache")
    assert not any(name.startswith("robustness") for name in shown((tmp_path / "plain.html").read_text()))
