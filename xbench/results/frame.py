"""Results files as one tidy table: the object `xbench.evaluate` and `xbench.load_results` return."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xbench.errors import XbenchError
from xbench.results.schema import ResultFile
from xbench.results.store import collect, load

COLUMNS = ["model", "task", "setting", "query_lang", "cand_lang", "metric", "value"]


@dataclass(frozen=True)
class Results:
    """Results files of one or more (model, task) runs."""

    files: tuple[ResultFile, ...]

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[ResultFile]:
        return iter(self.files)

    def to_pandas(self) -> pd.DataFrame:
        """One row per (model, task, setting, query language, candidate language, metric); cand_lang is 'all' in
        the multilingual setting. Macro averages are `.groupby(...)` away, or see `main_scores`."""
        rows = [(r.model.name, r.task.name, s.setting, s.query_lang, s.cand_lang, metric, value)
                for r in self.files for s in r.slices for metric, value in s.scores.items()]
        return pd.DataFrame(rows, columns=COLUMNS)

    def main_scores(self) -> pd.DataFrame:
        """The leaderboard number of each (model, task): its main metric's macro average."""
        return pd.DataFrame([(r.model.name, r.task.name, r.task.main_metric, r.main_score) for r in self.files],
                            columns=["model", "task", "main_metric", "main_score"])


def load_results(path: str | Path) -> Results:
    """A results file, or every results file under a folder."""
    path = Path(path)
    if path.is_file():
        return Results((load(path),))
    if path.is_dir():
        return Results(tuple(collect([path])))
    raise XbenchError(f"{path}: no such results file or folder; pass what `xbench run` or `xbench.evaluate` wrote.")
