"""xbench: zero-shot cross-lingual retrieval benchmark (LAReQA-style pooled retrieval, bias, robustness).

    import xbench
    results = xbench.evaluate("me5-small", tasks=["xquad-r"], languages=["en", "de"])
    results.to_pandas()
"""

from xbench.api import Results, evaluate, list_tasks, load_results
from xbench.provenance import __version__

__all__ = ["Results", "__version__", "evaluate", "list_tasks", "load_results"]
