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
from typing import TYPE_CHECKING, Any

import click

from xbench.errors import DataUnavailable, XbenchError
from xbench.spec import SETTINGS
from xbench.training.config import TrainConfig

if TYPE_CHECKING:
    from xbench.registry import Task

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
@click.option("--family", default=None, help="Only tasks of this family (lareqa, bitext, exam-qa, ...).")
@click.option("--domain", default=None, help="Only tasks of this domain (e.g. sports, news); 'none' = no domain.")
@click.option("--language", default=None, help="Only tasks that include this language code (e.g. de).")
@user_errors
def tasks_cmd(tasks_dirs: tuple[Path, ...], as_json: bool, family: str | None, domain: str | None,
              language: str | None) -> None:
    """List every registered task, its size and whether its data is here."""
    rows = []
    for task in sorted(_filter_tasks(list(_discover(tasks_dirs).values()), family, domain, language),
                       key=lambda t: (t.spec.family, t.spec.domain is not None, t.name)):
        spec = task.spec
        row = {"name": spec.name, "family": spec.family, "domain": spec.domain, "languages": spec.languages,
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
    import pandas as pd

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
            click.echo(f"{b.name:18s} {state:18s} langs {b.languages:24s} {b.description}")
        click.echo("default            = me5-small. Any local sentence-transformers or transformers folder works too.")


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
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32", show_default=True,
              help="Encoder precision (float16 on a GPU only); part of the cache key.")
@click.option("--devices", default="", metavar="DEV,DEV...",
              help="Encode with one process per listed torch device, e.g. cuda:0,cuda:1 or cpu,cpu.")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Encode on a Ray cluster (pip install 'xbench[ray]'): auto, ray://HOST:PORT or local. "
                   "--cache-dir must be on a filesystem every worker shares.")
@click.option("--ray-actors", type=click.IntRange(min=1), default=1, show_default=True,
              help="Ray actors (one per GPU with --device cuda).")
@click.option("--languages", "languages_arg", default="", metavar="LANG,LANG...",
              help="Evaluate each task on these of its languages only (a quicker run; recorded in the results).")
@click.option("--force", is_flag=True, help="Recompute tasks whose results are already up to date.")
@click.option("--allow-overlap", is_flag=True,
              help="Evaluate a model trained by xbench even where its training texts overlap the task (recorded).")
@click.option("--data-dir", "data_dirs", multiple=True, metavar="TASK=PATH",
              help="Data a task cannot ship, e.g. miracl=PATH holding PATH/<lang>/corpus.jsonl (repeatable).")
@cache_option
@tasks_dir_option
@user_errors
def run_cmd(model_name: str, task_names: str, settings_arg: str, output: Path, batch_size: int, device: str,
            pooling: str | None, dtype: str, devices: str, ray_address: str | None, ray_actors: int, force: bool,
            cache_dir: Path | None, tasks_dirs: tuple[Path, ...], allow_overlap: bool = False,
            data_dirs: tuple[str, ...] = (), languages_arg: str = "") -> None:
    """Evaluate one model on the chosen tasks; writes OUTPUT/<model>/<task>.json."""
    from xbench.models import Speed, default_cache_root, resolve
    from xbench.registry import select
    from xbench.runner import run_task

    settings = [s.strip() for s in settings_arg.split(",") if s.strip()]
    bad = [s for s in settings if s not in SETTINGS]
    if bad or not settings:
        raise XbenchError(f"--settings {settings_arg}: unknown {bad}; use a comma-separated subset of {SETTINGS}.")
    chosen = _with_languages(_with_data_dirs(select(_discover(tasks_dirs), task_names), data_dirs), languages_arg)
    _check_writable(output)
    speed = Speed(dtype=dtype, devices=tuple(d.strip() for d in devices.split(",") if d.strip()),
                  ray=ray_address, ray_actors=ray_actors)
    retriever = resolve(model_name, cache_root=cache_dir or default_cache_root(), device=device,
                        batch_size=batch_size, pooling=pooling, speed=speed)
    outcomes = []
    for task in chosen:
        command = shlex.join(["xbench", "run", "--model", model_name, "--tasks", task.name,
                              "--settings", ",".join(settings)] + (["--pooling", pooling] if pooling else [])
                             + (["--dtype", dtype] if dtype != "float32" else [])
                             + (["--languages", ",".join(task.spec.languages)] if languages_arg else [])
                             + (["--allow-overlap"] if allow_overlap else [])
                             + (["--data-dir", f"{task.name}={task.local_data}"] if task.local_data else []))
        outcome = run_task(retriever, task, settings=settings, output=output, command=command, device=device,
                           force=force, allow_overlap=allow_overlap)
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


def _with_languages(chosen: list[Task], languages_arg: str) -> list[Task]:
    """Each task on the `--languages` it has; a task with none of them is an error naming it."""
    from xbench.registry import with_languages

    wanted = [lang.strip() for lang in languages_arg.split(",") if lang.strip()]
    if not wanted:
        return chosen
    known = {lang for t in chosen for lang in t.spec.languages}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise XbenchError(f"--languages {languages_arg}: {', '.join(unknown)} is no language of the chosen tasks; "
                          f"they have {', '.join(sorted(known))}.")
    none = [t.name for t in chosen if not set(wanted) & set(t.spec.languages)]
    if none:
        raise XbenchError(f"--languages {languages_arg}: task(s) {', '.join(none)} have none of these languages; "
                          "drop them from --tasks or add one of their languages (`xbench tasks` lists them).")
    return [with_languages(t, [lang for lang in wanted if lang in t.spec.languages]) for t in chosen]


def _with_data_dirs(chosen: list[Task], data_dirs: tuple[str, ...]) -> list[Task]:
    """Attach each `--data-dir TASK=PATH` to its chosen task (the loader reads it as `options.local_dir`)."""
    from dataclasses import replace

    given: dict[str, Path] = {}
    for arg in data_dirs:
        name, sep, path = arg.partition("=")
        if not sep or not name or not path:
            raise XbenchError(f"--data-dir {arg}: expected TASK=PATH, e.g. --data-dir miracl=/data/miracl.")
        if name not in {t.name for t in chosen}:
            raise XbenchError(f"--data-dir {arg}: task {name!r} is not among --tasks "
                              f"({', '.join(t.name for t in chosen)}); add it there or drop this --data-dir.")
        if not Path(path).expanduser().is_dir():
            raise XbenchError(f"--data-dir {arg}: {path} is not a folder; give the folder holding the task's data.")
        given[name] = Path(path).expanduser().resolve()
    return [replace(t, local_data=given[t.name]) if t.name in given else t for t in chosen]


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


# --- train, experiment (issue 4): thin wrappers over xbench.training ---
def _train_default(field: str) -> Any:
    return TrainConfig.model_fields[field].get_default(call_default_factory=True)


threads_option = click.option("--threads", type=click.IntRange(min=1), default=None,
                              help="CPU threads for torch (on a busy machine 1 can be much faster than 2).")


@main.command("train")
@click.option("--base", default=_train_default("base"), show_default=True,
              help="me5-small | tiny (built here, for tests) | a local sentence-transformers/transformers folder.")
@click.option("--sampling", type=click.Choice(["mono", "cross", "hybrid"]), default=_train_default("sampling"),
              show_default=True, help="mono: alpha 1 (X-X), cross: alpha 0 (X-Y), hybrid: alpha (default 0.5).")
@click.option("--alpha", type=click.FloatRange(0, 1), default=None, help="Share of monolingual batches (hybrid).")
@click.option("--general-data", default=",".join(_train_default("general")), show_default=True,
              help="General sources, comma-separated (tatoeba, arcd, tico19, ntrex128, mintaka, exams).")
@click.option("--domain-data", multiple=True, metavar="SOURCE[:SHARE]",
              help="Domain source and its share of every batch (repeatable; no share: 0.5 split evenly).")
@click.option("--languages", default=None, help="Only pairs whose two languages are in this comma-separated list.")
@click.option("--seed", type=int, default=_train_default("seed"), show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=_train_default("steps"), show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=_train_default("batch_size"), show_default=True)
@click.option("--mini-batch-size", type=click.IntRange(min=1), default=_train_default("mini_batch_size"),
              show_default=True, help="Batches above this use the cached (gradient-caching) loss.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=_train_default("lr"), show_default=True)
@click.option("--max-seq-length", type=click.IntRange(min=8), default=_train_default("max_seq_length"),
              show_default=True, help="Token limit while training (evaluation keeps the base's).")
@click.option("--freeze-embeddings/--no-freeze-embeddings", default=_train_default("freeze_embeddings"),
              show_default=True, help="Freeze the token embeddings (most of a multilingual model's weights).")
@click.option("--freeze-layers", type=click.IntRange(min=0), default=_train_default("freeze_layers"),
              show_default=True, help="Also freeze the embeddings block and the lowest N transformer layers.")
@click.option("--save-steps", type=click.IntRange(min=1), default=_train_default("save_steps"), show_default=True,
              help="Checkpoint interval; an interrupted run resumes from the last checkpoint.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the trained model.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@threads_option
@cache_option
@user_errors
def train_cmd(base: str, sampling: str, alpha: float | None, general_data: str, domain_data: tuple[str, ...],
              languages: str | None, seed: int, steps: int, batch_size: int, mini_batch_size: int, lr: float,
              max_seq_length: int, freeze_embeddings: bool, freeze_layers: int, save_steps: int, out: Path,
              device: str, threads: int | None, cache_dir: Path | None) -> None:
    """Fine-tune an encoder with hybrid batches; writes OUT with its card (xbench_card.json)."""
    from xbench.models import default_cache_root
    from xbench.training.config import make_config, parse_domain
    from xbench.training.train import CARD_FILE, train

    config = make_config(
        "xbench train", base=base, sampling=sampling, alpha=alpha, seed=seed, steps=steps, batch_size=batch_size,
        general=[s.strip() for s in general_data.split(",") if s.strip()], domain=parse_domain(domain_data),
        languages=[s.strip() for s in languages.split(",") if s.strip()] if languages else None,
        mini_batch_size=mini_batch_size, lr=lr, max_seq_length=max_seq_length, freeze_embeddings=freeze_embeddings,
        freeze_layers=freeze_layers, save_steps=save_steps,
    )
    path = train(config, out, device=device, cache_root=cache_dir or default_cache_root(), threads=threads)
    click.echo(f"trained model: {path} (card: {path / CARD_FILE}); evaluate it with "
               f"`xbench run --model {path} --tasks all`")


@main.command("experiment")
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for models and results (default experiments/runs/<name>).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@threads_option
@cache_option
@tasks_dir_option
@user_errors
def experiment_cmd(config: Path, out: Path | None, device: str, threads: int | None, cache_dir: Path | None,
                   tasks_dirs: tuple[Path, ...]) -> None:
    """Train and evaluate every run of an experiment grid (skipping what is done); then `xbench report OUT/results`."""
    from xbench.models import default_cache_root
    from xbench.training.experiment import load_experiment, run_experiment

    out = out or Path("experiments") / "runs" / load_experiment(config).name
    _check_writable(out)
    rows = run_experiment(config, out, device=device, cache_root=cache_dir or default_cache_root(),
                          tasks_dirs=tasks_dirs, threads=threads, echo=click.echo)
    failed = [r["run"] for r in rows if "error" in r or any(s.startswith("failed") for s in r["tasks"].values())]
    click.echo(f"{len(rows) - len(failed)}/{len(rows)} runs complete; table: xbench report {out / 'results'}"
               + (f"; incomplete: {', '.join(failed)} (see {out / 'experiment.json'})" if failed else ""))
    if failed:
        sys.exit(EXIT_USER_ERROR)


@main.command("robustness")
@click.argument("results_dir", required=False, type=click.Path(path_type=Path), default=Path("results"))
@click.option("--setting", type=click.Choice(list(SETTINGS)), default="multi", show_default=True)
@click.option("--metric", default="map", show_default=True, help="A metric the tasks compute (map, recall@10, ...).")
@click.option("--csv", "csv_out", type=click.Path(path_type=Path), default=None, help="Also write the table as CSV.")
@click.option("--markdown", "md_out", type=click.Path(path_type=Path), default=None,
              help="Also write the table as Markdown.")
@user_errors
def robustness_cmd(results_dir: Path, setting: str, metric: str, csv_out: Path | None, md_out: Path | None) -> None:
    """Domain robustness per model: general vs domain scores, drop, worst domain, spread (seeds averaged)."""
    from xbench.report import collect
    from xbench.results import write_atomic
    from xbench.robustness import robustness_table

    table = robustness_table(collect([results_dir]), setting=setting, metric=metric)
    if table.empty:
        raise XbenchError(f"{results_dir}: no results of a domain task (a task with `general`, e.g. xquad-r.sports); "
                          "run `xbench run --model M --tasks all` first.")
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if csv_out is not None:
        write_atomic(csv_out, table.to_csv(index=False))
    if md_out is not None:
        cells = table.astype(object).where(table.notna(), None)  # tabulate shows None, not NaN, as missing
        write_atomic(md_out, cells.to_markdown(index=False, floatfmt=".3f", missingval="") + "\n")


@main.command("seeds")
@click.argument("results_dir", required=False, type=click.Path(path_type=Path), default=Path("results"))
@click.option("--tasks", "task_names", default=None, help="Comma-separated task names (default: every task).")
@click.option("--csv", "csv_out", type=click.Path(path_type=Path), default=None, help="Also write the table as CSV.")
@click.option("--markdown", "md_out", type=click.Path(path_type=Path), default=None,
              help="Also write the table (mean ± std cells) as Markdown.")
@user_errors
def seeds_cmd(results_dir: Path, task_names: str | None, csv_out: Path | None, md_out: Path | None) -> None:
    """Per training configuration and task: mono/cross/multi mAP, rank distance and training time, mean ± std over
    seeds (e.g. an `xbench experiment` folder's results/)."""
    from xbench.report import collect
    from xbench.results import write_atomic
    from xbench.seeds import seed_table, with_std

    wanted = [t.strip() for t in task_names.split(",") if t.strip()] if task_names else None
    table = seed_table(collect([results_dir]), tasks=wanted)
    if table.empty:
        raise XbenchError(f"{results_dir}: no results" + (f" for tasks {', '.join(wanted)}" if wanted else "")
                          + "; pass an `xbench experiment` folder's results/ or drop --tasks.")
    shown = with_std(table)
    click.echo(shown.to_string(index=False))
    if csv_out is not None:
        write_atomic(csv_out, table.to_csv(index=False))
    if md_out is not None:
        write_atomic(md_out, shown.to_markdown(index=False) + "\n")


# --- data (issue 5): fetch what cannot ship with xbench (xbench.data_prep) ---
@main.group("data")
def data_cmd() -> None:
    """Fetch task data that cannot ship with xbench (online, once) to where its task finds it."""


@data_cmd.command("miracl")
@click.option("--lang", "langs", required=True, help="all or LANG[,LANG...] of MIRACL's 18 languages.")
@click.option("--variant", type=click.Choice(["judged", "full"]), default="judged", show_default=True,
              help="judged: keep the passages the dev qrels name (task miracl-judged, 120k in all); full: keep "
                   "whole corpora (task miracl, tens of GB on disk). Both stream each language's corpus once.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Write OUT/<lang>/ (then run with --data-dir TASK=OUT) instead of the xbench data cache.")
@click.option("--source", default=None,
              help="Where miracl-corpus-v1.0-<lang>/docs-*.jsonl.gz lie: default the hub revision pinned in "
                   "tasks/miracl.yaml; a local copy of that dataset works offline.")
@user_errors
def data_miracl_cmd(langs: str, variant: str, out: Path | None, source: str | None) -> None:
    """Write MIRACL passages in BEIR layout (corpus.jsonl, queries.jsonl, qrels/dev.tsv) per language."""
    from xbench.data_prep import miracl_languages, prepare_miracl

    for done in prepare_miracl(miracl_languages(langs), variant, out, source):
        click.echo(f"miracl {variant} {done.lang}: {done.passages:,} passages -> {done.folder}"
                   + (f" ({done.judged_absent:,} judged passages not in the corpus)" if done.judged_absent else ""))


@main.command("export-mteb")
@click.argument("task_name")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for the mteb tasks, one sub-folder per setting.")
@click.option("--settings", "settings_arg", default=",".join(SETTINGS), show_default=True)
@click.option("--languages", default=None, help="Only these of the task's languages, e.g. en,de (default all).")
@tasks_dir_option
@user_errors
def export_mteb_cmd(task_name: str, out: Path, settings_arg: str, languages: str | None,
                    tasks_dirs: tuple[Path, ...]) -> None:
    """Write TASK as mteb retrieval tasks (one per setting, one subset per language slice) that mteb can load."""
    from xbench.mteb_export import to_mteb, write
    from xbench.registry import with_languages
    from xbench.registry import select

    settings = [s.strip() for s in settings_arg.split(",") if s.strip()]
    if not settings or any(s not in SETTINGS for s in settings):
        raise XbenchError(f"--settings {settings_arg}: use a comma-separated subset of {SETTINGS}.")
    if "," in task_name or task_name == "all":
        raise XbenchError(f"export-mteb {task_name}: export one task at a time.")
    task = with_languages(select(_discover(tasks_dirs), task_name)[0],
                          [lang.strip() for lang in languages.split(",")] if languages else None)
    tasks = to_mteb(task, settings)
    for folder, mteb_task in zip(write(tasks, out), tasks):
        click.echo(f"{mteb_task.metadata.name}: {len(mteb_task.hf_subsets)} subsets -> {folder}")
    click.echo("Evaluate with mteb (scores per subset = xbench slice scores; see xbench/mteb_export.py):\n"
               "  import mteb\n  from pathlib import Path\n  from xbench.mteb_export import load\n"
               f"  mteb.evaluate(mteb.get_model(MODEL), load(Path({str(out)!r})))")


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
