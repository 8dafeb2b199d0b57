"""`xbench run` and `xbench models`: evaluate a model, and list the built-in ones."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import click

from xbench.api import plan, reproduce_command, run_tasks
from xbench.cli.common import (
    EXIT_NOTHING_RAN,
    EXIT_TASK_FAILED,
    EXIT_USER_ERROR,
    CommaList,
    TaskPath,
    cache_option,
    check_writable,
    device_option,
    echo_json,
    json_option,
    status,
    table,
    tasks_dir_option,
    user_errors,
    verbosity,
)
from xbench.errors import XbenchError
from xbench.evaluation.run import Outcome
from xbench.models.builtins import quantized
from xbench.models.registry import ALIASES, LoadOptions, Speed, entries, resolve
from xbench.paths import default_cache_root
from xbench.results.store import load
from xbench.scoring.aggregate import macro
from xbench.tasks.registry import Task
from xbench.tasks.spec import SETTINGS, Setting

EXIT_CODES = ("Exit codes: 0 every task ran (done or up to date; tasks whose data is not here are skipped), "
              f"{EXIT_TASK_FAILED} a task failed (the others ran), {EXIT_USER_ERROR} bad input (nothing ran), "
              f"{EXIT_NOTHING_RAN} nothing ran (every task skipped: data not here).")
# table column -> the macro average it shows (`setting.metric`, the key in --json); "main" is the task's main metric
SCORES = {"mAP mono": "mono.map", "mAP cross": "cross.map", "mAP multi": "multi.map",
          "R@10 multi": "multi.recall@10", "rank dist": "multi.rank_distance", "main": "main"}
COLUMNS = ("task", "status", *SCORES)


@click.group("models", invoke_without_command=True)
@cache_option
@json_option
@click.pass_context
def models_cmd(ctx: click.Context, cache_dir: Path | None, as_json: bool) -> None:
    """List the built-in models and whether each is ready (`xbench models build NAME` prepares one)."""
    ctx.obj = cache_dir or default_cache_root()
    if ctx.invoked_subcommand is not None:
        return
    rows: list[dict[str, Any]] = [
        {"name": e.name, "state": "ready" if e.ready(ctx.obj) else "built on first use", "languages": e.languages,
         "description": e.description, "aliases": [a for a, target in ALIASES.items() if target == e.name]}
        for e in entries().values()]
    if as_json:
        echo_json(rows)
        return
    click.echo(table(("name", "state", "langs", "description"),
                     [(r["name"] + "".join(f" (= {a})" for a in r["aliases"]), r["state"], r["languages"],
                       r["description"]) for r in rows]))
    status("Any local sentence-transformers or transformers folder works too (--model PATH).")


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


@click.command("run", epilog=EXIT_CODES)
@click.option("--model", "model_name", required=True,
              help="A built-in name (`xbench models`), a local model folder, mteb:NAME, or a hub id (online).")
@click.option("--name", default=None,
              help="The model's name in results and on the leaderboard (default: the built-in name; for a folder, "
                   "its name plus a short fingerprint, e.g. me5-small@3f2a9c1d; a hub id as given).")
@click.option("--tasks", "task_names", type=CommaList(metavar="all|NAME,NAME..."), default="all", show_default=True)
@click.option("--settings", type=CommaList(SETTINGS), default=",".join(SETTINGS), show_default=True)
@click.option("--output", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@device_option
@click.option("--pooling", type=click.Choice(["mean", "cls"]), default=None,
              help="Pooling for a plain transformers folder (default mean).")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32", show_default=True,
              help="Encoder precision (float16 on a GPU only); part of the cache key.")
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="Run the model's quantized variant, a model of its own (CPU; pip install 'xbench[onnx]'): "
                   "--model me5-small --quantize int8 is the built-in me5-small-int8.")
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
@json_option
@user_errors
def run_cmd(model_name: str, name: str | None, task_names: tuple[str, ...], settings: tuple[Setting, ...],
            output: Path, batch_size: int, device: str, pooling: str | None, dtype: str, quantize: str | None,
            devices: tuple[str, ...],
            ray_address: str | None, ray_actors: int, languages: tuple[str, ...], force: bool, allow_overlap: bool,
            data_dirs: tuple[tuple[str, Path], ...], cache_dir: Path | None, tasks_dirs: tuple[Path, ...],
            as_json: bool) -> None:
    """Evaluate one model on the chosen tasks; writes OUTPUT/<model>/<task>.json.

    Each task's progress goes to stderr; a table of its scores (macro averages: mAP per setting, multi R@10 and
    rank distance, the main score) ends the run on stdout, or with --json one JSON document. A --languages subset
    is written beside the full run, as OUTPUT/<model>/<task>.<lang>+<lang>.json. Results of another model with
    the same name are never replaced without --force; every results file stores the command that reproduces it."""
    if quantize:
        model_name = quantized(model_name, quantize)
    chosen = plan(task_names, tasks_dirs=tasks_dirs, languages=languages, data_dirs=dict(data_dirs))
    check_writable(output)
    speed = Speed(dtype=dtype, devices=devices, ray=ray_address, ray_actors=ray_actors)
    retriever = resolve(model_name, cache_root=cache_dir or default_cache_root(), device=device,
                        batch_size=batch_size, pooling=pooling, speed=speed, name=name)

    def command(task: Task) -> str:
        return reproduce_command(model_name, task, chosen, settings=settings, name=name, pooling=pooling,
                                 dtype=dtype, allow_overlap=allow_overlap)

    rows = []
    for outcome in run_tasks(retriever, chosen, settings=settings, output=output, command=command, device=device,
                             force=force, allow_overlap=allow_overlap):
        rows.append(_row(outcome))
        _report_progress(outcome)
    code = exit_code([o["status"] for o in rows])
    if as_json:
        echo_json({"model": retriever.info.name, "fingerprint": retriever.info.fingerprint, "output": str(output),
                   "exit_code": code, "tasks": rows})
    else:
        click.echo(table(COLUMNS, [[r["task"], r["status"], *(_cell(_score(r, k)) for k in SCORES.values())]
                                   for r in rows], right=COLUMNS[2:]))
        click.echo(_summary_line(rows))
    if code:
        sys.exit(code)


def exit_code(statuses: list[str]) -> int:
    """0 when every task ran or was skipped for missing data (some ran), 1 when one failed, 3 when none ran."""
    if "failed" in statuses:
        return EXIT_TASK_FAILED
    if all(s == "skipped" for s in statuses):
        return EXIT_NOTHING_RAN
    return 0


def _row(outcome: Outcome) -> dict[str, Any]:
    """One task of `xbench run --json` (and of the table): status, where, main scores, counts and timings."""
    row: dict[str, Any] = {"task": outcome.task, "status": outcome.status,
                           "path": str(outcome.path) if outcome.path else None, "message": outcome.message or None,
                           "main_metric": None, "main_score": None, "scores": {}, "counts": outcome.counts,
                           "timings": {k: round(v, 3) for k, v in outcome.timings.items()}}
    if outcome.path is not None:
        result = load(outcome.path)
        row["main_metric"], row["main_score"] = result.task.main_metric, result.main_score
        for key in SCORES.values():
            setting, _, metric = key.partition(".")
            value = macro(result.summary, setting, metric)
            if not math.isnan(value):
                row["scores"][key] = value
    return row


def _score(row: dict[str, Any], key: str) -> float | None:
    return row["main_score"] if key == "main" else row["scores"].get(key)


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.3f}"


def _report_progress(outcome: Outcome) -> None:
    """The task's line on stderr as it finishes; -v adds counts and timings."""
    line = f"{outcome.task}: {outcome.status}" + (f" -> {outcome.path}" if outcome.path else "")
    if outcome.status == "skipped":
        line += f": {outcome.message}"
    if verbosity() > 0 and outcome.counts:
        line += " (" + ", ".join(f"{k} {v}" for k, v in outcome.counts.items()) + ")"
    if verbosity() > 0 and outcome.timings:
        line += " [" + ", ".join(f"{k} {v:.1f}" for k, v in outcome.timings.items()) + "]"
    if outcome.status == "failed":
        click.echo(f"error: task {outcome.task}: {outcome.message}", err=True)
        return
    status(line)
    if outcome.status == "done" and outcome.message:  # the loader's notes (also stored in the results)
        status("  note: " + outcome.message.replace("\n", "\n  note: "))


def _summary_line(rows: list[dict[str, Any]]) -> str:
    failed = [r["task"] for r in rows if r["status"] == "failed"]
    skipped = [r["task"] for r in rows if r["status"] == "skipped"]
    return (f"{len(rows) - len(failed) - len(skipped)}/{len(rows)} tasks ran"
            + (f"; skipped (data not here): {', '.join(skipped)}" if skipped else "")
            + (f"; failed: {', '.join(failed)}" if failed else ""))
