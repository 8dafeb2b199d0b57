"""`xbench submit`: a results file enters `results/` only when it follows the schema, its aggregates follow
from its own per-query ranks, its task spec and data sha256 match the local task, and it clashes with nothing.

Every file of a batch is checked before any is written, so a batch goes in whole or not at all; every rejection
names the file, the field and the fix. The target path comes from `result_path` (model and task names are
slugged), so no name inside a file can steer the write outside `results/`.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from xbench.errors import XbenchError
from xbench.results.schema import ResultFile
from xbench.results.store import load, result_path, save
from xbench.results.validate import check_file
from xbench.tasks.registry import Task, discover


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_task(path: Path, result: ResultFile, tasks: dict[str, Task], shas: dict[str, str]) -> None:
    """The file's task exists here, with the same spec and the same data (sha256 of the verified manifest)."""
    name = result.task.name
    if name not in tasks:
        close = difflib.get_close_matches(name, tasks, n=3)
        raise XbenchError(f"{path}: field `task.name`: unknown task {name!r}"
                          + (f" (did you mean {', '.join(close)}?)" if close else "")
                          + "; add its spec with --tasks-dir, or submit to a checkout that has it.")
    local = tasks[name]
    if result.task != local.spec:
        key = next(k for k in type(local.spec).model_fields if getattr(result.task, k) != getattr(local.spec, k))
        raise XbenchError(f"{path}: field `task.{key}` is {_short(getattr(result.task, key))} but the local spec "
                          f"({local.spec_path}) says {_short(getattr(local.spec, key))}; re-run the evaluation "
                          "with this task version.")
    if name not in shas:
        shas[name] = local.data_sha256()
    if result.data_sha256 != shas[name]:
        raise XbenchError(f"{path}: field `data_sha256` is {result.data_sha256[:16]}... but the local data of task "
                          f"{name} hashes to {shas[name][:16]}...; the file was computed on other data. Re-run "
                          "the evaluation on the shipped data.")


def check_target(path: Path, result: ResultFile, target: Path, planned: dict[Path, Path], replace: bool) -> None:
    """No two files of the batch, and no file already in results/, for one (model, task), unless --replace;
    never overwrite another model whose name slugs to the same file."""
    pair = f"(model {result.model.name!r}, task {result.task.name!r})"
    if target in planned:
        raise XbenchError(f"{path}: fields `model.name`/`task.name`: {planned[target]} in this batch holds results "
                          f"for the same {pair}; submit one of them.")
    if not target.exists():
        return
    try:
        old: ResultFile | None = load(target)
    except XbenchError:
        old = None  # a damaged file there: --replace may overwrite it
    if old is not None and old.model.name != result.model.name:
        raise XbenchError(f"{path}: field `model.name` {result.model.name!r} would be stored as {target}, which holds "
                          f"model {old.model.name!r}; rename the model in the file so the names do not collide.")
    if not replace:
        what = "the same results are" if old == result else "different results for this pair are"
        raise XbenchError(f"{path}: field `model.name`: {what} already in {target} {pair}; pass --replace to "
                          "overwrite.")


def submit(files: list[Path], results_dir: Path, tasks_dirs: tuple[Path, ...] = (),
           replace: bool = False) -> list[tuple[Path, Path]]:
    """Check every file, then write them all atomically to results/<model>/<task>.json; returns (file, target)."""
    tasks = discover(tasks_dirs)
    shas: dict[str, str] = {}
    planned: dict[Path, Path] = {}
    accepted: list[tuple[ResultFile, Path]] = []
    errors = []
    for path in files:
        try:
            result = check_file(path)
            check_task(path, result, tasks, shas)
            target = result_path(results_dir, result.model.name, result.task.name)
            check_target(path, result, target, planned, replace)
        except XbenchError as exc:
            errors.append(str(exc))
            continue
        planned[target] = path
        accepted.append((result, target))
    if errors:
        raise XbenchError("\n".join(errors) + f"\nNothing was written to {results_dir}.")
    for result, target in accepted:
        save(result, target)
    return [(path, target) for target, path in planned.items()]
