"""The loader registry. Loaders turn a task spec and its verified data folder into `TaskData`; one function per data
format. A task whose pool is a corpus too large to hold also registers a part loader: one language at a time, its
corpus streamed (`CorpusPart`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from xbench.tasks.spec import TaskSpec
from xbench.tasks.taskdata import CorpusPart, TaskData

Loader = Callable[[TaskSpec, Path], TaskData]
LOADERS: dict[str, Loader] = {}
PartLoader = Callable[[TaskSpec, Path, str], CorpusPart]
PART_LOADERS: dict[str, PartLoader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    """Decorator: make a loader available to specs as `loader: <name>`."""

    def wrap(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn

    return wrap



def register_parts(name: str) -> Callable[[PartLoader], PartLoader]:
    """Decorator: the loader `name` also serves one language at a time with a streamed corpus; `xbench run` then
    evaluates the task language by language (load, encode, search, write, free, go on)."""

    def wrap(fn: PartLoader) -> PartLoader:
        PART_LOADERS[name] = fn
        return fn

    return wrap
