"""`xbench report`: results folders -> a static leaderboard (one self-contained page, or a folder of pages), or its
tables as Markdown, CSV or LaTeX.

`build` reads the results once into a `Report`: a front summary across tasks, one section per task (leaderboard,
significance tiers with bootstrap intervals, per-language tables, bias plots), domain robustness in wide form and
the models' metadata. The seeds of one training configuration fold into one row everywhere (`xbench.analysis.seeds`
decides which runs belong together). Significance tables come from a cache on disk (`xbench.analysis.cache`), so
they are computed once for every format and rerun. `xbench.analysis.page` writes the HTML, `xbench.analysis.exports`
the other formats, `xbench.analysis.render` puts either where it goes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from xbench.analysis import plots
from xbench.analysis.cache import SignificanceCache, content_hash
from xbench.analysis.cards import data_source, model_info
from xbench.analysis.robustness import paired_scores, robustness_table
from xbench.analysis.seeds import labels
from xbench.analysis.significance import significance_table
from xbench.analysis.summary import summary_data, summary_table
from xbench.analysis.tables import Column, Table, metric_kind
from xbench.errors import XbenchError
from xbench.results.schema import ResultFile
from xbench.results.store import collect
from xbench.scoring.aggregate import MACRO, RD, SAME_LANG
from xbench.tasks.spec import SETTINGS, TaskSpec

log = logging.getLogger(__name__)

LEADER_METRICS = {"mono": ("map", "recall@1"), "cross": ("map", "recall@1"),
                  "multi": ("map", "recall@10", RD, SAME_LANG)}
ALPHA = 0.05
# significance_table column -> (shown name, kind); the method columns are constant per table and go into its note
SIGNIFICANCE_COLUMNS = {"ci_low": ("95% CI low", "interval"), "ci_high": ("95% CI high", "interval"),
                        "tier": ("tier", "tier"), "p_vs_best": ("p vs best (Holm)", "p")}
TEST_COLUMNS = ["units", "tests", "method", "min_p"]


@dataclass
class Run:
    """One results file as a row of its task: `label` (the model name, `NAME (en+de)` for a language subset) and
    `group`, the training configuration whose seeds fold into one row."""

    label: str
    group: str
    result: ResultFile

    @property
    def anchor(self) -> str:
        """The id of the model's entry in the models section: a hash, since a label can hold any character."""
        return "model-" + hashlib.sha256(self.result.model.name.encode()).hexdigest()[:12]


@dataclass
class Figure:
    title: str
    svg: Markup
    legend: dict[str, str] = field(default_factory=dict)  # series -> colour


@dataclass
class Section:
    """One task: its runs by label, its tables, plots and warnings."""

    spec: TaskSpec
    runs: dict[str, Run]
    tables: list[Table]
    figures: list[Figure]
    notes: list[str]

    @property
    def source(self) -> tuple[str, str | None]:
        return data_source(self.spec)


@dataclass
class Model:
    """A model's entry in the models section: metadata from its card, and the card itself."""

    anchor: str
    name: str
    group: str
    kind: str
    fingerprint: str
    card: dict[str, Any]
    info: dict[str, str | None]
    tasks: list[str]


@dataclass
class Report:
    """Everything a report shows, apart from how it is written."""

    sections: list[Section]
    summary: Table
    summary_data: dict[str, Any]
    robustness: list[Table]
    models: list[Model]
    n_resamples: int
    seed: int

    def tables(self) -> list[Table]:
        """Every table, in page order: what the Markdown, LaTeX and CSV exports hold."""
        return [self.summary, tasks_table(self.sections), *(t for s in self.sections for t in s.tables),
                *self.robustness]

    @property
    def filters(self) -> dict[str, list[str]]:
        """The values the page's filters offer: task families, domains, languages, settings."""
        tasks = self.summary_data["tasks"]
        return {"family": sorted({t["family"] for t in tasks}), "domain": sorted({t["domain"] for t in tasks}),
                "lang": sorted({lang for t in tasks for lang in t["langs"]}),
                "setting": [s for s in SETTINGS if any(s in t["settings"] for t in tasks)]}


def _by_task(results: list[ResultFile]) -> dict[str, dict[str, Run]]:
    """task -> row label -> run. The label is the model name; where one model has several runs of a task on
    different languages (`xbench run --languages` stores a subset beside the full run), a run on every language
    of the task's results keeps the name and each other is labelled `NAME (en+de)`. Two files of one (model,
    task) on the same languages would make every row ambiguous: an error."""
    configuration = {id(r): group for r, (group, _) in zip(results, labels(results))}
    grouped: dict[str, dict[str, list[ResultFile]]] = {}
    for r in results:
        grouped.setdefault(r.task.name, {}).setdefault(r.model.name, []).append(r)
    labelled: dict[str, dict[str, Run]] = {}
    for task, models in sorted(grouped.items()):
        rows = labelled[task] = {}
        every = {lang for files in models.values() for f in files for lang in f.task.languages}
        for name, files in models.items():
            langs = [tuple(f.task.languages) for f in files]
            if len(set(langs)) < len(langs):
                raise XbenchError(f"two results files hold model {name!r} on task {task!r} (field `model.name`); "
                                  "pass only one of the folders, or rename one model.")
            for f, lang in zip(files, langs):
                subset = "" if len(files) == 1 or set(lang) == every else f" ({'+'.join(lang)})"
                label = name + subset
                if label in rows:
                    raise XbenchError(f"two results files on task {task!r} are both labelled {label!r}; pass only "
                                      "one of the folders, or rename one model.")
                rows[label] = Run(label, configuration[id(f)] + subset, f)
    return labelled


def _natural(label: str) -> list[str | int]:
    """Sort key that puts `-s2` before `-s10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label)]


def _groups(runs: dict[str, Run], labels_: list[str] | None = None) -> dict[str, list[str]]:
    """Configuration -> its runs (seeds in order), configurations in the order of `labels_` (else of the runs)."""
    out: dict[str, list[str]] = {}
    for label in labels_ if labels_ is not None else runs:
        out.setdefault(runs[label].group, []).append(label)
    return {group: sorted(members, key=_natural) for group, members in out.items()}


def leaderboard(runs: dict[str, Run], spec: TaskSpec) -> pd.DataFrame:
    """Runs as rows, macro scores per setting as columns (`setting metric`), best main score first."""
    main_setting, _, main_metric = spec.main_metric.partition(".")
    columns = [(s, m) for s in SETTINGS for m in dict.fromkeys((main_metric, *LEADER_METRICS[s]))]
    rows = {label: {f"{s} {m}": run.result.summary.get(s, {}).get(MACRO, {}).get(m, float("nan")) for s, m in columns}
            for label, run in runs.items()}
    table = pd.DataFrame.from_dict(rows, orient="index").dropna(axis=1, how="all").rename_axis("model")
    main = f"{main_setting} {main_metric}"
    return table.sort_values(main, ascending=False, kind="stable") if main in table else table


def per_language(runs: dict[str, Run], setting: str, metric: str) -> pd.DataFrame:
    """Runs x query languages, the languages taken from the data (never a hard-coded list)."""
    rows = {label: {lang: v.get(metric, float("nan")) for lang, v in run.result.summary.get(setting, {}).items()
                    if lang != MACRO} for label, run in runs.items()}
    return pd.DataFrame.from_dict(rows, orient="index").sort_index(axis=1).rename_axis("model")


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
            "on. 95% CI by percentile bootstrap. Seeds of one configuration: each tested as a model of its own; the "
            "folded row shows their range.")
    if floor < ALPHA:
        return note, ""
    return note, (f"No model can be separated from another here: over {tests} tests, the {method} cannot give an "
                  f"adjusted p below {reach}, which is not below alpha {ALPHA}. It takes more paired units (or, "
                  "for a Monte Carlo randomization test, more resamples).")


def _subset_warning(runs: dict[str, Run]) -> str:
    """Results on a language subset (`xbench run --languages`) average fewer languages than a full run: the
    leaderboard says which, rather than rank them silently beside full runs."""
    every = {lang for run in runs.values() for lang in run.result.task.languages}
    subsets = {label: run.result.task.languages for label, run in runs.items()
               if set(run.result.task.languages) < every}
    if not subsets:
        return ""
    listed = "; ".join(f"{label} on {', '.join(langs)} only" for label, langs in subsets.items())
    return (f"Language subsets: {listed} (of {', '.join(sorted(every))}). Their macro scores average fewer languages "
            "and do not compare with the other rows.")


class _Significance:
    """significance_table through the cache, keyed by the runs' content hashes (each computed once)."""

    def __init__(self, cache: SignificanceCache, n_resamples: int, seed: int) -> None:
        self.cache, self.n_resamples, self.seed = cache, n_resamples, seed
        self._hashes: dict[int, str] = {}

    def table(self, runs: dict[str, Run], setting: str, metric: str) -> pd.DataFrame:
        hashes = [[label, self._hashes.setdefault(id(run.result), content_hash(run.result))]
                  for label, run in runs.items()]
        key = {"kind": "table", "runs": hashes, "setting": setting, "metric": metric, "alpha": ALPHA,
               "resamples": self.n_resamples, "seed": self.seed}
        return self.cache.table(key, lambda: significance_table({label: run.result for label, run in runs.items()},
                                                                setting, metric, ALPHA, self.n_resamples, self.seed))


def _leaderboard_table(spec: TaskSpec, runs: dict[str, Run]) -> Table:
    board = leaderboard(runs, spec)
    main = spec.main_metric.replace(".", " ")
    columns = [Column(c, metric_kind(c.partition(" ")[2]), c.partition(" ")[0]) for c in board.columns]
    return Table(f"board-{spec.name}", f"{spec.name}: leaderboard (macro over query languages)", board, columns,
                 groups=_groups(runs, list(board.index)), warning=_subset_warning(runs),
                 order_by=main if main in board else None, details=True)


def _significance_tables(spec: TaskSpec, runs: dict[str, Run], board: Table, significance: _Significance,
                         order: list[str]) -> list[Table]:
    metric = spec.main_metric.partition(".")[2]
    tables = []
    for setting in (s for s in SETTINGS if s in spec.settings):
        ran = {label: run for label, run in runs.items() if setting in run.result.settings}
        sig = significance.table(ran, setting, metric) if ran else pd.DataFrame()
        if sig.empty:
            continue
        board.marks |= {(label, f"{setting} {metric}") for label in sig.index[sig["tier"] == 1]}
        shown = sig.drop(columns=TEST_COLUMNS).rename(columns={k: v for k, (v, _) in SIGNIFICANCE_COLUMNS.items()})
        shown = shown.reindex([label for label in order if label in shown.index])
        columns = [Column(metric, metric_kind(metric)), *(Column(n, kind) for n, kind in SIGNIFICANCE_COLUMNS.values())]
        note, warning = _significance_note(sig, setting)
        tables.append(Table(f"sig-{spec.name}-{setting}", f"{spec.name}: {setting} {metric}, significance", shown,
                            columns, groups=_groups(ran, list(shown.index)), note=note, warning=warning,
                            marks={(label, "tier") for label in sig.index[sig["tier"] == 1]}, order_by=metric))
    return tables


def _language_tables(spec: TaskSpec, runs: dict[str, Run], order: list[str]) -> list[Table]:
    metric = spec.main_metric.partition(".")[2]
    tables = []
    for setting in (s for s in SETTINGS if s in spec.settings):
        langs = per_language(runs, setting, metric).reindex(order).dropna(how="all")
        if langs.empty:
            continue
        note = "cross: each query language first averaged over candidate languages." if setting == "cross" else ""
        tables.append(Table(f"lang-{spec.name}-{setting}", f"{spec.name}: {setting} {metric} per query language",
                            langs, [Column(str(c), metric_kind(metric)) for c in langs.columns],
                            groups=_groups(runs, list(langs.index)), note=note))
    return tables


def _mean_frame(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames).groupby(level=0).mean() if len(frames) > 1 else frames[0]


def _figures(spec: TaskSpec, runs: dict[str, Run], groups: dict[str, list[str]]) -> list[Figure]:
    """Per configuration (seeds averaged): the language x language mAP heatmap, then rank distance and
    same-language share per query language as grouped bars."""
    figures = []
    for group, members in groups.items():
        matrices = [pd.DataFrame(runs[m].result.bias["map_matrix"]) for m in members
                    if "map_matrix" in runs[m].result.bias]
        if matrices:
            matrix = _mean_frame(matrices).T.to_dict(orient="index")
            seeds = f" (mean of {len(matrices)} seeds)" if len(matrices) > 1 else ""
            figures.append(Figure(f"{group}{seeds}: mAP by query (rows) x candidate language (columns)",
                                  plots.heatmap({q: {c: v for c, v in row.items() if pd.notna(v)}
                                                 for q, row in matrix.items()}, f"{group} on {spec.name}")))
    palette = plots.colours(list(groups))
    for key, title, decimals in ((RD, "rank distance per query language (multi; lower = less language bias)", 1),
                                 (SAME_LANG, "same-language share of the top 10 per query language (multi)", 3)):
        series = {}
        for group, members in groups.items():
            values = [pd.Series({k: v for k, v in runs[m].result.bias[key].items() if k != MACRO}) for m in members
                      if key in runs[m].result.bias]
            if values:
                series[group] = pd.concat(values, axis=1).mean(axis=1)
        if series:
            frame = pd.DataFrame(series)
            figures.append(Figure(f"{spec.name}: {title}", plots.bars(frame, palette, f"{spec.name}: {title}",
                                                                        decimals),
                                  {g: palette[g] for g in frame.columns}))
    return figures


def _section(spec: TaskSpec, runs: dict[str, Run], significance: _Significance) -> Section:
    board = _leaderboard_table(spec, runs)
    order = [label for row in board.rows() for label in row.runs]  # every table in the leaderboard's row order
    tables = [board, *_significance_tables(spec, runs, board, significance, order),
              *_language_tables(spec, runs, order)]
    versions = {(run.result.task.version, run.result.data_sha256) for run in runs.values()}
    notes = [f"Models were evaluated on {len(versions)} different task versions / data sha256 values: "
             "their rows are not strictly comparable."] if len(versions) > 1 else []
    return Section(spec, runs, tables, _figures(spec, runs, _groups(runs, order)), notes)


def _robustness(results: list[ResultFile]) -> list[Table]:
    """Per general-domain task with domain splits: models x domains, each cell the drop (general - domain score,
    multi mAP), seeds folded; the configuration's worst domain and spread (from `robustness_table`) beside."""
    if not any(r.task.domain for r in results):
        return []
    paired = paired_scores(results)
    if paired.empty:
        return []
    per_config = robustness_table(results).groupby(["model", "general"])[["worst_domain", "spread"]].first()
    tables = []
    for general, part in paired.groupby("general", sort=True):
        drops = part.pivot_table(index="run", columns="domain", values="drop", aggfunc="first", dropna=False)
        frame = pd.concat([part.groupby("run")["general_score"].first().rename("general score"), drops], axis=1)
        frame["worst domain"] = frame["spread"] = float("nan")
        frame = frame.astype({"worst domain": object}).rename_axis("model")
        groups = {model: sorted(runs) for model, runs in part.groupby("model")["run"].unique().items()}
        values: dict[tuple[str, str], object] = {}
        for model in groups:
            worst, spread = per_config.loc[(model, general)]
            values[(model, "worst domain")], values[(model, "spread")] = worst, spread
        columns = [Column("general score"), *(Column(str(d), "drop") for d in drops.columns),
                   Column("worst domain", "group_text"), Column("spread", "group_score")]
        tables.append(Table(f"robustness-{general}", f"robustness on {general}: drop = general - domain score "
                            "(multi map; lower = more robust)", frame, columns, groups=groups, group_values=values,
                            note="A domain's pool is smaller than the general task's, which alone makes it easier: a "
                                 "drop mixes domain shift with pool size; compare drops across models. Worst domain "
                                 "and spread (highest - lowest domain score) are of the seeds' mean scores.",
                            order_by="general score"))
    return tables


def _models(by_task: dict[str, dict[str, Run]]) -> list[Model]:
    first: dict[str, tuple[Run, list[str]]] = {}
    for task, runs in by_task.items():
        for run in runs.values():
            first.setdefault(run.result.model.name, (run, []))[1].append(task)
    return [Model(run.anchor, name, run.group, run.result.model.kind, run.result.model.fingerprint,
                  run.result.model.card, model_info(run.result.model.card), tasks)
            for name, (run, tasks) in sorted(first.items(), key=lambda item: (item[1][0].group, item[0]))]


def build(results: list[ResultFile], n_resamples: int = 2000, seed: int = 0,
          cache: SignificanceCache | None = None) -> Report:
    """Every task's section, the summary across tasks, robustness and models. `cache`: where significance tables
    are kept (default: the user's cache folder)."""
    by_task = _by_task(results)
    significance = _Significance(cache or SignificanceCache(), n_resamples, seed)
    sections = [_section(max((run.result for run in runs.values()), key=lambda r: len(r.task.languages)).task,
                         runs, significance) for runs in by_task.values()]
    per_run: dict[str, tuple[str, list[ResultFile]]] = {}
    for runs in by_task.values():
        for label, run in runs.items():
            per_run.setdefault(label, (run.group, []))[1].append(run.result)
    data = summary_data([s.spec for s in sections], per_run)
    cards = {label: results_[0].model.card for label, (_, results_) in per_run.items()}
    return Report(sections, summary_table(data, cards), data, _robustness(results), _models(by_task), n_resamples,
                  seed)


def tasks_table(sections: list[Section]) -> Table:
    """The tasks with their family, domain, languages, license, data source and citation (for the exports; the
    page lists the same with links)."""
    rows = {s.spec.name: {"family": s.spec.family, "domain": s.spec.domain,
                          "languages": " ".join(s.spec.languages), "models": len(s.runs), "license": s.spec.license,
                          "source": s.source[1] or s.source[0], "citation": s.spec.citation or None}
            for s in sections}
    frame = pd.DataFrame.from_dict(rows, orient="index").rename_axis("task")
    columns = [Column(c, "count" if c == "models" else "text") for c in frame.columns]
    return Table("tasks", "tasks", frame, columns, row_header="task")


def json_script(data: Any) -> Markup:
    """JSON for a `<script type="application/json">` block: `<`, `>` and `&` escaped, so that no string in it can
    close the block (a model named `</script>...`)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def read(dirs: list[Path], strict: bool = False, on_skip: Callable[[str], None] = log.warning) -> list[ResultFile]:
    """The results under `dirs`. An unreadable results file is handed to `on_skip` (its path and the reason) and
    left out, so one bad file does not take the whole leaderboard down; with `strict` it is an error."""
    return collect(dirs, on_error=None if strict else lambda exc: on_skip(f"skipped {exc}"))
