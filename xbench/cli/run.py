"""`xbench run`, `xbench tasks`, `xbench models`: evaluate a model, and list what there is to evaluate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import pandas as pd

from xbench.cli.common import (
    EXIT_USER_ERROR,
    CommaList,
    TaskPath,
    cache_option,
    check_writable,
    device_option,
    tasks_dir_option,
    user_errors,
)
from xbench.errors import DataUnavailable, XbenchError
from xbench.evaluation.run import run_task
from xbench.models.registry import LoadOptions, Speed, entries, resolve
from xbench.paths import default_cache_root
from xbench.provenance import command_line
from xbench.tasks.registry import Task, discover, on_languages, select, with_data_dirs
from xbench.tasks.spec import SETTINGS, Setting


@click.command("tasks")
@tasks_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--family", default=None, help="Only tasks of this family (lareqa, bitext, exam-qa, ...).")
@click.option("--domain", default=None, help="Only tasks of this domain (e.g. sports, news); 'none' = no domain.")
@click.option("--language", default=None, help="Only tasks that include this language code (e.g. de).")
@user_errors
def tasks_cmd(tasks_dirs: tuple[Path, ...], as_json: bool, family: str | None, domain: str | None,
              language: str | None) -> None:
    """List every registered task, its size and whether its data is here."""
    rows = []
    for task in sorted(_filter_tasks(list(discover(tasks_dirs).values()), family, domain, language),
                       key=lambda t: (t.spec.family, t.spec.domain is not None, t.name)):
        spec = task.spec
        row: dict[str, object] = {
            "name": spec.name, "family": spec.family, "domain": spec.domain, "languages": spec.languages,
            "settings": spec.settings, "license": spec.license, "available": task.data_available(),
            "queries": None, "candidates": None}
        if row["available"]:
            try:
                data = task.load()
            except DataUnavailable:  # e.g. MIRACL before `xbench data miracl`: listed as not here
                row["available"] = False
            else:
                row["queries"], row["candidates"] = len(data.queries), len(data.candidates)
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = pd.DataFrame(rows)
    table["languages"] = table["languages"].map(lambda v: f"{len(v)}: {' '.join(v)}")
    table["settings"] = table["settings"].map(",".join)
    table["domain"] = table["domain"].fillna("-")
    table[["queries", "candidates"]] = table[["queries", "candidates"]].astype("Int64")
    click.echo(table.to_string(index=False))


def _filter_tasks(tasks: list[Task], family: str | None, domain: str | None, language: str | None) -> list[Task]:
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


@click.group("models", invoke_without_command=True)
@cache_option
@click.pass_context
def models_cmd(ctx: click.Context, cache_dir: Path | None) -> None:
    """List the built-in models and whether each is ready (`xbench models build NAME` prepares one)."""
    ctx.obj = cache_dir or default_cache_root()
    if ctx.invoked_subcommand is None:
        for entry in entries().values():
            state = "ready" if entry.ready(ctx.obj) else "built on first use"
            click.echo(f"{entry.name:18s} {state:18s} langs {entry.languages:24s} {entry.description}")
        click.echo("default            = me5-small. Any local sentence-transformers or transformers folder works too.")


@models_cmd.command("build")
@click.argument("name")
@device_option
@click.pass_obj
@user_errors
def models_build(cache_root: Path, name: str, device: str) -> None:
    """Build (or train, for the trained built-ins) a built-in model into the model cache now."""
    buildable = {n: e.build for n, e in entries().items() if e.build is not None}
    build = buildable.get(name)
    if build is None:
        raise XbenchError(f"models build {name}: not a built-in model that is built or trained here; use one of "
                          f"{', '.join(buildable)}.")
    click.echo(f"{name} ready at {build(LoadOptions(cache_root, device=device))}")


@click.command("run")
@click.option("--model", "model_name", required=True,
              help="A built-in name (`xbench models`), a local model folder, mteb:NAME, or a hub id (online).")
@click.option("--tasks", "task_names", type=CommaList(metavar="all|NAME,NAME..."), default="all", show_default=True)
@click.option("--settings", type=CommaList(SETTINGS), default=",".join(SETTINGS), show_default=True)
@click.option("--output", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@device_option
@click.option("--pooling", type=click.Choice(["mean", "cls"]), default=None,
              help="Pooling for a plain transformers folder (default mean).")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32", show_default=True,
              help="Encoder precision (float16 on a GPU only); part of the cache key.")
@click.option("--devices", type=CommaList(metavar="DEV,DEV..."), default="",
              help="Encode with one process per listed torch device, e.g. cuda:0,cuda:1 or cpu,cpu.")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Encode on a Ray cluster (pip install 'xbench[ray]'): auto, ray://HOST:PORT or local. "
                   "--cache-dir must be on a filesystem every worker shares.")
@click.option("--ray-actors", type=click.IntRange(min=1), default=1, show_default=True,
              help="Ray actors (one per GPU with --device cuda).")
@click.option("--languages", type=CommaList(metavar="LANG,LANG..."), default="",
              help="Evaluate each task on these of its languages only (a quicker run; recorded in the results).")
@click.option("--force", is_flag=True,
              help="Recompute tasks whose results are already up to date, and replace results of another model "
                   "with the same name (refused without it).")
@click.option("--allow-overlap", is_flag=True,
              help="Evaluate a model trained by xbench even where its training texts overlap the task (recorded).")
@click.option("--data-dir", "data_dirs", type=TaskPath(), multiple=True,
              help="Data a task cannot ship, e.g. miracl=PATH holding PATH/<lang>/corpus.jsonl (repeatable).")
@cache_option
@tasks_dir_option
@user_errors
def run_cmd(model_name: str, task_names: tuple[str, ...], settings: tuple[Setting, ...], output: Path,
            batch_size: int, device: str, pooling: str | None, dtype: str, devices: tuple[str, ...],
            ray_address: str | None, ray_actors: int, languages: tuple[str, ...], force: bool, allow_overlap: bool,
            data_dirs: tuple[tuple[str, Path], ...], cache_dir: Path | None, tasks_dirs: tuple[Path, ...]) -> None:
    """Evaluate one model on the chosen tasks; writes OUTPUT/<model>/<task>.json.

    A --languages subset is written beside the full run, as OUTPUT/<model>/<task>.<lang>+<lang>.json. Results of
    another model with the same name are never replaced without --force."""
    pool = with_data_dirs(select(discover(tasks_dirs), task_names), dict(data_dirs))
    full = {t.name: t.spec.languages for t in pool}
    chosen = on_languages(pool, languages)
    check_writable(output)
    speed = Speed(dtype=dtype, devices=devices, ray=ray_address, ray_actors=ray_actors)
    retriever = resolve(model_name, cache_root=cache_dir or default_cache_root(), device=device,
                        batch_size=batch_size, pooling=pooling, speed=speed)
    outcomes = []
    for task in chosen:
        command = command_line("run", options=[
            ("--model", model_name), ("--tasks", task.name), ("--settings", ",".join(settings)),
            ("--pooling", pooling), ("--dtype", dtype if dtype != "float32" else None),
            ("--languages", ",".join(task.spec.languages) if languages else None),
            ("--allow-overlap", allow_overlap),
            ("--data-dir", f"{task.name}={task.local_data}" if task.local_data else None)])
        outcome = run_task(retriever, task, settings=list(settings), output=output, command=command, device=device,
                           force=force, allow_overlap=allow_overlap, full_languages=full[task.name])
        outcomes.append(outcome)
        click.echo(f"{outcome.task}: {outcome.status}" + (f" -> {outcome.path}" if outcome.path else "")
                   + (f" ({outcome.counts})" if outcome.counts else "")
                   + (f": {outcome.message}" if outcome.status == "skipped" else ""))
        if outcome.status == "done" and outcome.message:  # the loader's notes (also stored in the results)
            click.echo("  note: " + outcome.message.replace("\n", "\n  note: "))
    failed = [o for o in outcomes if o.status == "failed"]
    skipped = [o for o in outcomes if o.status == "skipped"]
    for o in failed:
        click.echo(f"error: task {o.task}: {o.message}", err=True)
    click.echo(f"{len(outcomes) - len(failed) - len(skipped)}/{len(outcomes)} tasks ran"
               + (f"; skipped (data not here): {', '.join(o.task for o in skipped)}" if skipped else "")
               + (f"; failed: {', '.join(o.task for o in failed)}" if failed else ""))
    if failed:
        sys.exit(EXIT_USER_ERROR)
