"""Significance results on disk, so that every report format and `xbench compare` compute a table once.

The paired tests and bootstrap intervals of a table are a pure function of the results' per-unit scores and of the
test settings, and they are the slow part of a report (a bootstrap draws resamples x units numbers). An entry is
keyed by the sha256 of the results' content (their canonical JSON: the same results read from another folder, or
rewritten with other whitespace, hit the same entry), the row labels, what is tested (setting, metric, alpha) and
how (resamples, seed), plus FORMAT, which changes whenever the computation does. The value is the table as JSON with
floats written by `repr`, so a table read back equals the computed one bit for bit. A damaged entry is recomputed,
never trusted; a cache folder that cannot be written costs the speed-up, not the report.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from xbench.errors import XbenchError
from xbench.io import write_atomic
from xbench.paths import default_cache_root
from xbench.results.schema import ResultFile
from xbench.results.store import dumps

log = logging.getLogger(__name__)

FORMAT = 1  # bump when a cached table would differ for the same key (a new column, another test)
SUBFOLDER = "significance"


def content_hash(result: ResultFile) -> str:
    """sha256 of a result's canonical JSON: its identity whatever file or folder it was read from."""
    return hashlib.sha256(dumps(result).encode()).hexdigest()


def _to_json(frame: pd.DataFrame, key: dict[str, Any]) -> str:
    split = frame.to_dict(orient="split")
    return json.dumps({"key": key, "index_name": frame.index.name, "index": split["index"],
                       "columns": split["columns"], "data": split["data"],
                       "dtypes": {c: str(t) for c, t in frame.dtypes.items()}})


def _from_json(text: str) -> pd.DataFrame:
    raw = json.loads(text)
    frame = pd.DataFrame(raw["data"], index=pd.Index(raw["index"], name=raw["index_name"]),
                         columns=raw["columns"])
    return frame.astype(raw["dtypes"]) if len(frame) else frame


class SignificanceCache:
    """Tables of significance results in `<root>/significance/` (root: `--cache-dir`, else $XBENCH_CACHE or
    ~/.cache/xbench), one JSON file per key; `enabled=False` computes every table (and counts nothing as cached)."""

    def __init__(self, root: Path | None = None, enabled: bool = True) -> None:
        self.folder = (root or default_cache_root()) / SUBFOLDER if enabled else None
        self.hits = self.misses = 0

    def table(self, key: dict[str, Any], compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """The table stored under `key`, else `compute()`, stored for the next call."""
        if self.folder is None:
            return compute()
        full = {"format": FORMAT, **key}
        path = self.folder / f"{hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()}.json"
        try:
            frame = _from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: damaged significance cache entry (%s); computing it again", path, exc)
        else:
            self.hits += 1
            return frame
        self.misses += 1
        frame = compute()
        try:
            write_atomic(path, _to_json(frame, full))
        except XbenchError as exc:
            log.warning("significance cache not written (%s); the next report computes this table again", exc)
        return frame
