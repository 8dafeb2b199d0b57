"""The task registry: every YAML spec in the built-in `tasks/` folder plus any folders the user adds
(`tasks.catalog`), as tasks that load their data, and the choice of tasks and languages for a run.

Names are unique across folders; an unknown name gets a did-you-mean. Loading a task verifies its data
against the manifest first, then runs its loader and validates what the loader produced.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from xbench.errors import DataUnavailable, XbenchError
from xbench.tasks import catalog
from xbench.tasks.catalog import Counts, TaskRef
from xbench.tasks.loaders import LOADERS, PART_LOADERS
from xbench.tasks.spec import TaskSpec
from xbench.tasks.taskdata import CorpusPart, TaskData


@dataclass(frozen=True)
class Task(TaskRef):
    """A catalog entry that can load its data (verified against the manifest first, then checked)."""

    def load(self) -> TaskData:
        loader = LOADERS.get(self.spec.loader)
        if loader is None:
            raise XbenchError(
                f"{self.spec_path}: task {self.name}: field `loader` is {self.spec.loader!r}; "
                f"known loaders: {sorted(LOADERS)}."
            )
        return loader(*self._loader_input()).validate(f"task {self.name}")

    @property
    def streamed(self) -> bool:
        """The pool is a corpus too large to hold (MIRACL): the task runs language by language (`part`)."""
        return self.spec.loader in PART_LOADERS

    def part(self, lang: str) -> CorpusPart:
        """One language of a streamed task: its queries and qrels, and its corpus opened for streaming."""
        return PART_LOADERS[self.spec.loader](*self._loader_input(), lang)

    def _loader_input(self) -> tuple[TaskSpec, Path]:
        """The spec as the loader sees it (with `--data-dir` as `options.local_dir`) and the verified data folder."""
        self.data_sha256()
        spec = self.spec
        if self.local_data is not None:
            spec = spec.model_copy(update={"options": {**spec.options, "local_dir": str(self.local_data)}})
        data_dir = self.data_dir
        assert data_dir is not None  # data_sha256 above raised if the task had no data folder
        return spec, data_dir


def discover(extra_dirs: tuple[Path, ...] = ()) -> dict[str, Task]:
    """All tasks, built-in first (`catalog.discover`), as loadable tasks."""
    return {name: Task(ref.spec, ref.spec_path) for name, ref in catalog.discover(extra_dirs).items()}


def count(task: Task) -> Counts:
    """Load the task and count it (what `tools.counts` writes into counts.json); data that does not ship (a
    DataUnavailable from the loader) is counted as not shipped."""
    try:
        data = task.load()
    except DataUnavailable:
        return Counts(shipped=False)
    per_lang = {lang: [int((data.queries["lang"] == lang).sum()), int((data.candidates["lang"] == lang).sum())]
                for lang in task.spec.languages}
    return Counts(True, len(data.queries), len(data.candidates), per_lang)


def select(tasks: dict[str, Task], names: str | Sequence[str]) -> list[Task]:
    """Resolve `all` or task names (a list, or one comma-separated string), with a did-you-mean for unknown ones.
    A name with a shell wildcard (`xquad-r*`: the task and its domain splits) stands for every task it matches,
    in the registry's order; each task is chosen once."""
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if wanted == ["all"]:
        return list(tasks.values())
    chosen: list[Task] = []
    for name in wanted:
        if any(c in name for c in "*?["):
            matched = [t for n, t in tasks.items() if fnmatch.fnmatchcase(n, name)]
            if not matched:
                raise XbenchError(f"no task matches {name!r}. Run `xbench tasks` for the list.")
            chosen.extend(t for t in matched if t not in chosen)
            continue
        if name not in tasks:
            close = difflib.get_close_matches(name, tasks, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise XbenchError(
                f"unknown task {name!r}.{hint} Run `xbench tasks` for the list, or add a spec with --tasks-dir."
            )
        if tasks[name] not in chosen:
            chosen.append(tasks[name])
    if not chosen:
        raise XbenchError("no task given: pass --tasks all or --tasks NAME[,NAME...].")
    return chosen


def with_languages(task: Task, languages: Sequence[str] | None) -> Task:
    """The task on a subset of its languages (a cheaper run); the same restriction serves xbench and the export."""
    if not languages:
        return task
    unknown = sorted(set(languages) - set(task.spec.languages))
    if unknown:
        raise XbenchError(f"languages {unknown}: task {task.name} has none of them; its languages are "
                          f"{task.spec.languages}. Choose among those.")
    kept = [lang for lang in task.spec.languages if lang in languages]
    return replace(task, spec=task.spec.model_copy(update={"languages": kept}))


def on_languages(chosen: list[Task], wanted: Sequence[str]) -> list[Task]:
    """Each chosen task on the `wanted` languages it has (`--languages`); a language no chosen task has, or a task
    with none of them, is an error naming it."""
    if not wanted:
        return chosen
    given = ",".join(wanted)
    known = {lang for t in chosen for lang in t.spec.languages}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise XbenchError(f"--languages {given}: {', '.join(unknown)} is no language of the chosen tasks; "
                          f"they have {', '.join(sorted(known))}.")
    none = [t.name for t in chosen if not set(wanted) & set(t.spec.languages)]
    if none:
        raise XbenchError(f"--languages {given}: task(s) {', '.join(none)} have none of these languages; "
                          "drop them from --tasks or add one of their languages (`xbench tasks` lists them).")
    return [with_languages(t, [lang for lang in wanted if lang in t.spec.languages]) for t in chosen]


def with_data_dirs(chosen: list[Task], given: Mapping[str, Path]) -> list[Task]:
    """Attach each `--data-dir TASK=PATH` to its chosen task (the loader reads it as `options.local_dir`)."""
    for name, path in given.items():
        if name not in {t.name for t in chosen}:
            raise XbenchError(f"--data-dir {name}={path}: task {name!r} is not among --tasks "
                              f"({', '.join(t.name for t in chosen)}); add it there or drop this --data-dir.")
        if not path.expanduser().is_dir():
            raise XbenchError(f"--data-dir {name}={path}: {path} is not a folder; give the folder holding the "
                              "task's data.")
    return [replace(t, local_data=given[t.name].expanduser().resolve()) if t.name in given else t for t in chosen]
