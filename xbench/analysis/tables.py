"""The report's tables, apart from the format they are written in (page, Markdown, LaTeX, CSV).

A table holds one row per results file (a *run*) and says, per column, what kind of number it is: how many decimals
it is written with (fixed per column, so a column never switches notation), which way is better (the page's first
click sorts best first) and how the seeds of one training configuration fold into one row: mean ± sd for scores,
min–max for tiers and p-values, nothing for a confidence interval (the mean of two intervals is not an interval).
Folding is done here once, so every format shows the same rows with the same text.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import pandas as pd

from xbench.scoring.aggregate import RD, SAME_LANG

MEAN, RANGE, NONE, SAME, GROUP = "mean", "range", "none", "same", "group"


@dataclass(frozen=True)
class Kind:
    """How a column's values are written and folded. `decimals` None: text. `floor`: values below the last
    decimal are written `<0.0001` rather than as zeros. `fold`: MEAN (mean ± sd over seeds), RANGE (min–max), NONE
    (not shown for a folded row), SAME (the value if every seed has it), GROUP (only the folded row has one: the
    table gives it in `group_values`)."""

    decimals: int | None = 3
    lower_is_better: bool = False
    fold: str = MEAN
    floor: bool = False


KINDS: dict[str, Kind] = {
    "score": Kind(3),
    "rank_distance": Kind(1, lower_is_better=True),
    "same_language": Kind(3, lower_is_better=True),  # a share of the top 10 in the query's language: bias
    "interval": Kind(3, fold=NONE),
    "p": Kind(4, fold=RANGE, floor=True),
    "tier": Kind(0, lower_is_better=True, fold=RANGE),
    "count": Kind(0, fold=RANGE),
    "seconds": Kind(0, lower_is_better=True),
    "drop": Kind(3, lower_is_better=True),  # general - domain score: lower = more robust
    "rank": Kind(0, lower_is_better=True, fold=GROUP),
    "group_score": Kind(3, fold=GROUP),
    "group_text": Kind(None, fold=GROUP),
    "link": Kind(None, fold=SAME),  # a URL: the page shows it as a link
    "text": Kind(None, fold=SAME),
}


def metric_kind(metric: str) -> str:
    """The kind of a per-query metric's column: rank distance and same-language share are bias figures (lower is
    better, rank distance in ranks), every other metric a score in [0, 1]."""
    return {RD: "rank_distance", SAME_LANG: "same_language"}.get(metric, "score")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "score"
    setting: str | None = None  # the page hides the column when this setting is filtered out

    @property
    def spec(self) -> Kind:
        return KINDS[self.kind]


def missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def write(value: object, kind: Kind) -> str:
    """A value as every format shows it ("" when missing: each format writes its own dash)."""
    if missing(value):
        return ""
    if kind.decimals is None or not isinstance(value, numbers.Real):
        return str(value)
    value = float(value)
    if kind.floor and 0 <= value < 10 ** -kind.decimals:
        return f"<{10 ** -kind.decimals:.{kind.decimals}f}"
    text = f"{value:.{kind.decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.000"


@dataclass
class Cell:
    """One shown value: `text` ("" = missing), `sd` (the seeds' standard deviation, "" if none), `sort` (the number
    the page sorts by; None for text or missing), `marked` (in the best significance tier), `tone` (-1..1: how
    strongly the page colours the cell, for robustness drops)."""

    text: str
    sd: str = ""
    sort: float | None = None
    marked: bool = False
    tone: float | None = None


@dataclass
class Row:
    """A shown row: a run, or a training configuration folding several runs (`members`, one per seed)."""

    label: str
    group: str
    cells: list[Cell]
    runs: list[str]
    members: list[Row] = field(default_factory=list)


def _number(value: object, kind: Kind) -> float | None:
    """The number a cell sorts by: None for text and for a missing value."""
    if kind.decimals is None or missing(value) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Plain left-to-right sums, the arithmetic the page's script repeats when its filters change."""
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else math.nan
    return mean, sd


@dataclass
class Table:
    """A titled table of runs (`frame`: index = run labels, one column per `columns` entry, same order).

    `groups`: shown row label -> the runs folded into it (a run in no group is a row of its own); `group_values`:
    (shown label, column) -> value of a GROUP column; `marks`: (run, column) cells in the best tier; `order_by`: the
    column whose folded value orders the rows (best first), else the frame's order; `details`: the page can expand
    each row to the runs' reproduction details."""

    id: str
    title: str
    frame: pd.DataFrame
    columns: list[Column]
    groups: dict[str, list[str]] = field(default_factory=dict)
    group_values: dict[tuple[str, str], object] = field(default_factory=dict)
    note: str = ""
    warning: str = ""
    marks: set[tuple[str, str]] = field(default_factory=set)
    order_by: str | None = None
    details: bool = False
    row_header: str = "model"

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if list(self.frame.columns) != names:
            raise ValueError(f"table {self.id}: frame columns {list(self.frame.columns)} != columns {names}")

    def _cell(self, column: Column, values: list[object], runs: list[str], label: str, head: bool) -> Cell:
        """The cell of `column` for a shown row (`head`: the row of a group or of a lone run) or a member row."""
        kind = column.spec
        if kind.fold == GROUP:
            value = self.group_values.get((label, column.name)) if head else None
            return Cell(write(value, kind), sort=_number(value, kind))
        marked = bool(runs) and all((run, column.name) in self.marks for run in runs)
        if len(values) == 1:
            return Cell(write(values[0], kind), sort=_number(values[0], kind), marked=marked)
        present = [v for v in values if not missing(v)]
        if not present or kind.fold == NONE:
            return Cell("", marked=marked)
        if kind.fold == SAME:
            return Cell(write(present[0], kind) if len(set(present)) == 1 and len(present) == len(values) else "")
        nums = [n for v in present if (n := _number(v, kind)) is not None]
        if kind.fold == RANGE:
            low, high = write(min(nums), kind), write(max(nums), kind)
            return Cell(low if low == high else f"{low}–{high}", sort=min(nums), marked=marked)
        mean, sd = _mean_sd(nums)
        return Cell(write(mean, kind), sd="" if math.isnan(sd) else write(sd, kind), sort=mean, marked=marked)

    def _row(self, label: str, runs: list[str]) -> Row:
        folded = len(runs) > 1
        shown = label if folded else runs[0]
        cells = [self._cell(c, [self.frame.at[r, c.name] for r in runs], runs, label, True) for c in self.columns]
        members = [Row(r, label, [self._cell(c, [self.frame.at[r, c.name]], [r], label, False)
                                  for c in self.columns], [r]) for r in runs] if folded else []
        return Row(shown, label, cells, runs, members)

    def rows(self) -> list[Row]:
        """Shown rows: each group folded (its members kept for the page, in the group's order), the groups in the
        frame's order of their first run, or best first by `order_by`."""
        grouped = {run: label for label, runs in self.groups.items() for run in runs}
        present = set(self.frame.index)
        heads = dict.fromkeys(grouped.get(run, run) for run in self.frame.index)
        rows = [self._row(head, [r for r in self.groups.get(head, [head]) if r in present]) for head in heads]
        if self.order_by is not None:
            at = [c.name for c in self.columns].index(self.order_by)
            sign = 1 if self.columns[at].spec.lower_is_better else -1
            rows.sort(key=lambda row: (row.cells[at].sort is None, sign * (row.cells[at].sort or 0.0)))
        self._tone(rows)
        return rows

    def _tone(self, rows: list[Row]) -> None:
        """Drop cells get a tone in -1..1 relative to the largest drop of the table (0 = no colour)."""
        drops = [i for i, c in enumerate(self.columns) if c.kind == "drop"]
        cells = [r.cells[i] for row in rows for r in (row, *row.members) for i in drops]
        scale = max((abs(c.sort) for c in cells if c.sort is not None), default=0.0)
        for cell in cells:
            cell.tone = None if cell.sort is None or scale == 0 else cell.sort / scale
