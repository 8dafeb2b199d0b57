"""xbench: zero-shot cross-lingual retrieval benchmark (LAReQA-style pooled retrieval, bias, robustness).

    import xbench
    results = xbench.evaluate("me5-small", tasks=["xquad-r"], languages=["en", "de"])
    results.to_pandas()

The API (`xbench.api`) is imported on first use, so the command line, which lives in this package too, starts
without pandas or the model code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xbench.provenance import __version__

if TYPE_CHECKING:
    from xbench.api import Results, evaluate, list_tasks, load_results

__all__ = ["Results", "__version__", "evaluate", "list_tasks", "load_results"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("xbench.api"), name)
    raise AttributeError(f"module 'xbench' has no attribute {name!r}")
