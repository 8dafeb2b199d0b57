"""Where things live: the task specs and data shipped inside the package, and the user's cache folder.

Specs and data are package resources (`importlib.resources`), so an installed wheel finds them from any working
directory exactly as a source checkout does.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

PACKAGE_ROOT = Path(str(files("xbench")))
TASK_SPECS = PACKAGE_ROOT / "tasks"
DATA_ROOT = PACKAGE_ROOT / "data"
TRAIN_DATA = DATA_ROOT / "train"
RESULTS_SCHEMA = PACKAGE_ROOT / "results" / "results.schema.json"


def default_cache_root() -> Path:
    """Models, embeddings and prepared corpora: `$XBENCH_CACHE`, else ~/.cache/xbench."""
    return Path(os.environ.get("XBENCH_CACHE", Path.home() / ".cache" / "xbench")).expanduser()
