"""What a forger does to a genuine results file: edit its per-query data, then recompute every aggregate with
xbench's own functions, so that the file agrees with itself and only a check against the task can catch it."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from xbench.results.schema import ResultFile
from xbench.scoring.aggregate import bias_figures, macro, per_query_scores, slice_means, summarise


def recompute(raw: dict) -> dict:
    """`raw` with its slice scores, summary, bias figures and main score recomputed from its per-query data."""
    result = ResultFile.model_validate(raw)
    for s in result.slices:
        s.scores = slice_means(per_query_scores(s.per_query, result.task.metrics, s.query_lang))
    result.summary = summarise(result.slices)
    result.bias = bias_figures(result.slices)
    main = macro(result.summary, *result.task.main_metric.split("."))
    result.main_score = None if math.isnan(main) else main
    return json.loads(result.model_dump_json(exclude_none=True))


def forge(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of the results file `src` with `edit` applied to its JSON and every aggregate recomputed."""
    raw = json.loads(src.read_text())
    edit(raw)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(recompute(raw)))
    return dst


def multi(raw: dict) -> list[dict]:
    return [s for s in raw["slices"] if s["setting"] == "multi"]


def drop_query(s: dict, q: int) -> None:
    """Remove the q-th query of a slice, with every per-query row of it, as if the slice never had it."""
    pq = s["per_query"]
    for key in ("query_index", "ranks", "grades", "top_langs", "rel_langs"):
        if key in pq:
            del pq[key][q]
    s["n_queries"] -= 1
