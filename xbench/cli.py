"""The `xbench` command line. Every user error is one paragraph on stderr and exit code 2."""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from xbench.errors import XbenchError
from xbench.spec import SETTINGS

EXIT_USER_ERROR = 2


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn XbenchError into a clean message and exit code 2 (no traceback for the user's mistakes)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except XbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper


def _discover(tasks_dirs: tuple[Path, ...]):  # noqa: ANN202
    from xbench.registry import discover

    return discover(tuple(tasks_dirs))


tasks_dir_option = click.option("--tasks-dir", "tasks_dirs", multiple=True, type=click.Path(path_type=Path),
                                help="Extra folder of YAML task specs (repeatable).")
cache_option = click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                            help="Embedding and model cache (default $XBENCH_CACHE or ~/.cache/xbench).")


@click.group()
@click.version_option(package_name="xbench")
def main() -> None:
    """xbench: zero-shot cross-lingual retrieval (mono / cross / multi), language bias and robustness."""


@main.command("tasks")
@tasks_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@user_errors
def tasks_cmd(tasks_dirs: tuple[Path, ...], as_json: bool) -> None:
    """List every registered task, its size and whether its data is here."""
    rows = []
    for task in _discover(tasks_dirs).values():
        spec = task.spec
        row = {"name": spec.name, "family": spec.family, "languages": spec.languages, "settings": spec.settings,
               "license": spec.license, "available": task.data_available(), "queries": None, "candidates": None}
        if row["available"]:
            data = task.load()
            row["queries"], row["candidates"] = len(data.queries), len(data.candidates)
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    import pandas as pd

    table = pd.DataFrame(rows)
    table["languages"] = table["languages"].map(lambda v: f"{len(v)}: {' '.join(v)}")
    table["settings"] = table["settings"].map(",".join)
    click.echo(table.to_string(index=False))


@main.group("models", invoke_without_command=True)
@cache_option
@click.pass_context
def models_cmd(ctx: click.Context, cache_dir: Path | None) -> None:
    """List the built-in models and whether each is ready (`xbench models build NAME` prepares one)."""
    from xbench.models import BUILTINS, default_cache_root

    ctx.obj = cache_dir or default_cache_root()
    if ctx.invoked_subcommand is None:
        for b in BUILTINS.values():
            state = "ready" if b.ready(ctx.obj) else "built on first use"
            click.echo(f"{b.name:10s} {state:20s} langs {b.languages:24s} {b.description}")
        click.echo("default    = me5-small. Any local sentence-transformers or transformers folder works too.")


@models_cmd.command("build")
@click.argument("name", type=click.Choice(["me5-small"]))
@click.pass_obj
@user_errors
def models_build(cache_root: Path, name: str) -> None:
    """Build a built-in model into the model cache now."""
    from xbench.models import build_me5

    click.echo(f"{name} ready at {build_me5(cache_root)}")


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise XbenchError(f"{folder}: results folder is not writable ({exc.strerror}); pass a writable --output.")


@main.command("run")
@click.option("--model", "model_name", required=True,
              help="me5-small | use-m3 | bm25 | default | a local model folder | a hub id (online).")
@click.option("--tasks", "task_names", default="all", show_default=True, help="all or NAME[,NAME...]")
@click.option("--settings", "settings_arg", default=",".join(SETTINGS), show_default=True)
@click.option("--output", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--pooling", type=click.Choice(["mean", "cls"]), default=None,
              help="Pooling for a plain transformers folder (default mean).")
@click.option("--force", is_flag=True, help="Recompute tasks whose results are already up to date.")
@cache_option
@tasks_dir_option
@user_errors
def run_cmd(model_name: str, task_names: str, settings_arg: str, output: Path, batch_size: int, device: str,
            pooling: str | None, force: bool, cache_dir: Path | None, tasks_dirs: tuple[Path, ...]) -> None:
    """Evaluate one model on the chosen tasks; writes OUTPUT/<model>/<task>.json."""
    from xbench.models import default_cache_root, resolve
    from xbench.registry import select
    from xbench.runner import run_task

    settings = [s.strip() for s in settings_arg.split(",") if s.strip()]
    bad = [s for s in settings if s not in SETTINGS]
    if bad or not settings:
        raise XbenchError(f"--settings {settings_arg}: unknown {bad}; use a comma-separated subset of {SETTINGS}.")
    chosen = select(_discover(tasks_dirs), task_names)
    _check_writable(output)
    retriever = resolve(model_name, cache_root=cache_dir or default_cache_root(), device=device,
                        batch_size=batch_size, pooling=pooling)
    outcomes = []
    for task in chosen:
        command = shlex.join(["xbench", "run", "--model", model_name, "--tasks", task.name,
                              "--settings", ",".join(settings)] + (["--pooling", pooling] if pooling else []))
        outcome = run_task(retriever, task, settings=settings, output=output, command=command, device=device,
                           force=force)
        outcomes.append(outcome)
        click.echo(f"{outcome.task}: {outcome.status}" + (f" -> {outcome.path}" if outcome.path else "")
                   + (f" ({outcome.counts})" if outcome.counts else "")
                   + (f": {outcome.message}" if outcome.status == "skipped" else ""))
    failed = [o for o in outcomes if o.status == "failed"]
    skipped = [o for o in outcomes if o.status == "skipped"]
    for o in failed:
        click.echo(f"error: task {o.task}: {o.message}", err=True)
    click.echo(f"{len(outcomes) - len(failed) - len(skipped)}/{len(outcomes)} tasks ran"
               + (f"; skipped (data not here): {', '.join(o.task for o in skipped)}" if skipped else "")
               + (f"; failed: {', '.join(o.task for o in failed)}" if failed else ""))
    if failed:
        sys.exit(EXIT_USER_ERROR)


@main.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@user_errors
def validate_cmd(files: tuple[Path, ...]) -> None:
    """Check results files against the schema and their aggregates against their per-query ranks."""
    from xbench.validate import check_file

    for f in files:
        check_file(f)
        click.echo(f"{f}: valid")


@main.command("schema")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write here instead of stdout.")
def schema_cmd(out: Path | None) -> None:
    """Print the results JSON Schema (generated from the pydantic model)."""
    from xbench.results import json_schema, write_atomic

    if out is None:
        click.echo(json_schema(), nl=False)
    else:
        write_atomic(out, json_schema())


# --- report, submit, compare (issue 6): thin wrappers over xbench.report / xbench.submit ---
resamples_option = click.option("--resamples", type=click.IntRange(min=100), default=2000, show_default=True,
                                help="Resamples for the randomization tests and bootstrap CIs.")
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the resampling.")


@main.command("report")
@click.argument("results_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output file (default reports/index.<html|md|csv|tex>).")
@click.option("--format", "fmt", type=click.Choice(["html", "md", "csv", "latex"]), default="html",
              show_default=True, help="html: the static leaderboard page; md/csv/latex: its tables.")
@resamples_option
@seed_option
@user_errors
def report_cmd(results_dirs: tuple[Path, ...], out: Path | None, fmt: str, resamples: int, seed: int) -> None:
    """Render the results folders (default: results/) into one static HTML page, or its tables."""
    from xbench.report import FORMATS, render

    out = out or Path("reports") / f"index.{FORMATS[fmt]}"
    n = render(list(results_dirs) or [Path("results")], out, fmt=fmt, n_resamples=resamples, seed=seed)
    click.echo(f"wrote {out} ({n} results files)")


@main.command("submit")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
@click.option("--replace", is_flag=True, help="Overwrite results already there for the same (model, task).")
@tasks_dir_option
@user_errors
def submit_cmd(files: tuple[Path, ...], results_dir: Path, replace: bool, tasks_dirs: tuple[Path, ...]) -> None:
    """Check results files (schema, aggregates, task spec, data sha256, clashes) and add them all, or none."""
    from xbench.submit import submit

    for source, target in submit(list(files), results_dir, tasks_dirs, replace):
        click.echo(f"{source}: accepted -> {target}")


@main.command("compare")
@click.argument("a")
@click.argument("b")
@click.option("--task", "task_name", required=True, help="The task both results are on.")
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
              help="Where model names (rather than files) are looked up.")
@click.option("--resamples", type=click.IntRange(min=100), default=9999, show_default=True,
              help="Resamples for the randomization test and bootstrap CI.")
@seed_option
@user_errors
def compare_cmd(a: str, b: str, task_name: str, results_dir: Path, resamples: int, seed: int) -> None:
    """Paired significance test of A vs B (results files or model names) and per-language differences."""
    from xbench.report import compare

    click.echo(compare(a, b, task_name, results_dir, resamples, seed), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
