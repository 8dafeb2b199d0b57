"""The loader registry. Loaders turn a task spec and its verified data folder into `TaskData`; one function per data
format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from xbench.tasks.spec import TaskSpec
from xbench.tasks.taskdata import TaskData

Loader = Callable[[TaskSpec, Path], TaskData]
LOADERS: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    """Decorator: make a loader available to specs as `loader: <name>`."""

    def wrap(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn

    return wrap

