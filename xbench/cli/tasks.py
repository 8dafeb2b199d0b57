"""`xbench tasks`: what there is to evaluate, from the specs and the counts manifests alone (no data is loaded,
nor pandas imported), so the list comes at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from xbench.cli.common import echo_json, json_option, status, table, tasks_dir_option, user_errors
from xbench.errors import XbenchError
from xbench.tasks.catalog import MISSING, NOT_SHIPPED, TaskRef, describe, discover

UNKNOWN = "?"  # no current counts.json entry (a user task, or a spec edited since its counts were written)
NARROW = ("name", "family", "langs", "settings", "queries", "candidates")
WIDE = ("name", "family", "domain", "settings", "main metric", "queries", "candidates", "languages", "license")


def _size(row: dict[str, Any], key: str) -> object:
    if row[key] is not None:
        return row[key]
    return {"here": UNKNOWN, NOT_SHIPPED: NOT_SHIPPED if key == "candidates" else "-", MISSING: MISSING}[
        str(row["data"])]


@click.command("tasks")
@tasks_dir_option
@json_option
@click.option("--wide", is_flag=True, help="Also the domain, main metric, every language code and the license.")
@click.option("--family", default=None, help="Only tasks of this family (lareqa, bitext, exam-qa, ...).")
@click.option("--domain", default=None, help="Only tasks of this domain (e.g. sports, news); 'none' = no domain.")
@click.option("--language", default=None, help="Only tasks that include this language code (e.g. de).")
@user_errors
def tasks_cmd(tasks_dirs: tuple[Path, ...], as_json: bool, wide: bool, family: str | None, domain: str | None,
              language: str | None) -> None:
    """List every registered task, its size and whether its data is here.

    Sizes come from the counts.json written beside each data folder when its data is built: `?` where there is
    none for the task's current spec and data, `not shipped` where the data cannot ship (MIRACL's passages:
    `xbench data miracl`)."""
    chosen = sorted(_filter_tasks(list(discover(tasks_dirs).values()), family, domain, language),
                    key=lambda t: (t.spec.family, t.spec.domain is not None, t.name))
    rows = [describe(t) for t in chosen]
    if as_json:
        echo_json(rows)
        return
    if wide:
        click.echo(table(WIDE, [(r["name"], r["family"], r["domain"], ",".join(r["settings"]), r["main_metric"],
                                 _size(r, "queries"), _size(r, "candidates"), " ".join(r["languages"]),
                                 r["license"]) for r in rows], right=("queries", "candidates")))
    else:
        click.echo(table(NARROW, [(r["name"], r["family"], len(r["languages"]), ",".join(r["settings"]),
                                   _size(r, "queries"), _size(r, "candidates")) for r in rows],
                         right=("langs", "queries", "candidates")))
    if any(r["queries"] is None and r["data"] == "here" for r in rows):
        status(f"{UNKNOWN}: no counts for the task's current spec and data; `python -m tools.counts --tasks-dir DIR` "
               "(in a checkout) writes them.")


def _filter_tasks(tasks: list[TaskRef], family: str | None, domain: str | None,
                  language: str | None) -> list[TaskRef]:
    """The tasks matching every given filter; none matching is a user error that lists what exists."""
    kept = [t for t in tasks
            if (family is None or t.spec.family == family)
            and (domain is None or (t.spec.domain or "none") == domain)
            and (language is None or language in t.spec.languages)]
    if not kept:
        given = " ".join(f"--{k} {v}" for k, v in (("family", family), ("domain", domain), ("language", language))
                         if v is not None)
        raise XbenchError(
            f"no task matches {given}. Families: "
            f"{sorted({t.spec.family for t in tasks})}; domains: {sorted({t.spec.domain or 'none' for t in tasks})}; "
            f"languages: {sorted({lang for t in tasks for lang in t.spec.languages})}.")
    return kept
