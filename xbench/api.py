"""The Python API: what `xbench run`, `xbench tasks` and the report's readers do, callable from a notebook.

    import xbench
    results = xbench.evaluate("bm25", tasks="xquad-r", languages=["en", "de"])
    results.to_pandas()          # one row per (model, task, setting, query lang, candidate lang, metric)
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

from xbench.errors import XbenchError
from xbench.evaluation.run import Outcome, run_task
from xbench.models.base import DenseRetriever, Retriever
from xbench.models.objects import from_object
from xbench.models.registry import resolve
from xbench.paths import TASK_SPECS, default_cache_root
from xbench.provenance import command_line
from xbench.results.frame import Results, load_results
from xbench.results.store import load
from xbench.tasks import catalog
from xbench.tasks.catalog import describe
from xbench.tasks.registry import Task, discover, on_languages, select, with_data_dirs
from xbench.tasks.spec import SETTINGS, Setting

__all__ = ["Plan", "Results", "evaluate", "list_tasks", "load_results", "plan", "reproduce_command", "run_tasks"]


def _retriever(model: Any, name: str | None, cache_root: Path, device: str, batch_size: int) -> Retriever:
    if isinstance(model, (str, Path)):
        return resolve(str(model), cache_root=cache_root, device=device, batch_size=batch_size, name=name)
    return DenseRetriever(from_object(model, name, batch_size), cache_root)


@dataclass(frozen=True)
class Plan:
    """The tasks of a run, each on its chosen languages, with the languages it has in full (a run on fewer is
    stored beside the full run)."""

    tasks: list[Task]
    full_languages: dict[str, list[str]]
    languages_given: bool


def plan(tasks: str | Sequence[str], *, tasks_dirs: Sequence[str | Path] = (), languages: Sequence[str] = (),
         data_dirs: Mapping[str, Path] | None = None) -> Plan:
    """`--tasks` (names or `all`) from the built-in and `tasks_dirs` specs, with `--data-dir`s attached, each on
    the `languages` it has; every mistake is an XbenchError before any work."""
    pool = with_data_dirs(select(discover(tuple(Path(d) for d in tasks_dirs)), tasks), dict(data_dirs or {}))
    return Plan(on_languages(pool, list(languages)), {t.name: list(t.spec.languages) for t in pool},
                bool(languages))


def reproduce_command(model: str, task: Task, plan: Plan, *, settings: Sequence[str], name: str | None = None,
                      pooling: str | None = None, dtype: str = "float32", allow_overlap: bool = False) -> str:
    """The `xbench run` command stored in the results file: every option that changes a number (the model and its
    name, the task and where its spec and data come from, languages, settings, pooling, precision), and none that
    does not (batch size, devices, cache, output folder)."""
    builtin = task.spec_path.parent.resolve() == TASK_SPECS.resolve()
    return command_line("run", options=[
        ("--model", model), ("--name", name), ("--tasks", task.name), ("--settings", ",".join(settings)),
        ("--languages", ",".join(task.spec.languages) if plan.languages_given else None),
        ("--pooling", pooling), ("--dtype", dtype if dtype != "float32" else None),
        ("--allow-overlap", allow_overlap),
        ("--tasks-dir", None if builtin else str(task.spec_path.parent.resolve())),
        ("--data-dir", f"{task.name}={task.local_data}" if task.local_data else None)])


def run_tasks(retriever: Retriever, plan: Plan, *, settings: Sequence[Setting], output: Path,
              command: Callable[[Task], str], device: str, force: bool = False,
              allow_overlap: bool = False) -> Iterator[Outcome]:
    """Evaluate the planned tasks one by one (`evaluation.run.run_task`), yielding each outcome as it comes."""
    for task in plan.tasks:
        yield run_task(retriever, task, settings=list(settings), output=output, command=command(task),
                       device=device, force=force, allow_overlap=allow_overlap,
                       full_languages=plan.full_languages[task.name])


def evaluate(model: Any, tasks: str | Sequence[str] = "all", *, languages: Sequence[str] | None = None,
             settings: Sequence[str] = SETTINGS, output: str | Path | None = None,
             cache_dir: str | Path | None = None, device: str = "cpu", batch_size: int = 64,
             name: str | None = None, force: bool = False, tasks_dirs: Sequence[str | Path] = ()) -> Results:
    """Evaluate `model` on `tasks` in the given settings and return its results.

    `model` is a built-in name (`xbench models`), a model folder, a hub id (online), a SentenceTransformer, or any
    object whose `encode(texts)` returns one vector per text; `name` names it in results (default: the built-in
    name, a folder's name plus a short fingerprint, the hub id). With `output`, results files are written there
    (and a rerun skips what is up to date; a `languages` subset is stored beside the full run, and another model's
    file of the same name is replaced only with `force`); without it they live in a temporary folder. Embeddings
    are cached in `cache_dir` (default $XBENCH_CACHE or ~/.cache/xbench) either way. Tasks whose data is not here
    are skipped; a task that fails raises.
    """
    bad = [s for s in settings if s not in SETTINGS]
    if bad or not settings:
        raise XbenchError(f"settings {list(settings)}: unknown {bad}; use a subset of {SETTINGS}.")
    chosen = plan(tasks, tasks_dirs=tasks_dirs, languages=languages or ())
    retriever = _retriever(model, name, Path(cache_dir) if cache_dir is not None else default_cache_root(), device,
                           batch_size)

    def command(task: Task) -> str:
        if isinstance(model, (str, Path)):
            return reproduce_command(str(model), task, chosen, settings=settings, name=name)
        return f"xbench.evaluate(<{type(model).__name__}>, tasks={task.name!r})"

    with tempfile.TemporaryDirectory(prefix="xbench-") as scratch:
        out = Path(output) if output is not None else Path(scratch)
        files = []
        for outcome in run_tasks(retriever, chosen, settings=cast("list[Setting]", list(settings)),  # checked above
                                 output=out, command=command, device=device, force=force):
            if outcome.status == "failed":
                raise XbenchError(f"task {outcome.task}: {outcome.message}")
            if outcome.path is not None:
                files.append(load(outcome.path))
    return Results(tuple(files))


def list_tasks(tasks_dirs: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Every registered task with its metadata, as `xbench tasks --json` shows it (no data is loaded): name,
    family, domain, languages, settings, main metric, license, data (here / not shipped / missing), available,
    and queries / candidates / per_language counts from the counts manifests (None where unknown)."""
    frame = pd.DataFrame([describe(t) for t in catalog.discover(tuple(Path(d) for d in tasks_dirs)).values()])
    return frame.astype({"queries": "Int64", "candidates": "Int64"})  # whole numbers, <NA> where unknown
