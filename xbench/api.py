"""The Python API: what `xbench run`, `xbench tasks` and the report's readers do, callable from a notebook.

    import xbench
    results = xbench.evaluate("bm25", tasks="xquad-r", languages=["en", "de"])
    results.to_pandas()          # one row per (model, task, setting, query lang, candidate lang, metric)
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pandas as pd

from xbench.errors import XbenchError
from xbench.evaluation.run import run_task
from xbench.models.base import DenseRetriever, Retriever
from xbench.models.objects import from_object
from xbench.models.registry import resolve
from xbench.paths import default_cache_root
from xbench.provenance import command_line
from xbench.results.frame import Results, load_results
from xbench.results.store import load
from xbench.tasks.registry import discover, on_languages, select
from xbench.tasks.spec import SETTINGS, Setting

__all__ = ["Results", "evaluate", "list_tasks", "load_results"]


def _retriever(model: Any, name: str | None, cache_root: Path, device: str, batch_size: int) -> Retriever:
    if isinstance(model, (str, Path)):
        return resolve(str(model), cache_root=cache_root, device=device, batch_size=batch_size)
    return DenseRetriever(from_object(model, name, batch_size), cache_root)


def evaluate(model: Any, tasks: str | Sequence[str] = "all", *, languages: Sequence[str] | None = None,
             settings: Sequence[str] = SETTINGS, output: str | Path | None = None,
             cache_dir: str | Path | None = None, device: str = "cpu", batch_size: int = 64,
             name: str | None = None, force: bool = False, tasks_dirs: Sequence[str | Path] = ()) -> Results:
    """Evaluate `model` on `tasks` in the given settings and return its results.

    `model` is a built-in name (`xbench models`), a model folder, a hub id (online), a SentenceTransformer, or any
    object whose `encode(texts)` returns one vector per text. With `output`, results files are written there
    (and a rerun skips what is up to date; a `languages` subset is stored beside the full run, and another model's
    file of the same name is replaced only with `force`); without it they live in a temporary folder. Embeddings
    are cached in `cache_dir` (default $XBENCH_CACHE or ~/.cache/xbench) either way. Tasks whose data is not here
    are skipped; a task that fails raises.
    """
    bad = [s for s in settings if s not in SETTINGS]
    if bad or not settings:
        raise XbenchError(f"settings {list(settings)}: unknown {bad}; use a subset of {SETTINGS}.")
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    pool = select(discover(tuple(Path(d) for d in tasks_dirs)), tasks)
    full = {t.name: t.spec.languages for t in pool}
    chosen = on_languages(pool, list(languages or ()))
    retriever = _retriever(model, name, cache_root, device, batch_size)
    with tempfile.TemporaryDirectory(prefix="xbench-") as scratch:
        out = Path(output) if output is not None else Path(scratch)
        files = []
        for task in chosen:
            command = (command_line("run", options=[
                ("--model", str(model)), ("--tasks", task.name), ("--settings", ",".join(settings)),
                ("--languages", ",".join(task.spec.languages) if languages else None)])
                if isinstance(model, (str, Path))
                else f"xbench.evaluate(<{type(model).__name__}>, tasks={task.name!r})")
            outcome = run_task(retriever, task, settings=cast("list[Setting]", list(settings)),  # checked above
                               output=out, command=command, device=device, force=force,
                               full_languages=full[task.name])
            if outcome.status == "failed":
                raise XbenchError(f"task {task.name}: {outcome.message}")
            if outcome.path is not None:
                files.append(load(outcome.path))
    return Results(tuple(files))


def list_tasks(tasks_dirs: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Every registered task with its metadata (no data is loaded): name, family, domain, languages, settings,
    main metric, license and whether its data is here."""
    rows = [{"name": t.name, "family": t.spec.family, "domain": t.spec.domain, "languages": list(t.spec.languages),
             "settings": list(t.spec.settings), "main_metric": t.spec.main_metric, "license": t.spec.license,
             "available": t.data_available()}
            for t in discover(tuple(Path(d) for d in tasks_dirs)).values()]
    return pd.DataFrame(rows)
