"""`xbench compare`: a paired significance test of two models on one task, with per-language differences.

The tests come from the significance cache (`xbench.analysis.cache`), keyed by both results' content, so a second
compare of the same files is a lookup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from xbench.analysis.cache import SignificanceCache, content_hash
from xbench.analysis.significance import T_TEST_MIN_UNITS, compare_pair, language_differences
from xbench.errors import XbenchError
from xbench.results.schema import ResultFile
from xbench.results.store import load, result_path


def find_result(ref: str, task: str, results_dir: Path) -> tuple[ResultFile, Path]:
    """A results file given by path, or by model name under `results_dir`."""
    path = Path(ref)
    if not path.is_file():
        path = result_path(results_dir, ref, task)
        if not path.is_file():
            there = sorted(p.parent.name for p in Path(results_dir).glob(f"*/{path.name}"))
            raise XbenchError(f"{ref}: neither a results file nor a model with results for task {task} in "
                              f"{results_dir} (looked for {path}); models there: {', '.join(there) or 'none'}.")
    result = load(path)
    if result.task.name != task:
        raise XbenchError(f"{path}: field `task.name` is {result.task.name!r}, not {task!r}; pass --task "
                          f"{result.task.name} or another file.")
    return result, path


@dataclass
class Comparison:
    a: ResultFile
    a_path: Path
    b: ResultFile
    b_path: Path
    metric: str
    n_resamples: int
    seed: int
    tests: pd.DataFrame  # per setting: units, A, B, A-B, ci_low, ci_high, p
    languages: pd.DataFrame  # A - B per query language (rows) and setting (columns)

    def text(self) -> str:
        """What `xbench compare` prints."""
        with pd.option_context("display.float_format", "{:.5f}".format, "display.width", 200):
            return (f"A = {self.a.model.name} ({self.a_path})\nB = {self.b.model.name} ({self.b_path})\n"
                    f"task {self.a.task.name}, metric {self.metric}: macro means over the units both scored; paired "
                    f"t-test on the macro-weighted difference (from {T_TEST_MIN_UNITS} effective units; fewer: "
                    f"sign-flip test, {self.n_resamples} resamples, seed {self.seed}, exact when units are few), 95% "
                    "bootstrap CI of A-B. A unit is a query (mono, multi) or a (query, candidate language) pair "
                    f"(cross).\n\n{self.tests.to_string()}\n\nA - B {self.metric} per query language:\n"
                    f"{self.languages.to_string()}\n")

    def to_dict(self) -> dict[str, Any]:
        """What `xbench compare --json` prints (missing values as null)."""
        def clean(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
            return {str(row): {str(k): None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}
                    for row, values in frame.to_dict(orient="index").items()}

        return {"task": self.a.task.name, "metric": self.metric, "resamples": self.n_resamples, "seed": self.seed,
                "a": {"model": self.a.model.name, "path": str(self.a_path)},
                "b": {"model": self.b.model.name, "path": str(self.b_path)},
                "settings": clean(self.tests), "languages": clean(self.languages)}


def compare(a_ref: str, b_ref: str, task: str, results_dir: Path, n_resamples: int = 9999, seed: int = 0,
            cache: SignificanceCache | None = None) -> Comparison:
    """A against B on `task`: the paired test per setting (from the cache when computed before), and A - B per
    query language."""
    (a, a_path), (b, b_path) = find_result(a_ref, task, results_dir), find_result(b_ref, task, results_dir)
    metric = a.task.main_metric.partition(".")[2]
    key = {"kind": "pair", "a": content_hash(a), "b": content_hash(b), "metric": metric, "resamples": n_resamples,
           "seed": seed}
    tests = (cache or SignificanceCache()).table(key, lambda: compare_pair(a, b, metric, n_resamples, seed))
    return Comparison(a, a_path, b, b_path, metric, n_resamples, seed, tests, language_differences(a, b, metric))
