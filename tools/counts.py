"""Write the counts manifest (`counts.json`, beside SHA256SUMS) of every task data folder, so `xbench tasks`
shows each task's size without loading data:

    python -m tools.counts                   # the built-in tasks' folders (xbench/data/*), after building data
    python -m tools.counts --tasks-dir DIR   # the folders of the tasks specified in DIR (repeatable)

Each task is loaded and counted (`xbench.tasks.registry.count`) with an empty xbench cache, so the counts are
those of the data that ships, never of passages fetched into this machine's cache (MIRACL's are "not shipped").
Deterministic: a rebuild of unchanged data and specs writes the same bytes. `tests/tasks/test_counts.py` checks
that every built-in task has a current entry, and (slow) that each entry matches its data.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import defaultdict
from pathlib import Path

from xbench.io import write_atomic
from xbench.tasks.catalog import COUNTS_FILE, manifest_text
from xbench.tasks.registry import Task, count, discover


def write_counts(tasks: list[Task]) -> dict[Path, int]:
    """Count `tasks` and write one counts.json per data folder they use; returns folder -> tasks counted."""
    by_folder: dict[Path, list[Task]] = defaultdict(list)
    for task in tasks:
        if task.data_dir is not None and task.data_available():
            by_folder[task.data_dir].append(task)
    saved = os.environ.get("XBENCH_CACHE")
    with tempfile.TemporaryDirectory(prefix="xbench-counts-") as empty:
        os.environ["XBENCH_CACHE"] = empty  # only shipped data is counted (MIRACL passages never are)
        try:
            for folder, on_folder in sorted(by_folder.items()):
                identity = on_folder[0].data_sha256()  # verifies every data file first
                entries = {t.name: count(t).entry(t.spec) for t in on_folder}
                write_atomic(folder / COUNTS_FILE, manifest_text(identity, entries))
        finally:
            if saved is None:
                os.environ.pop("XBENCH_CACHE", None)
            else:
                os.environ["XBENCH_CACHE"] = saved
    return {folder: len(on_folder) for folder, on_folder in by_folder.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.counts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks-dir", dest="tasks_dirs", action="append", type=Path, default=[],
                        help="count only the tasks of this folder of YAML specs (repeatable)")
    args = parser.parse_args(argv)
    every = discover(tuple(args.tasks_dirs))
    wanted = {p.resolve() for p in args.tasks_dirs}
    chosen = [t for t in every.values() if not wanted or t.spec_path.parent.resolve() in wanted]
    for folder, n in sorted(write_counts(chosen).items()):
        print(f"{folder / COUNTS_FILE}: {n} task(s)")


if __name__ == "__main__":  # pragma: no cover
    main()
