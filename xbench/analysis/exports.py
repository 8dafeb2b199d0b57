"""The report's tables as Markdown, LaTeX and CSV, for papers and spreadsheets.

Markdown and LaTeX show the rows the page shows (seeds folded into `mean ± sd`), with each column's fixed decimals
(`xbench.analysis.tables.KINDS`): never scientific notation, never `nan`, a dash where a value does not apply.
CSV is the data behind them: one line per (table, run, column) at full precision, plus the values that only a
folded row has (a configuration's Borda rank, its worst domain). A new format is a function `(tables) -> str`
added to EXPORTS.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pandas as pd

from xbench.analysis.tables import GROUP, Cell, Table

TITLE = "xbench leaderboard"


def _shown(cell: Cell, dash: str, pm: str, dashes: Callable[[str], str] = str) -> str:
    """A cell's text in one format: its dash when missing, `mean pm sd` for a folded row."""
    if not cell.text:
        return dash
    return dashes(cell.text) + (f" {pm} {dashes(cell.sd)}" if cell.sd else "")


# --- Markdown -----------------------------------------------------------------------------------------------------

def _md_text(text: str) -> str:
    """Text as Markdown shows it literally: HTML escaped, table pipes escaped."""
    return html.escape(text, quote=False).replace("|", "\\|")


def _md_table(t: Table) -> str:
    header = [t.row_header, *(c.name for c in t.columns)]
    align = [":---", *("---:" if c.spec.decimals is not None else ":---" for c in t.columns)]
    lines = ["| " + " | ".join(map(_md_text, header)) + " |", "|" + "|".join(align) + "|"]
    for row in t.rows():
        cells = [_md_text(_shown(c, "–", "±")) for c in row.cells]
        cells = [f"**{text}**" if c.marked and c.text else text for c, text in zip(row.cells, cells)]
        lines.append("| " + " | ".join([_md_text(row.label), *cells]) + " |")
    return "\n".join(lines)


def to_markdown(tables: list[Table]) -> str:
    parts = [f"# {TITLE}\n"]
    for t in tables:
        parts.append(f"## {_md_text(t.title)}\n\n{_md_table(t)}\n" + (f"\n{t.note}\n" if t.note else "")
                     + (f"\n**Warning:** {t.warning}\n" if t.warning else ""))
    return "\n".join(parts)


# --- LaTeX --------------------------------------------------------------------------------------------------------

_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
          ">": r"\textgreater{}", "|": r"\textbar{}", "–": "--"}
_LATEX_CHARS = re.compile("|".join(map(re.escape, _LATEX)))


def latex_escape(text: str) -> str:
    """Text as LaTeX prints it literally (in text mode, with any font encoding)."""
    return _LATEX_CHARS.sub(lambda m: _LATEX[m.group()], text)


def _latex_table(t: Table) -> str:
    caption = latex_escape(f"{t.title}. Warning: {t.warning}" if t.warning else t.title)
    spec = "l" + "".join("r" if c.spec.decimals is not None else "l" for c in t.columns)
    lines = [r"\begin{table}[htbp]", r"\centering", rf"\caption{{{caption}}}", rf"\label{{tab:{t.id}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(h) for h in [t.row_header, *(c.name for c in t.columns)]) + r" \\", r"\midrule"]
    for row in t.rows():
        cells = [_shown(c, "--", r"$\pm$", latex_escape) for c in row.cells]
        cells = [rf"\textbf{{{text}}}" if c.marked and c.text else text for c, text in zip(row.cells, cells)]
        lines.append(" & ".join([latex_escape(row.label), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def to_latex(tables: list[Table]) -> str:
    head = (f"% {TITLE}: {len(tables)} tables. Needs \\usepackage{{booktabs}} (\\toprule, \\midrule, \\bottomrule) "
            "in the preamble;\n% bold = best significance tier, -- = not applicable, mean $\\pm$ sd over seeds.\n")
    return head + "\n\n".join(_latex_table(t) for t in tables) + "\n"


# --- CSV ----------------------------------------------------------------------------------------------------------

def to_csv(tables: list[Table]) -> str:
    """One tidy table: table id, row label, column, value (full precision). Rows are runs (seeds unfolded); a
    value that only a configuration has (a GROUP column) is on the configuration's own label."""
    parts = []
    for t in tables:
        only_grouped = [c.name for c in t.columns if c.spec.fold == GROUP]
        long = t.frame.drop(columns=only_grouped).rename_axis("row").reset_index().melt(id_vars="row",
                                                                                         var_name="column")
        if t.group_values:
            long = pd.concat([long, pd.DataFrame([{"row": label, "column": column, "value": value}
                                                  for (label, column), value in t.group_values.items()])])
        parts.append(long.assign(table=t.id))
    return pd.concat(parts)[["table", "row", "column", "value"]].to_csv(index=False)


# --format -> (file extension, renderer of the report's tables); html is the page itself (xbench.analysis.page)
EXPORTS: dict[str, tuple[str, Callable[[list[Table]], str]]] = {
    "md": ("md", to_markdown), "csv": ("csv", to_csv), "latex": ("tex", to_latex)}
