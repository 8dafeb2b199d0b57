"""`xbench compare`: a paired significance test of two models on one task, with per-language differences.

The tests and differences come from the significance cache (`xbench.analysis.cache`), keyed by both files' bytes,
so a second compare of the same files is a lookup that parses neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from xbench.analysis.cache import SignificanceCache
from xbench.analysis.significance import T_TEST_MIN_UNITS, compare_pair, language_differences
from xbench.errors import XbenchError
from xbench.io import sha256_file
from xbench.results.schema import ResultFile
from xbench.results.store import load, result_path


def find_path(ref: str, task: str, results_dir: Path) -> Path:
    """A results file given by path, or by model name under `results_dir`."""
    path = Path(ref)
    if path.is_file():
        return path
    path = result_path(results_dir, ref, task)
    if not path.is_file():
        there = sorted(p.parent.name for p in Path(results_dir).glob(f"*/{path.name}"))
        raise XbenchError(f"{ref}: neither a results file nor a model with results for task {task} in "
                          f"{results_dir} (looked for {path}); models there: {', '.join(there) or 'none'}.")
    return path


def load_on(path: Path, task: str) -> ResultFile:
    """The results file at `path`, which must be on `task`."""
    result = load(path)
    if result.task.name != task:
        raise XbenchError(f"{path}: field `task.name` is {result.task.name!r}, not {task!r}; pass --task "
                          f"{result.task.name} or another file.")
    return result


@dataclass
class Comparison:
    a: str  # model names
    a_path: Path
    b: str
    b_path: Path
    task: str
    metric: str
    n_resamples: int
    seed: int
    tests: pd.DataFrame  # per setting: units, A, B, A-B, ci_low, ci_high, p
    languages: pd.DataFrame  # A - B per query language (rows) and setting (columns)

    def text(self) -> str:
        """What `xbench compare` prints."""
        with pd.option_context("display.float_format", "{:.5f}".format, "display.width", 200):
            return (f"A = {self.a} ({self.a_path})\nB = {self.b} ({self.b_path})\n"
                    f"task {self.task}, metric {self.metric}: macro means over the units both scored; paired "
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

        return {"task": self.task, "metric": self.metric, "resamples": self.n_resamples, "seed": self.seed,
                "a": {"model": self.a, "path": str(self.a_path)}, "b": {"model": self.b, "path": str(self.b_path)},
                "settings": clean(self.tests), "languages": clean(self.languages)}


def compare(a_ref: str, b_ref: str, task: str, results_dir: Path, n_resamples: int = 9999, seed: int = 0,
            cache: SignificanceCache | None = None) -> Comparison:
    """A against B on `task`: the paired test per setting and A - B per query language, from the cache when these
    two files were compared before with these resamples and seed (then neither file is parsed)."""
    a_path, b_path = find_path(a_ref, task, results_dir), find_path(b_ref, task, results_dir)

    def computed() -> dict[str, Any]:
        a, b = load_on(a_path, task), load_on(b_path, task)
        metric = a.task.main_metric.partition(".")[2]
        return {"a": a.model.name, "b": b.model.name, "metric": metric,
                "tests": compare_pair(a, b, metric, n_resamples, seed),
                "languages": language_differences(a, b, metric)}

    key = {"kind": "compare", "a": sha256_file(a_path), "b": sha256_file(b_path), "task": task,
           "resamples": n_resamples, "seed": seed}
    found = (cache or SignificanceCache()).entry(key, computed)
    return Comparison(found["a"], a_path, found["b"], b_path, task, found["metric"], n_resamples, seed,
                      found["tests"], found["languages"])
