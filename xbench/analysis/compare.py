"""`xbench compare`: a paired significance test of two models on one task, with per-language differences."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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


def compare(a_ref: str, b_ref: str, task: str, results_dir: Path, n_resamples: int = 9999, seed: int = 0) -> str:
    """The terminal text of `xbench compare`: the paired test per setting, then A - B per query language."""
    (a, a_path), (b, b_path) = find_result(a_ref, task, results_dir), find_result(b_ref, task, results_dir)
    metric = a.task.main_metric.partition(".")[2]
    tests = compare_pair(a, b, metric, n_resamples, seed)
    with pd.option_context("display.float_format", "{:.5f}".format, "display.width", 200):
        return (f"A = {a.model.name} ({a_path})\nB = {b.model.name} ({b_path})\n"
                f"task {task}, metric {metric}: macro means over the units both scored; paired t-test on the "
                f"macro-weighted difference (from {T_TEST_MIN_UNITS} effective units; fewer: sign-flip test, "
                f"{n_resamples} resamples, seed {seed}, exact when units are few), 95% bootstrap CI of A-B. "
                "A unit is a query (mono, multi) or a (query, candidate language) pair (cross).\n\n"
                f"{tests.to_string()}\n\nA - B {metric} per query language:\n"
                f"{language_differences(a, b, metric).to_string()}\n")
