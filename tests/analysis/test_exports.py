"""Markdown, LaTeX and CSV exports: every cell string exact, for a table with a folded configuration, a large rank
distance, a tiny p-value, missing values and a hostile model name."""

from __future__ import annotations

import io
import math

import pandas as pd

from xbench.analysis.exports import latex_escape, to_csv, to_latex, to_markdown
from xbench.analysis.tables import Column, Table

EVIL = "<b>x</b>|$a_1$ & 50%"


def table() -> Table:
    frame = pd.DataFrame({"multi map": [0.5, 0.7, 0.31249], "multi rank_distance": [13226.0, 13000.0, math.nan],
                          "p vs best (Holm)": [math.nan, 3e-12, 0.04567], "tier": [1, 2, 2]},
                         index=pd.Index(["cfg-s0", "cfg-s1", EVIL], name="model"))
    columns = [Column("multi map", setting="multi"), Column("multi rank_distance", "rank_distance", "multi"),
               Column("p vs best (Holm)", "p"), Column("tier", "tier")]
    return Table("board-t", "t: leaderboard", frame, columns, groups={"cfg": ["cfg-s0", "cfg-s1"]},
                 marks={("cfg-s0", "tier")}, note="A note.", warning="Careful.")


def test_markdown_cells():
    assert to_markdown([table()]).splitlines() == [
        "# xbench leaderboard",
        "",
        "## t: leaderboard",
        "",
        "| model | multi map | multi rank_distance | p vs best (Holm) | tier |",
        "|:---|---:|---:|---:|---:|",
        "| cfg | 0.600 ± 0.141 | 13113.0 ± 159.8 | &lt;0.0001 | 1–2 |",
        "| &lt;b&gt;x&lt;/b&gt;\\|$a_1$ &amp; 50% | 0.312 | – | 0.0457 | 2 |",
        "",
        "A note.",
        "",
        "**Warning:** Careful.",
    ]


def test_latex_cells_rules_and_the_packages_it_needs():
    lines = to_latex([table()]).splitlines()
    assert lines[0].startswith("% xbench leaderboard: 1 tables. Needs \\usepackage{booktabs}")
    assert lines[2:] == [
        r"\begin{table}[htbp]",
        r"\centering",
        r"\caption{t: leaderboard. Warning: Careful.}",
        r"\label{tab:board-t}",
        r"\begin{tabular}{lrrrr}",
        r"\toprule",
        r"model & multi map & multi rank\_distance & p vs best (Holm) & tier \\",  # one header row, no index row
        r"\midrule",
        r"cfg & 0.600 $\pm$ 0.141 & 13113.0 $\pm$ 159.8 & \textless{}0.0001 & 1--2 \\",
        r"\textless{}b\textgreater{}x\textless{}/b\textgreater{}\textbar{}\$a\_1\$ \& 50\%"
        r" & 0.312 & -- & 0.0457 & 2 \\",
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]


def test_a_marked_cell_is_bold_where_every_seed_is_in_the_best_tier():
    t = table()
    t.marks = {("cfg-s0", "tier"), ("cfg-s1", "tier")}
    assert "| cfg | 0.600 ± 0.141 | 13113.0 ± 159.8 | &lt;0.0001 | **1–2** |" in to_markdown([t])
    assert r"\textbf{1--2} \\" in to_latex([t])


def test_latex_escapes_every_special_character():
    assert latex_escape("\\ & % $ # _ { } ~ ^ < > | –") == (
        r"\textbackslash{} \& \% \$ \# \_ \{ \} \textasciitilde{} \textasciicircum{} "
        r"\textless{} \textgreater{} \textbar{} --")


def test_csv_holds_every_seed_at_full_precision():
    t = table()
    t.group_values = {("cfg", "rank"): 1}
    csv = pd.read_csv(io.StringIO(to_csv([t])), keep_default_na=False)
    assert list(csv.columns) == ["table", "row", "column", "value"]
    assert len(csv) == 3 * 4 + 1
    cell = csv[(csv["row"] == "cfg-s1") & (csv["column"] == "p vs best (Holm)")]["value"].item()
    assert float(cell) == 3e-12
    assert float(csv[(csv["row"] == "cfg") & (csv["column"] == "rank")]["value"].item()) == 1
    assert csv[(csv["row"] == EVIL) & (csv["column"] == "multi map")]["value"].item() == "0.31249"
