"""Significance results on disk, so that every report format and `xbench compare` compute a table once.

The paired tests and bootstrap intervals of a table are a pure function of the results' per-unit scores and of the
test settings, and they are the slow part of a report (a bootstrap draws resamples x units numbers). An entry is
keyed by the sha256 of the results' content, what is tested (labels, setting, metric, alpha) and how (resamples,
seed), plus FORMAT, which changes whenever the computation does. The report hashes the results it has read (their
canonical JSON: the same results from another folder, or with other whitespace, hit the same entry); `compare`
hashes the two files' bytes, so that a repeated comparison needs neither file parsed. Values are JSON, floats
written by `repr` and tables split into index, columns and data, so what is read back equals what was computed bit
for bit. A damaged entry is recomputed, never trusted; a cache folder that cannot be written costs the speed-up,
not the result.
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


def _encode(value: Any) -> Any:
    if not isinstance(value, pd.DataFrame):
        return value
    split = value.to_dict(orient="split")
    return {"frame": {"index_name": value.index.name, "index": split["index"], "columns": split["columns"],
                      "data": split["data"], "dtypes": {c: str(t) for c, t in value.dtypes.items()}}}


def _decode(value: Any) -> Any:
    if not (isinstance(value, dict) and set(value) == {"frame"}):
        return value
    raw = value["frame"]
    frame = pd.DataFrame(raw["data"], index=pd.Index(raw["index"], name=raw["index_name"]), columns=raw["columns"])
    return frame.astype(raw["dtypes"]) if len(frame) else frame


class SignificanceCache:
    """Significance results in `<root>/significance/` (root: `--cache-dir`, else $XBENCH_CACHE or ~/.cache/xbench),
    one JSON file per key; `enabled=False` computes everything (and counts nothing as cached)."""

    def __init__(self, root: Path | None = None, enabled: bool = True) -> None:
        self.folder = (root or default_cache_root()) / SUBFOLDER if enabled else None
        self.hits = self.misses = 0

    def entry(self, key: dict[str, Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The values stored under `key` (JSON values and DataFrames), else `compute()`, stored for the next call."""
        if self.folder is None:
            return compute()
        full = {"format": FORMAT, **key}
        path = self.folder / f"{hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()}.json"
        try:
            values = {name: _decode(value) for name, value in json.loads(path.read_text(encoding="utf-8"))["values"]
                      .items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("%s: damaged significance cache entry (%s); computing it again", path, exc)
        else:
            self.hits += 1
            return values
        self.misses += 1
        values = compute()
        try:
            write_atomic(path, json.dumps({"key": full, "values": {k: _encode(v) for k, v in values.items()}}))
        except XbenchError as exc:
            log.warning("significance cache not written (%s); the next run computes this again", exc)
        return values

    def table(self, key: dict[str, Any], compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """The table stored under `key`, else `compute()`, stored for the next call."""
        return self.entry(key, lambda: {"table": compute()})["table"]
