"""Check a results file: the shipped JSON Schema, the pydantic model, then every aggregate recomputed from the
per-query ranks. A file whose numbers do not follow from its own ranks is rejected, naming the field."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema

from xbench.errors import XbenchError
from xbench.results.schema import SCHEMA_PATH, ResultFile
from xbench.results.store import load
from xbench.scoring.aggregate import bias_figures, macro, per_query_scores, slice_means, summarise

TOLERANCE = 1e-9


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def _compare(path: Path, where: str, stored: dict, recomputed: dict) -> None:
    for key, value in recomputed.items():
        if key not in stored:
            raise XbenchError(f"{path}: field `{where}.{key}` is missing; it follows from the per-query ranks.")
        if isinstance(value, dict):
            _compare(path, f"{where}.{key}", stored[key], value)
        elif not _close(float(stored[key]), float(value)):
            raise XbenchError(f"{path}: field `{where}.{key}` is {stored[key]!r} but the per-query ranks give "
                              f"{value!r}; the aggregates do not match the per-query data.")


def check_aggregates(path: Path, result: ResultFile) -> None:
    for i, s in enumerate(result.slices):
        pq = s.per_query
        lengths = {len(pq.query_index), len(pq.ranks), len(pq.grade_lists()), s.n_queries}
        if len(lengths) != 1 or any(len(r) != len(g) for r, g in zip(pq.ranks, pq.grade_lists())):
            raise XbenchError(f"{path}: field `slices.{i}.per_query`: query_index, ranks, grades and n_queries "
                              "disagree in length.")
        if any(not 0 <= q < len(result.query_ids) for q in pq.query_index):
            raise XbenchError(f"{path}: field `slices.{i}.per_query.query_index` points outside `query_ids`.")
        deepest, lowest = min(pq.depth or s.n_candidates, s.n_candidates), 0 if pq.depth else 1  # 0: not retrieved
        if any(r < lowest or r > deepest for ranks in pq.ranks for r in ranks):
            raise XbenchError(f"{path}: field `slices.{i}.per_query.ranks`: ranks must lie in {lowest}.."
                              f"{deepest} (n_candidates, or `depth` where the run has one; 0 = not retrieved).")
        _compare(path, f"slices.{i}.scores", s.scores,
                 slice_means(per_query_scores(pq, result.task.metrics, s.query_lang)))
    _compare(path, "summary", result.summary, summarise(result.slices))
    _compare(path, "bias", result.bias, bias_figures(result.slices))
    setting, _, metric = result.task.main_metric.partition(".")
    _compare(path, "", {"main_score": result.main_score},
             {"main_score": macro(result.summary, setting, metric)})


def check_file(path: Path) -> ResultFile:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise XbenchError(f"{path}: not a readable JSON file ({exc}).") from None
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(raw))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise XbenchError(f"{path}: field `{where}`: {error.message} (results schema {SCHEMA_PATH.name}).")
    result = load(path)
    check_aggregates(path, result)
    return result
