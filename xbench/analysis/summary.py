"""The front page's summary across tasks: per model, mean mAP per setting and mean rank distance over the selected
tasks, and a Borda rank (as MTEB shows Rank and Mean (Task)).

`summary_data` keeps what the summary is computed from, per task (family, domain, languages, settings) and per run
(mAP per setting and query language, multi rank distance per query language). `summarise` computes it for a
`Selection`; the page embeds the same data as JSON and its script (`templates/report.js`, `summarise`) repeats this
arithmetic, step for step, when the reader changes the filters. Keep the two in step.

For a selection of languages, a task's score is its macro score when every one of its query languages is selected,
else the mean of the selected ones' scores; a task with none of them is left out. A model's mean over tasks is shown
only when it has every selected task of that setting (a mean over fewer tasks would rank it on easier ones). The
Borda rank counts, for every selected (task, setting), how many configurations score below (ties count half); seeds
are first averaged per task. Rank distances grow with the candidate pool: their mean weighs big pools most.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from xbench.analysis.cards import MODEL_FIELDS, model_info
from xbench.analysis.tables import Column, Table
from xbench.results.schema import ResultFile
from xbench.scoring.aggregate import MACRO, RD
from xbench.tasks.spec import SETTINGS, TaskSpec

METRIC = "map"
GENERAL = "general"  # the domain filter's name for tasks without a domain
RANK, TASKS = "rank (Borda)", "tasks"
Scores = dict[str, float]  # query language | "macro" -> value


@dataclass(frozen=True)
class Selection:
    """What the summary averages over; None = everything."""

    families: frozenset[str] | None = None
    domains: frozenset[str] | None = None
    languages: frozenset[str] | None = None
    settings: frozenset[str] | None = None

    def tasks(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        return [t for t in data["tasks"]
                if (self.families is None or t["family"] in self.families)
                and (self.domains is None or t["domain"] in self.domains)
                and (self.languages is None or any(lang in self.languages for lang in t["langs"]))]

    def shown_settings(self) -> list[str]:
        return [s for s in SETTINGS if self.settings is None or s in self.settings]


def task_info(spec: TaskSpec) -> dict[str, Any]:
    return {"name": spec.name, "family": spec.family, "domain": spec.domain or GENERAL, "langs": list(spec.languages),
            "settings": list(spec.settings)}


def _by_language(summary: dict[str, dict[str, float]], metric: str) -> Scores:
    return {lang: values[metric] for lang, values in summary.items() if metric in values}


def summary_data(tasks: list[TaskSpec], runs: dict[str, tuple[str, list[ResultFile]]]) -> dict[str, Any]:
    """The JSON the summary is computed from. `runs`: run label -> (configuration label, its results)."""
    def run(label: str, group: str, results: list[ResultFile]) -> dict[str, Any]:
        return {"label": label, "group": group,
                "scores": {r.task.name: {s: _by_language(by_lang, METRIC) for s, by_lang in r.summary.items()}
                           for r in results},
                "rd": {r.task.name: _by_language(r.summary["multi"], RD) for r in results if "multi" in r.summary}}

    return {"tasks": [task_info(spec) for spec in tasks],
            "runs": [run(label, group, results) for label, (group, results) in runs.items()]}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _pick(by_lang: Scores | None, task: dict[str, Any], languages: frozenset[str] | None) -> float | None:
    """A task's value under the language selection: macro with every language, else the selected ones' mean."""
    if by_lang is None:
        return None
    chosen = [lang for lang in task["langs"] if languages is None or lang in languages]
    if len(chosen) == len(task["langs"]):
        return by_lang.get(MACRO)
    values = [by_lang[lang] for lang in chosen if lang in by_lang]
    return _mean(values) if values else None


def _over_tasks(values: list[float | None]) -> float | None:
    """The mean over tasks, only when every task has a value."""
    return _mean([v for v in values if v is not None]) if values and None not in values else None


def borda(per_task: dict[str, dict[tuple[str, str], float]]) -> dict[str, int]:
    """Rank of each configuration by Borda count over (task, setting) voters: per voter, a point for each
    configuration scoring lower and half a point for each tie; rank 1 = most points (ties share a rank)."""
    points: dict[str, float] = {}
    voters = {voter for scores in per_task.values() for voter in scores}
    for voter in sorted(voters):
        scored = {g: scores[voter] for g, scores in per_task.items() if voter in scores}
        for g, value in scored.items():
            lower = sum(v < value for v in scored.values())
            ties = sum(v == value for v in scored.values()) - 1
            points[g] = points.get(g, 0.0) + lower + ties / 2
    return {g: 1 + sum(p > mine for p in points.values()) for g, mine in points.items()}


def summarise(data: dict[str, Any], selection: Selection = Selection()) -> tuple[pd.DataFrame, dict[str, int]]:
    """Per run: mean mAP per setting, mean rank distance, number of tasks (over the selection); per configuration:
    its Borda rank."""
    tasks = selection.tasks(data)
    settings = selection.shown_settings()
    rows: dict[str, dict[str, float | None]] = {}
    per_group: dict[str, dict[tuple[str, str], list[float]]] = {}
    for run in data["runs"]:
        row: dict[str, float | None] = {}
        values = {s: {t["name"]: _pick(run["scores"].get(t["name"], {}).get(s), t, selection.languages)
                      for t in tasks if s in t["settings"]} for s in settings}
        for s, by_task in values.items():
            row[f"{s} {METRIC}"] = _over_tasks(list(by_task.values()))
        with_multi = [t for t in tasks if "multi" in t["settings"]] if "multi" in settings else []
        row[f"multi {RD}"] = _over_tasks([_pick(run["rd"].get(t["name"]), t, selection.languages) for t in with_multi])
        row[TASKS] = sum(t["name"] in run["scores"] for t in tasks)
        rows[run["label"]] = row
        group = per_group.setdefault(run["group"], {})
        for s, by_task in values.items():
            for task, value in by_task.items():
                if value is not None:
                    group.setdefault((task, s), []).append(value)
    means = {g: {voter: _mean(v) for voter, v in scores.items()} for g, scores in per_group.items()}
    return pd.DataFrame.from_dict(rows, orient="index"), borda(means)


SUMMARY_COLUMNS = [Column(RANK, "rank"), *(Column(f"{s} {METRIC}", "score", s) for s in SETTINGS),
                   Column(f"multi {RD}", "rank_distance", "multi"), Column(TASKS, "count"),
                   *(Column(name, "link" if name == "link" else "text") for name in MODEL_FIELDS)]


def summary_table(data: dict[str, Any], cards: dict[str, dict[str, Any]], selection: Selection = Selection()) -> Table:
    """The summary as a table (the page's initial state, and the exports'): `cards` are run label -> model card."""
    frame, ranks = summarise(data, selection)
    groups: dict[str, list[str]] = {}
    for run in data["runs"]:
        groups.setdefault(run["group"], []).append(run["label"])
    for name in MODEL_FIELDS:
        frame[name] = [model_info(cards[label])[name] for label in frame.index]
    frame.insert(0, RANK, float("nan"))
    frame = frame.reindex(columns=[c.name for c in SUMMARY_COLUMNS])
    chosen = selection.tasks(data)
    note = (f"Over {len(chosen)} of {len(data['tasks'])} tasks. Mean {METRIC} per setting over the tasks of that "
            "setting (shown when a model has them all); rank distance: mean over the multi tasks (big pools weigh "
            "most); Borda rank over every (task, setting): a point per configuration scoring lower, half per tie. "
            "Seeds of one training configuration: mean ± sd (the rank: of their per-task means).")
    return Table("summary", "summary across tasks", frame, SUMMARY_COLUMNS, groups=groups,
                 group_values={(g, RANK): rank for g, rank in ranks.items()}, note=note, order_by=RANK)
