"""`xbench validate`, `xbench schema`, `xbench submit`, `xbench merge`: results files in and out."""

from __future__ import annotations

from pathlib import Path

import click

from xbench.cli.common import TaskPath, echo_json, json_option, out_path, tasks_dir_option, user_errors, write_out
from xbench.provenance import command_line
from xbench.results.merge import merge
from xbench.results.schema import json_schema
from xbench.results.store import load, save
from xbench.results.submit import submit
from xbench.results.validate import local_tasks, validate

data_dir_option = click.option("--data-dir", "data_dirs", type=TaskPath(), multiple=True,
                               help="Data a task cannot ship, as for `xbench run` (e.g. miracl=PATH; repeatable).")


@click.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@tasks_dir_option
@data_dir_option
@json_option
@user_errors
def validate_cmd(files: tuple[Path, ...], tasks_dirs: tuple[Path, ...], data_dirs: tuple[tuple[str, Path], ...],
                 as_json: bool) -> None:
    """Check results files against the schema and their aggregates against their per-query ranks.

    Each file is also checked against the task it names, where that task (built-in or from --tasks-dir) and its
    data are here: exactly its slices, queries, relevant sets, grades and pool sizes."""
    tasks = local_tasks(tasks_dirs, dict(data_dirs))
    checked = [(f, validate(f, tasks)) for f in files]
    if as_json:
        echo_json([{"file": str(f), "outcome": outcome} for f, outcome in checked])
        return
    for f, outcome in checked:
        click.echo(f"{f}: {outcome}")


@click.command("schema")
@click.option("--out", type=out_path(), default=Path("-"), show_default=True,
              help="Write here (atomically); - is stdout.")
@user_errors
def schema_cmd(out: Path) -> None:
    """Print the results JSON Schema (generated from the pydantic model)."""
    write_out(out, json_schema())


@click.command("submit")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
@click.option("--replace", is_flag=True, help="Overwrite results already there for the same (model, task).")
@tasks_dir_option
@data_dir_option
@json_option
@user_errors
def submit_cmd(files: tuple[Path, ...], results_dir: Path, replace: bool, tasks_dirs: tuple[Path, ...],
               data_dirs: tuple[tuple[str, Path], ...], as_json: bool) -> None:
    """Check results files (schema, aggregates, task spec, data sha256, clashes) and add them all, or none."""
    accepted = submit(list(files), results_dir, tasks_dirs, replace, dict(data_dirs))
    if as_json:
        echo_json([{"file": str(source), "accepted": str(target)} for source, target in accepted])
        return
    for source, target in accepted:
        click.echo(f"{source}: accepted -> {target}")


@click.command("merge")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The merged results file (e.g. results/me5-small/miracl.json).")
@click.option("--order", default=None, metavar="LANG,LANG...",
              help="Language order of the merged file (default: the order the files' languages come in).")
@user_errors
def merge_cmd(files: tuple[Path, ...], out: Path, order: str | None) -> None:
    """Merge results files of one model and task run language by language into one file with the macro average.

    For tasks whose corpus is streamed (MIRACL): e.g. `--languages sw` on one machine and `--languages yo` on
    another. The files must hold one model (fingerprint), one task version and disjoint languages."""
    loaded = [(str(f), load(f)) for f in files]
    langs = order.split(",") if order else list(dict.fromkeys(lang for _, r in loaded for lang in r.task.languages))
    merged = merge(loaded, langs, command_line("merge", *map(str, files), options=[("--out", str(out))]))
    save(merged, out)
    click.echo(f"{out}: {merged.task.name} on {len(merged.task.languages)} languages, main score "
               f"{merged.main_score if merged.main_score is not None else '-'}")
