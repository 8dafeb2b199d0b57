"""`xbench report`: results folders -> one self-contained static HTML leaderboard, or the same tables as
Markdown, CSV or LaTeX.

pandas builds every table; the page is a Jinja2 template with autoescape on (model names, paths and cards are
user data and are never marked safe), inline CSS, a few lines of inline JS for sorting, and plots embedded as
base64 PNG, so it opens from disk, offline. Per task: the leaderboard (every model row expands to what
reproduces it), per-setting significance tiers with bootstrap CIs, per-language tables and the bias plots.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from xbench.analysis import plots
from xbench.analysis.robustness import robustness_table
from xbench.analysis.seeds import seed_table
from xbench.analysis.significance import T_TEST_MIN_UNITS, significance_table
from xbench.errors import XbenchError
from xbench.io import write_atomic
from xbench.results.schema import ResultFile
from xbench.results.store import collect
from xbench.scoring.aggregate import MACRO, RD, SAME_LANG
from xbench.tasks.spec import SETTINGS, TaskSpec

log = logging.getLogger(__name__)

LEADER_METRICS = {"mono": ("map", "recall@1"), "cross": ("map", "recall@1"),
                  "multi": ("map", "recall@10", RD, SAME_LANG)}
ALPHA = 0.05
SIGNIFICANCE_COLUMNS = {"ci_low": "95% CI low", "ci_high": "95% CI high", "p_vs_best": "p vs best (Holm)"}
TEST_COLUMNS = ["units", "tests", "method", "min_p"]  # constant per significance table: they go into its note


@dataclass
class Table:
    """A titled DataFrame (index = row labels); `marks` are (row, column) cells shown as in the best tier;
    `warning` is shown beside the table in every format that has room for text; `absent` is what an empty cell
    shows on the page."""

    id: str
    title: str
    frame: pd.DataFrame
    note: str = ""
    warning: str = ""
    absent: str = ""
    marks: set[tuple[str, str]] = field(default_factory=set)
    reproducible: bool = False  # row labels are models whose run details the page can expand

    def cells(self) -> list[tuple[str, list[tuple[str, str | None, bool]]]]:
        """Per row: label, then (shown text, sort value, marked) per column."""
        columns = [self.frame[c].tolist() for c in self.frame.columns]  # per column: keeps ints as ints
        return [(str(label), [(_text(v) or self.absent, _sort_value(v), (str(label), str(c)) in self.marks)
                              for c, v in zip(self.frame.columns, values)])
                for label, *values in zip(self.frame.index, *columns)]


@dataclass
class Section:
    """One task's part of the page: its models (label -> result), tables, plots and warnings."""

    spec: TaskSpec
    results: dict[str, ResultFile]
    tables: list[Table]
    plots: list[tuple[str, str]]  # (title, base64 PNG)
    notes: list[str]


def _text(value: object) -> str:
    """Scores with 3 decimals, rank distances (hundreds to thousands) with 1, small p-values with 2 digits."""
    if not isinstance(value, float):
        return str(value)
    if math.isnan(value):
        return ""
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"


def _sort_value(value: object) -> str | None:
    """The data-v attribute the page sorts numbers by ("" = missing, sorted last); None for text."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return "" if math.isnan(value) else repr(float(value))


def _by_task(results: list[ResultFile]) -> dict[str, dict[str, ResultFile]]:
    """task -> row label -> result. The label is the model name; where one model has several runs of a task on
    different languages (`xbench run --languages` stores a subset beside the full run), a run on every language
    of the task's results keeps the name and each other is labelled `NAME (en+de)`. Two files of one (model,
    task) on the same languages would make every row ambiguous: an error."""
    grouped: dict[str, dict[str, list[ResultFile]]] = {}
    for r in results:
        grouped.setdefault(r.task.name, {}).setdefault(r.model.name, []).append(r)
    labelled: dict[str, dict[str, ResultFile]] = {}
    for task, models in sorted(grouped.items()):
        rows = labelled[task] = {}
        every = {lang for files in models.values() for f in files for lang in f.task.languages}
        for name, files in models.items():
            langs = [tuple(f.task.languages) for f in files]
            if len(set(langs)) < len(langs):
                raise XbenchError(f"two results files hold model {name!r} on task {task!r} (field `model.name`); "
                                  "pass only one of the folders, or rename one model.")
            for f, lang in zip(files, langs):
                label = name if len(files) == 1 or set(lang) == every else f"{name} ({'+'.join(lang)})"
                if label in rows:
                    raise XbenchError(f"two results files on task {task!r} are both labelled {label!r}; pass only "
                                      "one of the folders, or rename one model.")
                rows[label] = f
    return labelled


def leaderboard(results: dict[str, ResultFile], spec: TaskSpec) -> pd.DataFrame:
    """Models as rows, macro scores per setting as columns, best main score first."""
    main_setting, _, main_metric = spec.main_metric.partition(".")
    columns = [(s, m) for s in SETTINGS for m in dict.fromkeys((main_metric, *LEADER_METRICS[s]))]
    rows = {label: {f"{s} {m}": r.summary.get(s, {}).get(MACRO, {}).get(m, math.nan) for s, m in columns}
            for label, r in results.items()}
    table = pd.DataFrame.from_dict(rows, orient="index").dropna(axis=1, how="all").rename_axis("model")
    main = f"{main_setting} {main_metric}"
    return table.sort_values(main, ascending=False, kind="stable") if main in table else table


def per_language(results: dict[str, ResultFile], setting: str, metric: str) -> pd.DataFrame:
    """Models x query languages, the languages taken from the data (never a hard-coded list)."""
    rows = {label: {lang: v.get(metric, math.nan) for lang, v in r.summary.get(setting, {}).items() if lang != MACRO}
            for label, r in results.items()}
    return pd.DataFrame.from_dict(rows, orient="index").sort_index(axis=1).rename_axis("model")


def _bias_plots(task: str, results: dict[str, ResultFile]) -> list[tuple[str, str]]:
    out = [(f"{task}: {label}: mAP by query x candidate language (mono on the diagonal, cross off it)",
            plots.heatmap(r.bias["map_matrix"], f"{label} on {task}"))
           for label, r in results.items() if "map_matrix" in r.bias]
    for key, title, ylabel in ((RD, "rank distance per query language (multi; lower = less language bias)",
                                "mean rank distance"),
                               (SAME_LANG, "same-language share of the top 10 per query language (multi)",
                                "same-language share")):
        frame = pd.DataFrame({label: {k: v for k, v in r.bias[key].items() if k != MACRO}
                              for label, r in results.items() if key in r.bias})
        if not frame.empty:
            out.append((f"{task}: {title}", plots.grouped_bars(frame, f"{task}: {ylabel}", ylabel)))
    return out


def _significance_note(sig: pd.DataFrame, setting: str) -> tuple[str, str]:
    """A significance table's note (units, tests, method, the smallest adjusted p it can reach, how tiers are
    made) and a warning when that floor is at or above alpha: then no model can be told from another, and
    "tier 1 for all" says nothing about the models."""
    units, tests, method, floor = sig[TEST_COLUMNS].iloc[0]
    unit = "(query, candidate language) pair" if setting == "cross" else "query"
    reach = "effectively 0" if floor == 0 else f"{floor:.3g}"
    note = (f"Paired unit: one {unit}; {units} units scored by every model. Test: {method} on the macro-weighted "
            f"mean difference. Tests: {tests} (every pair of models with different scores), Holm-corrected "
            f"together; smallest adjusted p they can reach: {reach}. Tier 1 = the best and every model not "
            f"significantly worse than it (Holm-adjusted p >= {ALPHA}); the best of the rest leads tier 2, and so "
            "on. 95% CI by percentile bootstrap.")
    if floor < ALPHA:
        return note, ""
    return note, (f"No model can be separated from another here: over {tests} tests, the {method} cannot give an "
                  f"adjusted p below {reach}, which is not below alpha {ALPHA}. It takes more paired units (or, "
                  "for a Monte Carlo randomization test, more resamples).")


def _subset_warning(results: dict[str, ResultFile]) -> str:
    """Results on a language subset (`xbench run --languages`) average fewer languages than a full run: the
    leaderboard says which, rather than rank them silently beside full runs."""
    every = {lang for r in results.values() for lang in r.task.languages}
    subsets = {label: r.task.languages for label, r in results.items() if set(r.task.languages) < every}
    if not subsets:
        return ""
    runs = "; ".join(f"{label} on {', '.join(langs)} only" for label, langs in subsets.items())
    return (f"Language subsets: {runs} (of {', '.join(sorted(every))}). Their macro scores average fewer languages "
            "and do not compare with the other rows.")


def _section(spec: TaskSpec, results: dict[str, ResultFile], n_resamples: int, seed: int) -> Section:
    metric = spec.main_metric.partition(".")[2]
    board = leaderboard(results, spec)
    tables = [Table(f"board-{spec.name}", f"{spec.name}: leaderboard (macro over query languages)", board,
                    warning=_subset_warning(results), absent="–", reproducible=True)]  # – : setting not run
    for setting in (s for s in SETTINGS if s in spec.settings):
        ran = {label: r for label, r in results.items() if setting in r.settings}
        sig = significance_table(ran, setting, metric, ALPHA, n_resamples, seed) if ran else pd.DataFrame()
        if sig.empty:
            continue
        tables[0].marks |= {(label, f"{setting} {metric}") for label in sig.index[sig["tier"] == 1]}
        tables.append(Table(f"sig-{spec.name}-{setting}", f"{spec.name}: {setting} {metric}, significance",
                            sig.drop(columns=TEST_COLUMNS).rename(columns=SIGNIFICANCE_COLUMNS),
                            *_significance_note(sig, setting)))
    for setting in (s for s in SETTINGS if s in spec.settings):
        langs = per_language(results, setting, metric).reindex(board.index)  # rows in leaderboard order
        if not langs.empty:
            note = "cross: each query language first averaged over candidate languages." if setting == "cross" else ""
            tables.append(Table(f"lang-{spec.name}-{setting}", f"{spec.name}: {setting} {metric} per query language",
                                langs, note=note))
    versions = {(r.task.version, r.data_sha256) for r in results.values()}
    notes = [f"Models were evaluated on {len(versions)} different task versions / data sha256 values: "
             "their rows are not strictly comparable."] if len(versions) > 1 else []
    return Section(spec, results, tables, _bias_plots(spec.name, results), notes)


def _robustness(results: list[ResultFile]) -> list[Table]:
    """Only when domain-split results exist: general-domain score beside each domain's, per model."""
    if not any(r.task.domain for r in results):
        return []
    table = robustness_table(results).set_index("model")
    title = "robustness: general-domain vs domain score (multi map; drop = general - domain)"
    return [Table("robustness", title, table)] if not table.empty else []


def _seeds(results: list[ResultFile]) -> list[Table]:
    """Only when a training configuration ran with several seeds: its mean and std per task."""
    table = seed_table(results)
    if not (table["seeds"] > 1).any():
        return []
    title = "training configurations over seeds: mean and sample std per task (macro; train_seconds per model)"
    return [Table("seeds", title, table.set_index("model"))]


def build(results: list[ResultFile], n_resamples: int = 2000, seed: int = 0) -> tuple[list[Section], list[Table]]:
    """Every task's section, plus the cross-task tables: domain robustness, configurations over seeds."""
    sections = [_section(max(models.values(), key=lambda r: len(r.task.languages)).task, models, n_resamples, seed)
                for models in _by_task(results).values()]
    return sections, _robustness(results) + _seeds(results)


def _pretty(value: object) -> str:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)


def to_html(sections: list[Section], extra: list[Table], n_resamples: int, seed: int) -> str:
    env = Environment(loader=PackageLoader("xbench.analysis", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    env.filters["pretty"] = _pretty
    return env.get_template("report.html.j2").render(sections=sections, extra=extra, alpha=ALPHA,
                                                     n_resamples=n_resamples, seed=seed,
                                                     t_test_min_units=T_TEST_MIN_UNITS)


def _tables(sections: list[Section], extra: list[Table]) -> list[Table]:
    return [t for s in sections for t in s.tables] + extra


def _markdown_cell(value: object) -> object:
    """Text as Markdown shows it literally: HTML escaped, table pipes escaped."""
    return html.escape(value).replace("|", "\\|") if isinstance(value, str) else value


def to_markdown(tables: list[Table]) -> str:
    parts = ["# xbench leaderboard\n"]
    for t in tables:
        frame = t.frame.rename(index=_markdown_cell, columns=_markdown_cell).map(_markdown_cell)
        table = frame.to_markdown(floatfmt=".4g", missingval="")
        parts.append(f"## {t.title}\n\n{table}\n" + (f"\n{t.note}\n" if t.note else "")
                     + (f"\n**Warning:** {t.warning}\n" if t.warning else ""))
    return "\n".join(parts)


def to_csv(tables: list[Table]) -> str:
    """One tidy table: table id, row label, column, value (full precision)."""
    long = [t.frame.rename_axis("row").reset_index().melt(id_vars="row", var_name="column").assign(table=t.id)
            for t in tables]
    return pd.concat(long)[["table", "row", "column", "value"]].to_csv(index=False)


def _latex_caption(t: Table) -> str:
    """The title, and the table's warning if it has one, so that the table is not pasted into a paper without it."""
    caption = f"{t.title}. Warning: {t.warning}" if t.warning else t.title
    return caption.replace("_", r"\_")


def to_latex(tables: list[Table]) -> str:
    return "\n".join(t.frame.to_latex(escape=True, float_format="%.3f", na_rep="", caption=_latex_caption(t))
                     for t in tables)


# --format -> (file extension, renderer of the report's tables); html is the page itself, rendered by to_html
EXPORTS: dict[str, tuple[str, Callable[[list[Table]], str]]] = {
    "md": ("md", to_markdown), "csv": ("csv", to_csv), "latex": ("tex", to_latex)}
FORMATS = {"html": "html", **{name: extension for name, (extension, _) in EXPORTS.items()}}


def render(dirs: list[Path], out: Path, fmt: str = "html", n_resamples: int = 2000, seed: int = 0,
           strict: bool = False, on_skip: Callable[[str], None] = log.warning) -> int:
    """Write the report in `fmt` (html | md | csv | latex); returns the number of results files read. An
    unreadable results file is handed to `on_skip` (its path and the reason) and left out, so one bad file does
    not take the whole leaderboard down; with `strict` it is an error."""
    results = collect(dirs, on_error=None if strict else lambda exc: on_skip(f"skipped {exc}"))
    sections, extra = build(results, n_resamples, seed)
    text = (to_html(sections, extra, n_resamples, seed) if fmt == "html"
            else EXPORTS[fmt][1](_tables(sections, extra)))
    write_atomic(out, text)
    return len(results)
