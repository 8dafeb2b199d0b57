"""`xbench validate`, `xbench schema`, `xbench submit`: results files in and out."""

from __future__ import annotations

from pathlib import Path

import click

from xbench.cli.common import TaskPath, echo_json, json_option, out_path, tasks_dir_option, user_errors, write_out
from xbench.results.schema import json_schema
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
