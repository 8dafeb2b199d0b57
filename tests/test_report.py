"""`xbench report` and `xbench compare` on results made by the real pipeline (bm25 and a tiny real
sentence-transformers model on the tiny task), plus a copy under a hostile model name."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import markupsafe
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from xbench.cli import main
from xbench.errors import XbenchError
from xbench.report import collect, render
from xbench.results import load
from xbench.significance import macro_weights, paired_units, significance_table

from conftest import write_tiny_task

EVIL = "<script>alert(1)</script>|$x_1$"
BOARD = ["mono map", "mono recall@1", "cross map", "cross recall@1", "multi map", "multi recall@10",
         "multi rank_distance", "multi same_lang@10"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory, tiny_st_model) -> Path:
    """ROOT with tasks/ (the tiny task) and results/{bm25,tiny-st}/tiny.json from `xbench run`. Built once per
    session even when other test modules import this fixture."""
    root = tmp_path_factory.getbasetemp() / "tiny-results"
    if not root.exists():
        tasks = write_tiny_task(root)
        for model in ("bm25", str(tiny_st_model)):
            res = invoke("run", "--model", model, "--tasks", "tiny", "--tasks-dir", str(tasks),
                         "--output", str(root / "results"), "--cache-dir", str(root / "cache"))
            assert res.exit_code == 0, res.output
    return root


def doctored(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of a results file with `edit` applied to its JSON."""
    raw = json.loads(src.read_text())
    edit(raw)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(raw))
    return dst


def _evil(raw: dict) -> None:
    raw["model"]["name"] = EVIL
    raw["model"]["card"]["note"] = "</script><img src=x onerror=alert(2)>"
    raw["run"]["command"] = 'xbench run --model "<b>bold</b>"'


@pytest.fixture(scope="module")
def report_dirs(tiny_results, tmp_path_factory) -> list[Path]:
    """The real results plus the tiny-st file under a hostile name (same scores: a tie with tiny-st)."""
    extra = tmp_path_factory.mktemp("evil")
    doctored(tiny_results / "results" / "tiny-st" / "tiny.json", extra / "evil" / "tiny.json", _evil)
    return [tiny_results / "results", extra]


@pytest.fixture(scope="module")
def page(report_dirs, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("report") / "index.html"
    assert render(report_dirs, out, n_resamples=500) == 3
    return out.read_text()


class _Tables(HTMLParser):
    """id -> rows of cell texts; a cell with data-k (the model cell) counts as that label."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._id: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._id = a.get("id")
            self.tables[self._id] = []
        elif tag == "tr" and self._id:
            self.tables[self._id].append([])
        elif tag in ("td", "th") and self._id:
            self._cell = [a["data-k"]] if "data-k" in a else []
            self._fixed = "data-k" in a

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._fixed:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._id][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._id = None


def html_tables(text: str) -> dict[str, pd.DataFrame]:
    """Every table of a page as strings, indexed by its first column."""
    parser = _Tables()
    parser.feed(text)
    return {k: pd.DataFrame(rows[1:], columns=rows[0]).set_index(rows[0][0]) for k, rows in parser.tables.items()}


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


def test_collect_errors(report_dirs, tmp_path):
    with pytest.raises(XbenchError, match="results folder not found"):
        collect([tmp_path / "nowhere"])
    with pytest.raises(XbenchError, match="two results files hold model 'bm25' on task 'tiny'"):
        render([report_dirs[0], report_dirs[0]], tmp_path / "x.html")


def test_robustness_section_when_domain_results_exist(tiny_results, tmp_path):
    robustness = pytest.importorskip("xbench.robustness", reason="xbench/robustness.py is not written yet")

    def sport(raw: dict) -> None:
        raw["task"]["domain"] = "sport"
        raw["task"]["name"] = "tiny-sport"

    doctored(tiny_results / "results" / "bm25" / "tiny.json", tmp_path / "d" / "bm25" / "tiny-sport.json", sport)
    out = tmp_path / "index.html"
    render([tiny_results / "results", tmp_path / "d"], out, n_resamples=100)
    expected = robustness.robustness_table(collect([tiny_results / "results", tmp_path / "d"]))
    assert len(html_tables(out.read_text())["robustness"]) == len(expected)


def test_compare_prints_paired_tests_and_language_differences(tiny_results):
    res = invoke("compare", "bm25", str(tiny_results / "results" / "tiny-st" / "tiny.json"), "--task", "tiny",
                 "--results-dir", str(tiny_results / "results"))
    assert res.exit_code == 0, res.output
    a, b = (load(tiny_results / "results" / m / "tiny.json") for m in ("bm25", "tiny-st"))
    rows = {line.split()[0]: line.split() for line in res.output.splitlines() if len(line.split()) == 8}
    assert sorted(rows) == ["cross", "mono", "multi"]
    for setting, (_, units, sa, sb, diff, low, high, p) in rows.items():
        table = paired_units({"a": a, "b": b}, setting, "map")
        w = macro_weights(table.index)
        exact = stats.permutation_test((table["a"], table["b"]), lambda x, y, axis: np.sum(w * (x - y), axis=axis),
                                       permutation_type="samples", vectorized=True).pvalue
        assert float(p) == pytest.approx(exact, abs=5e-5)
        assert float(sa) == pytest.approx(a.summary[setting]["macro"]["map"], abs=5e-5)
        assert float(low) <= float(diff) <= float(high) and int(units) == len(table)
    assert "A - B map per query language" in res.output and re.search(r"^fr\s", res.output, re.M)

    missing = invoke("compare", "bm25", "nosuch", "--task", "tiny", "--results-dir", str(tiny_results / "results"))
    assert missing.exit_code == 2 and "models there: bm25, tiny-st" in missing.output
