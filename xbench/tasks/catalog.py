"""The task catalog: every spec, the file it came from and its data folder, and the counts manifest beside that
folder, all without loading any data (and without pandas), so that `xbench tasks` lists every task at once.

`tasks.registry` builds on this: its `Task` adds loading. The counts manifest (`counts.json` beside SHA256SUMS,
written by `python -m tools.counts` when the data is built) holds the query and candidate counts of every task on
that folder, each entry pinned by the sha256 of the task's spec and the folder's data identity (the SHA256SUMS
sha256). A stale or damaged entry is unknown, never a wrong number. It is not listed in SHA256SUMS: it is derived
from the data, and listing it would change the data identity that every results file records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xbench.errors import XbenchError
from xbench.io import sha256_file, verify_dir
from xbench.paths import TASK_SPECS as BUILTIN_TASKS
from xbench.tasks.spec import TaskSpec, load_spec_file

COUNTS_FILE = "counts.json"
NOT_SHIPPED = "not shipped"  # the task needs data that cannot ship (MIRACL's passages: `xbench data miracl`)
MISSING = "missing"  # no data manifest where the spec says


@dataclass(frozen=True)
class TaskRef:
    """A spec plus the file it came from (relative data paths resolve against that file's folder)."""

    spec: TaskSpec
    spec_path: Path
    # `xbench run --data-dir NAME=PATH`: data the task cannot ship (MIRACL passages), handed to the loader as
    # `options.local_dir`; the recorded spec stays the shipped one, so results remain comparable and submittable
    local_data: Path | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def data_dir(self) -> Path | None:
        if self.spec.source.dir is None:
            return None
        return (self.spec_path.parent / self.spec.source.dir).resolve()

    def data_available(self) -> bool:
        d = self.data_dir
        return d is not None and (d / self.spec.source.manifest).is_file()

    def data_sha256(self) -> str:
        """Verify every data file and return the manifest's sha256, the identity of the data evaluated."""
        if not self.data_available():
            raise XbenchError(
                f"task {self.name}: its data folder {self.data_dir} (from {self.spec_path}, field `source.dir`) "
                f"has no {self.spec.source.manifest}. Restore the folder from git or fix `source.dir`."
            )
        return verify_dir(self.data_dir, self.spec.source.manifest)


def discover(extra_dirs: tuple[Path, ...] = ()) -> dict[str, TaskRef]:
    """All tasks, built-in first; a user folder may not silently shadow a built-in name."""
    tasks: dict[str, TaskRef] = {}
    for folder in (BUILTIN_TASKS, *extra_dirs):
        if not folder.is_dir():
            raise XbenchError(f"{folder}: tasks folder not found; pass an existing folder of YAML task specs.")
        for path in sorted(folder.glob("*.y*ml")):
            for spec in load_spec_file(path):
                if spec.name in tasks:
                    raise XbenchError(
                        f"{path}: task name {spec.name!r} is already defined in {tasks[spec.name].spec_path}; "
                        "rename one of them (field `name`)."
                    )
                tasks[spec.name] = TaskRef(spec, path)
    return tasks


@dataclass(frozen=True)
class Counts:
    """How big a task is on its shipped data: queries and candidates in all, and [queries, candidates] per
    language. `shipped` is False for a task whose data does not ship (MIRACL's passages): its counts are None."""

    shipped: bool
    queries: int | None = None
    candidates: int | None = None
    languages: dict[str, list[int]] | None = None

    def entry(self, spec: TaskSpec) -> dict[str, object]:
        """The task's entry in counts.json."""
        fields = {"queries": self.queries, "candidates": self.candidates, "languages": self.languages} \
            if self.shipped else {"shipped": False}
        return {"spec_sha256": spec_sha256(spec), **fields}


def spec_sha256(spec: TaskSpec) -> str:
    """The spec's identity: a counts entry holds for exactly this spec (languages, templates, options, domain map
    sha256), so editing a spec makes its counts unknown until they are written again."""
    return hashlib.sha256(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def counts_path(task: TaskRef) -> Path | None:
    return task.data_dir / COUNTS_FILE if task.data_dir is not None else None


def manifest_text(data_sha256: str, entries: dict[str, dict[str, object]]) -> str:
    """counts.json: the data identity it was counted on, and one entry per task on that folder, one line each
    (a rebuild that changes one task's counts is a one-line diff)."""
    lines = [f"  {json.dumps(name)}: {json.dumps(entry)}" for name, entry in sorted(entries.items())]
    return f'{{\n "data_sha256": {json.dumps(data_sha256)},\n "tasks": {{\n' + ",\n".join(lines) + "\n }\n}\n"


def read_counts(task: TaskRef) -> Counts | None:
    """The task's counts from the manifest beside its data, or None when unknown: no manifest, no entry, an entry
    for another spec or other data, or a damaged file. Costs the sha256 of the small SHA256SUMS, no data read."""
    path = counts_path(task)
    if path is None or not path.is_file() or not task.data_available():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        entry = manifest["tasks"][task.name]
        if manifest["data_sha256"] != _data_identity(task) or entry["spec_sha256"] != spec_sha256(task.spec):
            return None
        if entry.get("shipped", True) is False:
            return Counts(shipped=False)
        return Counts(True, int(entry["queries"]), int(entry["candidates"]),
                      {str(k): [int(n) for n in v] for k, v in entry["languages"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _data_identity(task: TaskRef) -> str:
    """The manifest's sha256 (what `data_sha256` returns) without verifying every data file."""
    assert task.data_dir is not None  # callers check data_available first
    return sha256_file(task.data_dir / task.spec.source.manifest)


def describe(task: TaskRef) -> dict[str, Any]:
    """One task as `xbench tasks --json` and `xbench.list_tasks()` show it. `data` is `here`, `not shipped` or
    `missing`; `queries`, `candidates` and `per_language` ([queries, candidates] per language) are None where they
    are not known without loading the data (no current counts entry)."""
    counts = read_counts(task)
    data = "here" if task.data_available() else MISSING
    if counts is not None and not counts.shipped:
        data = NOT_SHIPPED
    return {"name": task.name, "family": task.spec.family, "domain": task.spec.domain,
            "languages": list(task.spec.languages), "settings": list(task.spec.settings),
            "main_metric": task.spec.main_metric, "license": task.spec.license, "data": data,
            "available": data == "here", "queries": counts.queries if counts else None,
            "candidates": counts.candidates if counts else None,
            "per_language": counts.languages if counts else None}
