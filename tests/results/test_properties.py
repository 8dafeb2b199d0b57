"""Property: any mutation of a genuine results file, with or without its aggregates recomputed by xbench's own
functions, is either rejected by validation against the task, or still covers the task exactly (the genuine
file's slices, queries, pools and grades) with every aggregate equal to what its per-query data give."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from forging import drop_query, recompute
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from xbench.errors import XbenchError
from xbench.results.validate import LocalTasks, check_file
from xbench.tasks.registry import discover

Mutation = Callable[[dict, st.DataObject], None]


def _pick(data: st.DataObject, items: list, label: str) -> Any:
    """One of `items`; an example whose earlier mutations left none is not generated."""
    if not items:
        reject()
    return data.draw(st.sampled_from(items), label=label)


def _slice(raw: dict, data: st.DataObject) -> dict:
    return _pick(data, [s for s in raw["slices"] if s["per_query"]["ranks"]], "slice")


def _query(s: dict, data: st.DataObject) -> int:
    return data.draw(st.integers(0, len(s["per_query"]["ranks"]) - 1), label="query")


def set_rank(raw: dict, data: st.DataObject) -> None:
    s = _slice(raw, data)
    ranks = s["per_query"]["ranks"][_query(s, data)]
    ranks[data.draw(st.integers(0, len(ranks) - 1))] = data.draw(st.integers(-1, max(s["n_candidates"], -1) + 1),
                                                                 label="rank")


def permute_ranks(raw: dict, data: st.DataObject) -> None:
    """Other distinct ranks, kept sorted: a different but well-formed ranking."""
    s = _slice(raw, data)
    q = _query(s, data)
    n = len(s["per_query"]["ranks"][q])
    if s["n_candidates"] < max(n, 1):  # an earlier mutation shrank the pool below this query's relevant count
        reject()
    s["per_query"]["ranks"][q] = sorted(data.draw(st.lists(st.integers(1, s["n_candidates"]), min_size=n,
                                                           max_size=n, unique=True), label="ranks"))


def set_query_index(raw: dict, data: st.DataObject) -> None:
    s = _slice(raw, data)
    s["per_query"]["query_index"][_query(s, data)] = data.draw(st.integers(-1, len(raw["query_ids"])), label="index")


def set_grade(raw: dict, data: st.DataObject) -> None:
    s = _slice(raw, data)
    pq = s["per_query"]
    pq.setdefault("grades", [[1] * len(r) for r in pq["ranks"]])
    grades = pq["grades"][_query(s, data)]
    grades[data.draw(st.integers(0, len(grades) - 1))] = data.draw(st.integers(0, 3), label="grade")


def drop_slice(raw: dict, data: st.DataObject) -> None:
    raw["slices"].remove(_slice(raw, data))


def repeat_slice(raw: dict, data: st.DataObject) -> None:
    raw["slices"].append(copy.deepcopy(_slice(raw, data)))


def remove_query(raw: dict, data: st.DataObject) -> None:
    s = _slice(raw, data)
    drop_query(s, _query(s, data))


def repeat_query(raw: dict, data: st.DataObject) -> None:
    s = _slice(raw, data)
    q = _query(s, data)
    for rows in s["per_query"].values():
        if isinstance(rows, list):
            rows.append(copy.deepcopy(rows[q]))
    s["n_queries"] += 1


def rename_language(raw: dict, data: st.DataObject) -> None:
    old = data.draw(st.sampled_from(raw["task"]["languages"]), label="language")
    new = data.draw(st.sampled_from(["xx", *raw["task"]["languages"]]), label="renamed")
    text = json.dumps({k: raw[k] for k in ("task", "slices")}).replace(f'"{old}"', f'"{new}"')
    raw.update(json.loads(text))


def change_count(raw: dict, data: st.DataObject) -> None:
    s = _slice(raw, data)
    key = data.draw(st.sampled_from(["n_queries", "n_candidates"]), label="count")
    s[key] += data.draw(st.integers(-2, 2).filter(bool), label="by")


def change_top(raw: dict, data: st.DataObject) -> None:
    s = _pick(data, [s for s in raw["slices"] if s["setting"] == "multi" and s["per_query"]["ranks"]], "multi")
    top = s["per_query"]["top_langs"][_query(s, data)]
    top[data.draw(st.integers(0, len(top) - 1))] = data.draw(st.sampled_from(raw["task"]["languages"]), label="lang")


def set_depth(raw: dict, data: st.DataObject) -> None:
    _slice(raw, data)["per_query"]["depth"] = data.draw(st.integers(1, 12), label="depth")


def drop_setting(raw: dict, data: st.DataObject) -> None:
    raw["settings"].remove(_pick(data, raw["settings"], "setting"))


MUTATIONS: list[Mutation] = [set_rank, permute_ranks, set_query_index, set_grade, drop_slice, repeat_slice,
                             remove_query, repeat_query, rename_language, change_count, change_top, set_depth,
                             drop_setting]


def coverage(raw: dict) -> dict:
    """What a file must keep of the genuine one: per slice, its pool size, queries and sorted grades."""
    return {(s["setting"], s["query_lang"], s["cand_lang"]):
            (s["n_candidates"], s["per_query"]["query_index"],
             [sorted(g) for g in s["per_query"].get("grades", [[1] * len(r) for r in s["per_query"]["ranks"]])])
            for s in raw["slices"]}


@pytest.fixture(scope="module")
def genuine(tiny_results) -> tuple[dict, LocalTasks]:
    raw = json.loads((tiny_results / "results" / "bm25" / "tiny.json").read_text())
    return raw, LocalTasks(discover((tiny_results / "tasks",)))


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # the forger's recompute of rank 0 / -1
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_file_is_rejected_or_still_genuine(genuine, tmp_path: Path, data: st.DataObject):
    original, tasks = genuine
    raw = copy.deepcopy(original)
    for mutation in data.draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3), label="mutations"):
        mutation(raw, data)
    if data.draw(st.booleans(), label="recompute"):
        with contextlib.suppress(Exception):  # some mutations leave nothing to recompute from: stale aggregates
            raw = recompute(raw)  # the forger's move
    path = tmp_path / "mutated.json"
    path.write_text(json.dumps(raw))
    try:
        check_file(path, tasks)
    except XbenchError as exc:
        assert str(exc).startswith(f"{path}: ")
        return
    assert coverage(raw) == coverage(original)
    assert sorted(raw["settings"]) == sorted(original["settings"])
    assert recompute(raw) == raw  # every aggregate equals what the per-query data give
