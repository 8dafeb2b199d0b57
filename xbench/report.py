"""`xbench report`: results folders -> one self-contained static HTML page (pandas tables, Jinja2, escaped)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from xbench.errors import XbenchError
from xbench.results import ResultFile, load, write_atomic

COLUMNS = [("mono", "map"), ("cross", "map"), ("multi", "map"), ("mono", "recall@1"), ("cross", "recall@1"),
           ("multi", "recall@10"), ("multi", "rank_distance"), ("multi", "same_lang@10")]


def collect(dirs: list[Path]) -> list[ResultFile]:
    files = sorted(p for d in dirs for p in Path(d).rglob("*.json"))
    if not files:
        raise XbenchError(f"no results files under {', '.join(map(str, dirs))}; run `xbench run` first.")
    return [load(p) for p in files]


def leaderboard(results: list[ResultFile], task: str) -> pd.DataFrame:
    """Models as rows, macro scores per setting as columns, best main score first."""
    rows = []
    for r in (r for r in results if r.task.name == task):
        row = {"model": r.model.name}
        for setting, metric in COLUMNS:
            value = r.summary.get(setting, {}).get("macro", {}).get(metric)
            if value is not None:
                row[f"{setting} {metric}"] = value
        row["command"] = r.run.command
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(table.columns[1], ascending=False) if len(table.columns) > 2 else table


def per_language(results: list[ResultFile], task: str, setting: str = "multi", metric: str = "map") -> pd.DataFrame:
    """Query languages as columns, taken from the data (never a hard-coded list)."""
    rows = {r.model.name: {lang: v.get(metric) for lang, v in r.summary.get(setting, {}).items()}
            for r in results if r.task.name == task}
    return pd.DataFrame.from_dict(rows, orient="index")


def render(dirs: list[Path], out: Path) -> int:
    results = collect(dirs)
    env = Environment(loader=PackageLoader("xbench", "templates"), autoescape=select_autoescape(["html", "j2"]))
    tasks = sorted({r.task.name for r in results})
    sections = [
        {"task": t, "spec": next(r.task for r in results if r.task.name == t),
         "board": leaderboard(results, t), "langs": per_language(results, t)}
        for t in tasks
    ]
    html = env.get_template("report.html.j2").render(sections=sections, zip=zip)
    write_atomic(out, html)
    return len(results)
