"""`xbench submit`: a results file enters `results/` only when it follows the schema, its aggregates follow
from its own per-query ranks, and it covers exactly the local task it names (same spec and data sha256, every
slice, query, relevant set and grade; see `validate`), and it clashes with nothing.

Every file of a batch is checked before anything is written. The batch is then staged (each file written whole
to a temporary file in the results folder) and committed under an exclusive lock on that folder, where clashes
are checked again: two submits racing for one (model, task) give one acceptance and one refusal, never two
acceptances and a lost file. A rename that fails during the commit rolls back those already done, so a batch
goes in whole or not at all. Every rejection names the file, the field and the fix. The target path comes from
`result_path` (model and task names are slugged), so no name inside a file can steer the write outside
`results/`.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from xbench.errors import XbenchError
from xbench.io import write_atomic
from xbench.results.schema import ResultFile
from xbench.results.store import dumps, language_subset, load, result_path
from xbench.results.validate import check_file, local_tasks


@dataclass
class _Entry:
    """One file of the batch on its way in: where it goes, where it is staged, where the file it replaces is
    kept until the batch is in."""

    source: Path
    result: ResultFile
    target: Path
    staged: Path | None = None
    backup: Path | None = None


def check_target(path: Path, result: ResultFile, target: Path, planned: dict[Path, Path], replace: bool) -> None:
    """No two files of the batch, and no file already in results/, for one (model, task), unless --replace;
    never overwrite another model whose name slugs to the same file, nor anything that is not a file."""
    pair = f"(model {result.model.name!r}, task {result.task.name!r})"
    if target in planned:
        raise XbenchError(f"{path}: fields `model.name`/`task.name`: {planned[target]} in this batch holds results "
                          f"for the same {pair}; submit one of them.")
    if not target.exists():
        return
    if not target.is_file():
        raise XbenchError(f"{path}: fields `model.name`/`task.name`: the target {target} is not a file (a folder?); "
                          "move it out of the results folder and submit again.")
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


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the results folder itself (flock on its descriptor): no lock file to leave behind,
    and the lock goes with the process however it ends."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _refuse(errors: list[str], results_dir: Path) -> None:
    if errors:
        raise XbenchError("\n".join(errors) + f"\nNothing was written to {results_dir}.")


def _stage(batch: list[_Entry], results_dir: Path) -> None:
    """Write every file of the batch, whole, under a temporary name in the results folder (the same filesystem,
    so the commit is a rename); a full disk or a read-only folder stops the batch here, before any commit."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XbenchError(f"{results_dir}: cannot create the results folder ({exc.strerror}); pass a writable "
                          "--results-dir.") from None
    token = uuid.uuid4().hex
    for i, entry in enumerate(batch):
        entry.staged = results_dir / f".submit-{token}-{i}.tmp"
        write_atomic(entry.staged, dumps(entry.result))


def _put(entry: _Entry, created: list[Path]) -> None:
    """Rename one staged file onto its target, keeping a hard link to the file it replaces until the batch is in
    (the old file stays readable until the rename replaces it)."""
    assert entry.staged is not None  # _stage named every entry's staged file
    if not entry.target.parent.is_dir():
        entry.target.parent.mkdir(parents=True)
        created.append(entry.target.parent)
    if entry.target.exists():
        entry.backup = entry.staged.with_suffix(".bak")
        os.link(entry.target, entry.backup)
    os.replace(entry.staged, entry.target)


def _commit(batch: list[_Entry], results_dir: Path) -> None:
    """Every staged file onto its target; on a failure, put back what was there and remove what was not."""
    done: list[_Entry] = []
    created: list[Path] = []
    for entry in batch:
        try:
            _put(entry, created)
        except OSError as exc:
            for old in reversed(done):
                if old.backup is not None:
                    os.replace(old.backup, old.target)
                else:
                    old.target.unlink(missing_ok=True)
            for folder in reversed(created):
                folder.rmdir()
            raise XbenchError(f"{entry.target}: cannot write results there ({exc.strerror or exc}); free space or "
                              f"fix the folder's permissions. Nothing was written to {results_dir}.") from None
        done.append(entry)


def _clean(batch: list[_Entry]) -> None:
    for entry in batch:
        for leftover in (entry.staged, entry.backup):
            if leftover is not None:
                leftover.unlink(missing_ok=True)


def submit(files: list[Path], results_dir: Path, tasks_dirs: tuple[Path, ...] = (), replace: bool = False,
           data_dirs: Mapping[str, Path] | None = None) -> list[tuple[Path, Path]]:
    """Check every file, then add them all to results/<model>/<task>.json, or none; returns (file, target)."""
    tasks = local_tasks(tasks_dirs, data_dirs)
    planned: dict[Path, Path] = {}
    batch: list[_Entry] = []
    errors = []
    for path in files:
        try:
            result = check_file(path, tasks)
            full = tasks.tasks[result.task.name].spec.languages  # check_file found the task
            target = result_path(results_dir, result.model.name, result.task.name,
                                 language_subset(result.task.languages, full))  # a subset beside the full run
            check_target(path, result, target, planned, replace=True)  # within the batch; results/ under the lock
        except XbenchError as exc:
            errors.append(str(exc))
            continue
        planned[target] = path
        batch.append(_Entry(path, result, target))
    _refuse(errors, results_dir)
    try:
        _stage(batch, results_dir)
        with _locked(results_dir):
            for entry in batch:
                try:
                    check_target(entry.source, entry.result, entry.target, {}, replace)
                except XbenchError as exc:
                    errors.append(str(exc))
            _refuse(errors, results_dir)
            _commit(batch, results_dir)
    finally:
        _clean(batch)
    return [(entry.source, entry.target) for entry in batch]
