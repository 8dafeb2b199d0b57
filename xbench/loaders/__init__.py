"""Loaders turn a task spec and its verified data folder into `TaskData`; one function per data format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from xbench.spec import TaskSpec
from xbench.taskdata import TaskData

Loader = Callable[[TaskSpec, Path], TaskData]
LOADERS: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    """Decorator: make a loader available to specs as `loader: <name>`."""

    def wrap(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn

    return wrap


from xbench.loaders import lareqa  # noqa: E402,F401  (registers itself)
from xbench.loaders import parallel  # noqa: E402,F401  (registers itself)
from xbench.loaders import exams  # noqa: E402,F401  (registers itself)
from xbench.loaders import miracl  # noqa: E402,F401  (registers itself)
