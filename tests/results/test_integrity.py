"""Result integrity (issue 17): forged files whose aggregates were recomputed with xbench's own functions are
rejected by `validate` and `submit` with the field and the reason; a results file is always loadable; submits
are all-or-nothing under concurrency; size and depth limits; clean errors instead of tracebacks."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from forging import drop_query, forge, multi
from helpers import doctored, html_tables, invoke, snapshot, tiny_miracl, write_beir, write_task

from xbench.cli.common import user_errors
from xbench.errors import XbenchError
from xbench.io import write_atomic
from xbench.results import store
from xbench.results import submit as submit_module
from xbench.results import validate as validate_module
from xbench.results.store import load, nesting_depth
from xbench.results.submit import submit


def validate(env: dict[str, Path], path: Path, *, with_task: bool = True):
    return invoke("validate", str(path), *(["--tasks-dir", str(env["tasks"])] if with_task else []))


def submit_cli(env: dict[str, Path], *paths: Path, replace: bool = False):
    return invoke("submit", *map(str, paths), "--results-dir", str(env["results"]), "--tasks-dir", str(env["tasks"]),
                  *(["--replace"] if replace else []))


# --- forgeries, each with every aggregate recomputed by xbench's own functions ---------------------------------

def _duplicate_ranks(raw: dict) -> None:
    for s in multi(raw):
        s["per_query"]["ranks"] = [[1] + [2] * (len(r) - 1) for r in s["per_query"]["ranks"]]


def _all_ranks_one(raw: dict) -> None:
    for s in multi(raw):
        s["per_query"]["ranks"] = [[1] * len(r) for r in s["per_query"]["ranks"]]


def _drop_misses(raw: dict) -> None:
    """Keep only the queries whose first hit is at rank 1 (and the slices that still have one)."""
    for s in raw["slices"]:
        for q in reversed(range(s["n_queries"])):
            if s["per_query"]["ranks"][q][0] != 1:
                drop_query(s, q)
    raw["slices"] = [s for s in raw["slices"] if s["n_queries"]]


def _drop_misses_keep_slices(raw: dict) -> None:
    """Drop the multi/en query whose second hit is far down; its slice keeps the other."""
    s = multi(raw)[0]
    for q in reversed(range(s["n_queries"])):
        if s["per_query"]["ranks"][q][1] > 3:
            drop_query(s, q)


def _repeat_query(raw: dict) -> None:
    pq = multi(raw)[0]["per_query"]
    for key in ("query_index", "ranks", "top_langs", "rel_langs"):
        pq[key] += [pq[key][0]] * 99
    multi(raw)[0]["n_queries"] += 99


def _best_only(raw: dict) -> None:
    for s in multi(raw):
        s["per_query"]["ranks"] = [r[:1] for r in s["per_query"]["ranks"]]
        s["per_query"]["rel_langs"] = [r[:1] for r in s["per_query"]["rel_langs"]]


def _grade_others_zero(raw: dict) -> None:
    for s in multi(raw):
        s["per_query"]["grades"] = [[1] + [0] * (len(r) - 1) for r in s["per_query"]["ranks"]]


def _regrade(raw: dict) -> None:
    """Grades 2 for the best-ranked candidate: nDCG rises; every grade stays >= 1."""
    for s in multi(raw):
        s["per_query"]["grades"] = [[2] + [1] * (len(r) - 1) for r in s["per_query"]["ranks"]]


def _drop_language(raw: dict) -> None:
    raw["slices"] = [s for s in raw["slices"] if "fr" not in (s["query_lang"], s["cand_lang"])]


def _drop_language_as_subset(raw: dict) -> None:
    """fr dropped everywhere and declared a subset, but the multi pools still hold its candidates."""
    _drop_language(raw)
    raw["task"]["languages"].remove("fr")
    raw["query_ids"].remove("fr:q1")  # the last one: no index moves


def _rename_language(raw: dict) -> None:
    def rename(value: object) -> object:
        return "xx" if value == "fr" else [rename(v) for v in value] if isinstance(value, list) else value

    raw["task"]["languages"] = rename(raw["task"]["languages"])
    for s in raw["slices"]:
        s["query_lang"], s["cand_lang"] = rename(s["query_lang"]), rename(s["cand_lang"])
        for key in ("top_langs", "rel_langs"):
            if key in s["per_query"]:
                s["per_query"][key] = rename(s["per_query"][key])


def _top_langs_disagree(raw: dict) -> None:
    for s in multi(raw):
        s["per_query"]["top_langs"] = [["fr" if lang == s["query_lang"] else lang for lang in top]
                                       for top in s["per_query"]["top_langs"]]


def _top_langs_beyond_pool(raw: dict) -> None:
    """Only the entries no relevant candidate holds are changed, to a language the pool has 2 candidates of."""
    for s in multi(raw):
        pq = s["per_query"]
        pq["top_langs"] = [[lang if i + 1 in ranks else "fr" for i, lang in enumerate(top)]
                           for top, ranks in zip(pq["top_langs"], pq["ranks"])]


def _claim_depth(raw: dict) -> None:
    for s in raw["slices"]:
        s["per_query"]["depth"] = 1
        s["per_query"]["ranks"] = [sorted((r if r == 1 else 0 for r in ranks), key=lambda r: r == 0)
                                   for ranks in s["per_query"]["ranks"]]


def _more_candidates(raw: dict) -> None:
    for s in raw["slices"]:
        s["n_candidates"] *= 10


def _duplicate_slice(raw: dict) -> None:
    raw["slices"].append(raw["slices"][0])


def _duplicate_setting(raw: dict) -> None:
    raw["settings"].append("multi")


def _swap_query_index(raw: dict) -> None:
    pq = multi(raw)[0]["per_query"]
    pq["query_index"] = pq["query_index"][::-1]


FORGERIES = [
    (_duplicate_ranks, r"slices\.3\.per_query\.ranks\.0`: rank 2 appears twice", True),
    (_all_ranks_one, r"slices\.3\.per_query\.ranks\.0`: rank 1 appears twice", True),
    (_drop_misses, r"field `slices`: 6 slice\(s\) of task tiny are missing, e\.g\. cross/en/de", False),
    (_drop_misses_keep_slices, r"slices\.3\.per_query\.query_index`: does not list the 2 queries of multi/en/all",
     False),
    (_repeat_query, r"slices\.3\.per_query\.query_index`: does not list the 2 queries", False),
    (_swap_query_index, r"slices\.3\.per_query\.query_index`: does not list the 2 queries", False),
    (_best_only, r"slices\.3\.per_query\.ranks\.0`: ranks 1 candidates but query 'en:q1' has 3 relevant", False),
    (_grade_others_zero, r"slices\.3\.per_query\.grades\.0`: \[1, 0, 0\]: a results file lists relevant candidates "
                         r"only", True),
    (_regrade, r"slices\.3\.per_query\.grades\.0`: \[2, 1, 1\] are not the grades \[1, 1, 1\]", False),
    (_drop_language, r"field `slices`: 6 slice\(s\) of task tiny are missing, e\.g\. cross/en/fr", False),
    (_drop_language_as_subset, r"slices\.2\.n_candidates`: is 10 but the task's pool for multi/en/all holds 8",
     False),
    (_rename_language, r"field `task\.languages`: xx is no language of task tiny \(en, de, fr\)", False),
    (_top_langs_disagree, r"slices\.3\.per_query\.top_langs\.0`: entry 1 is 'fr' but the relevant candidate ranked "
                          r"1 is in 'en'", True),
    (_top_langs_beyond_pool, r"slices\.3\.per_query\.top_langs\.0`: holds 8 candidates in 'fr'; the pool has 2",
     False),
    (_claim_depth, r"slices\.0\.per_query\.depth`: is 1 but the task's search depth is None", False),
    (_more_candidates, r"slices\.0\.n_candidates`: is 40 but the task's pool for mono/en/en holds 4", False),
    (_duplicate_slice, r"slices\.12`: slice mono/en/en repeats slices\.0", False),
    (_duplicate_setting, r"field `settings`: \['mono', 'cross', 'multi', 'multi'\]: each setting once", True),
]


@pytest.mark.parametrize("edit, pattern, caught_by_itself", FORGERIES, ids=[f[0].__name__ for f in FORGERIES])
def test_forged_files_are_rejected_with_field_and_reason(env, edit: Callable[[dict], None], pattern: str,
                                                         caught_by_itself: bool):
    forged = forge(env["bm25"], env["tmp"] / "forged.json", edit)
    checked = validate(env, forged)
    assert checked.exit_code == 2 and checked.output.startswith(f"error: {forged}: field `"), checked.output
    assert re.search(pattern, checked.output), checked.output
    assert "re-run" in checked.output or "remove" in checked.output  # the fix
    alone = validate(env, forged, with_task=False)  # without the task, only what the file shows by itself
    assert (alone.exit_code == 2) == caught_by_itself, alone.output
    assert submit_cli(env, env["st"]).exit_code == 0
    before = snapshot(env["results"])
    refused = submit_cli(env, forged)
    assert refused.exit_code == 2 and re.search(pattern, refused.output) and "Nothing was written" in refused.output
    assert snapshot(env["results"]) == before


def test_genuine_files_pass_against_their_task(env):
    for path in (env["bm25"], env["st"]):
        res = validate(env, path)
        assert res.exit_code == 0 and res.output == f"{path}: valid (against itself and task 'tiny')\n"
    alone = validate(env, env["bm25"], with_task=False)
    assert alone.exit_code == 0 and "valid against itself only: task 'tiny' is not known here; pass --tasks-dir" \
        in alone.output


def test_summary_keys_no_slice_gives_are_rejected(env):
    def invent(raw: dict) -> None:
        raw["summary"]["multi"]["xx"] = {"map": 1.0}

    bad = doctored(env["bm25"], env["tmp"] / "bad.json", invent)
    res = validate(env, bad, with_task=False)
    assert res.exit_code == 2 and "field `summary.multi.xx`: does not follow from the per-query ranks" in res.output


def test_nan_is_not_json(env):
    bad = env["tmp"] / "nan.json"
    bad.write_text(re.sub(r'"main_score":[^,]+', '"main_score": NaN', env["bm25"].read_text()))
    for res in (validate(env, bad), submit_cli(env, bad)):
        assert res.exit_code == 2 and f"{bad}: not valid JSON (NaN is not a JSON number)" in res.output
    assert not env["results"].exists()


# --- what `xbench run` writes: no NaN, no empty file, a language subset recorded and marked ------------------

def run_bm25(env: dict[str, Path], out: Path, *extra: str):
    return invoke("run", "--model", "bm25", "--tasks", "tiny", "--tasks-dir", str(env["tasks"]), "--output",
                  str(out), "--cache-dir", str(env["tmp"] / "cache"), *extra)


def test_without_the_main_setting_the_main_score_is_absent_and_shown_as_a_dash(env, tiny_results):
    res = run_bm25(env, env["tmp"] / "mono", "--settings", "mono,mono")  # a repeated setting runs once
    assert res.exit_code == 0, res.output
    path = env["tmp"] / "mono" / "bm25" / "tiny.json"
    assert "main_score" not in json.loads(path.read_text())
    assert load(path).main_score is None and load(path).settings == ["mono"]
    assert validate(env, path).exit_code == 0
    out = env["tmp"] / "index.html"
    shown = invoke("report", str(env["tmp"] / "mono"), str(tiny_results / "results" / "tiny-st"), "--out", str(out),
                   "--resamples", "100")
    assert shown.exit_code == 0, shown.output
    board = html_tables(out.read_text())["board-tiny"]
    assert board.loc["bm25", "multi map"] == "–" and board.loc["bm25", "mono map"] == "1.000"


def test_a_run_without_any_slice_is_an_error_and_writes_nothing(env):
    res = run_bm25(env, env["tmp"] / "out", "--languages", "fr", "--settings", "cross")
    assert res.exit_code == 1  # the task failed
    assert "task tiny: no slice to rank for settings cross on languages fr" in res.output
    assert not (env["tmp"] / "out" / "bm25").exists()


def test_a_language_subset_is_accepted_and_marked_in_the_report(env, tiny_results):
    assert run_bm25(env, env["tmp"] / "sub", "--languages", "en,de").exit_code == 0
    path = env["tmp"] / "sub" / "bm25" / "tiny.en+de.json"
    assert validate(env, path).exit_code == 0
    assert submit_cli(env, path).exit_code == 0
    out = env["tmp"] / "index.md"
    res = invoke("report", str(env["results"]), str(tiny_results / "results" / "tiny-st"), "--format", "md",
                 "--out", str(out), "--resamples", "100")
    assert res.exit_code == 0, res.output
    assert "**Warning:** Language subsets: bm25 on en, de only (of de, en, fr)." in out.read_text()


def test_report_skips_and_names_an_unreadable_file_unless_strict(env, tiny_results):
    folder = env["tmp"] / "mixed"
    shutil.copytree(tiny_results / "results", folder)
    (folder / "broken" / "tiny.json").parent.mkdir()
    (folder / "broken" / "tiny.json").write_text("{")
    out = env["tmp"] / "index.html"
    res = invoke("report", str(folder), "--out", str(out), "--resamples", "100")
    assert res.exit_code == 0 and f"warning: skipped {folder / 'broken' / 'tiny.json'}: not valid JSON" in res.output
    assert f"wrote {out} (2 results files)" in res.output
    strict = invoke("report", str(folder), "--out", str(env["tmp"] / "strict.html"), "--strict")
    assert strict.exit_code == 2 and f"error: {folder / 'broken' / 'tiny.json'}: not valid JSON" in strict.output
    assert not (env["tmp"] / "strict.html").exists()


# --- limits ------------------------------------------------------------------------------------------------

def test_nesting_depth_counts_brackets_outside_strings_only():
    assert nesting_depth(b'{"a": "[[[\\"[[", "b": [[1]]}') == 3
    assert nesting_depth(b'["\\\\", [[]]]') == 3  # an escaped backslash does not escape the quote after it
    assert nesting_depth(b'["]]]]]]", [[[[]]]]]') == 5  # closing brackets inside a string hide nothing
    assert nesting_depth(b"[" * 100_000) == 100_000


def test_deeply_nested_file_is_refused_everywhere_before_parsing(env):
    def nest(raw: dict) -> None:
        raw["model"]["card"]["x"] = json.loads("[" * 900 + "]" * 900)

    deep = doctored(env["bm25"], env["tmp"] / "in" / "bm25" / "tiny.json", nest)
    deep.write_text(deep.read_text().replace("[" * 900 + "]" * 900, "[" * 100_000 + "]" * 100_000))
    message = f"{deep}: JSON nested 100003 levels deep, over the limit of 64"
    for res in (validate(env, deep), submit_cli(env, deep),
                invoke("report", str(env["tmp"] / "in"), "--out", str(env["tmp"] / "r.html"), "--strict")):
        assert res.exit_code == 2 and message in res.output, res.output
    rerun = run_bm25(env, env["tmp"] / "in")  # such a file at the target path: the run replaces it
    assert rerun.exit_code == 0 and "tiny: done" in rerun.output
    assert load(deep).model.name == "bm25"


def test_oversized_file_is_refused_before_reading(env, monkeypatch):
    monkeypatch.setattr(store, "MAX_BYTES", 1 << 20)

    def pad_command(raw: dict) -> None:
        raw["run"]["command"] += " " * (2 << 20)

    big = doctored(env["bm25"], env["tmp"] / "big.json", pad_command)
    for res in (validate(env, big), submit_cli(env, big)):
        assert res.exit_code == 2 and f"{big}: 2.0 MiB, over the 1 MiB limit of a results file" in res.output
    assert not env["results"].exists()


# --- submit: all or nothing, one winner when racing -------------------------------------------------------

def _race(path: Path, results: Path, tasks: Path, barrier: Any, outcomes: Any) -> None:
    """One submit process: wait for the other, then submit."""
    barrier.wait()
    try:
        submit([path], results, (tasks,))
    except XbenchError as exc:
        outcomes.put((path, f"refused: {exc}"))
    else:
        outcomes.put((path, "accepted"))


def test_racing_submits_of_one_pair_give_one_acceptance_and_one_refusal(env, monkeypatch):
    def other_run(raw: dict) -> None:  # valid, but another file for the same (model, task)
        raw["run"]["started"] = "2000-01-01T00:00:00+00:00"

    other = doctored(env["bm25"], env["tmp"] / "other.json", other_run)
    checked = submit_module.check_target

    def slow_check(*args: Any, **kwargs: Any) -> None:
        """Widen the window between the clash check and the commit, where two unlocked submits both get through
        (without the lock, every round here accepts both)."""
        checked(*args, **kwargs)
        time.sleep(0.3)

    monkeypatch.setattr(submit_module, "check_target", slow_check)  # inherited by the forked submit processes
    ctx = multiprocessing.get_context("fork")
    for round_ in range(4):
        results = env["tmp"] / f"results{round_}"
        barrier, queue = ctx.Barrier(2), ctx.Queue()
        racers = [ctx.Process(target=_race, args=(p, results, env["tasks"], barrier, queue))
                  for p in (env["bm25"], other)]
        for racer in racers:
            racer.start()
        outcomes = dict(queue.get(timeout=120) for _ in racers)
        for racer in racers:
            racer.join()
        assert sorted(o.split(":")[0] for o in outcomes.values()) == ["accepted", "refused"], outcomes
        winner = next(p for p, o in outcomes.items() if o == "accepted")
        assert "different results for this pair are already in" in outcomes[other if winner == env["bm25"] else
                                                                             env["bm25"]]
        assert load(results / "bm25" / "tiny.json") == load(winner)
        assert list(snapshot(results)) == ["bm25/tiny.json"]  # no staged or backup file left


def test_a_failed_commit_rolls_the_batch_back(env, monkeypatch):
    def renamed(raw: dict) -> None:
        raw["model"]["name"] = "second"

    second = doctored(env["st"], env["tmp"] / "second.json", renamed)
    assert submit_cli(env, env["bm25"]).exit_code == 0
    before = snapshot(env["results"])
    real = os.replace

    def failing(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == env["results"] / "second" / "tiny.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    newer = doctored(env["bm25"], env["tmp"] / "newer.json", lambda raw: raw["run"].update(device="cuda"))
    res = submit_cli(env, newer, second, replace=True)
    assert res.exit_code == 2
    assert f"{env['results'] / 'second' / 'tiny.json'}: cannot write results there (No space left on device)" \
        in res.output and "Nothing was written" in res.output
    assert snapshot(env["results"]) == before  # bm25 put back as it was, no second/, no staged file
    assert not (env["results"] / "second").exists()


def test_a_target_that_is_a_folder_is_refused(env):
    (env["results"] / "bm25" / "tiny.json").mkdir(parents=True)
    res = submit_cli(env, env["bm25"], replace=True)
    assert res.exit_code == 2 and "the target" in res.output and "is not a file (a folder?)" in res.output
    assert snapshot(env["results"]) == {}


# --- clean errors: writes that fail, Ctrl-C --------------------------------------------------------------

def test_write_atomic_names_the_path_on_a_full_disk_or_a_folder(tmp_path, monkeypatch):
    (tmp_path / "dir").mkdir()
    with pytest.raises(XbenchError, match=re.escape(f"{tmp_path / 'dir'}: cannot write the file (it is a folder)")):
        write_atomic(tmp_path / "dir", "x")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(XbenchError, match=re.escape(f"{tmp_path / 'f'}: cannot write the file (No space left")):
        write_atomic(tmp_path / "f", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]  # no temp file left behind


def test_schema_or_report_out_a_folder_is_a_clean_error(tiny_results, tmp_path):
    for res in (invoke("schema", "--out", str(tmp_path)),
                invoke("report", str(tiny_results / "results"), "--out", str(tmp_path), "--resamples", "100")):
        assert res.exit_code == 2 and f"error: {tmp_path}: cannot write the file (it is a folder)" in res.output


def test_ctrl_c_exits_130_without_a_traceback():
    @click.command()
    @user_errors
    def interrupted() -> None:
        raise KeyboardInterrupt

    res = CliRunner().invoke(interrupted, [])
    assert res.exit_code == 130 and res.output == "interrupted\n"


def test_an_empty_slice_or_an_oversized_one_is_refused_before_any_metric(env, monkeypatch):
    def empty(raw: dict) -> None:
        s = multi(raw)[0]
        for q in reversed(range(s["n_queries"])):
            drop_query(s, q)

    bad = doctored(env["bm25"], env["tmp"] / "empty.json", empty)
    res = validate(env, bad, with_task=False)
    assert res.exit_code == 2 and "field `slices.3.per_query`: a slice holds the queries with a relevant" in res.output
    monkeypatch.setattr(validate_module, "MAX_PADDED", 5)  # multi/en: 2 queries x 3 ranks
    res = validate(env, env["bm25"], with_task=False)
    assert res.exit_code == 2 and "field `slices.3.per_query.ranks`: 2 queries with up to 3 ranks each" in res.output


def test_a_run_with_a_depth_is_checked_against_its_task(tmp_path):
    data = tiny_miracl()
    tasks, beir = write_task(tmp_path, data, variant="full"), write_beir(tmp_path / "beir", data)
    given = ("--tasks-dir", str(tasks), "--data-dir", f"tinymiracl={beir}")
    res = invoke("run", "--model", "bm25", "--tasks", "tinymiracl", "--output", str(tmp_path / "out"), *given,
                 env={"XBENCH_CACHE": str(tmp_path / "cache")})
    assert res.exit_code == 0, res.output
    path = tmp_path / "out" / "bm25" / "tinymiracl.json"
    assert any(0 in r for s in load(path).slices for r in s.per_query.ranks)  # relevant passages below the top 100
    res = invoke("validate", str(path), *given)
    assert res.exit_code == 0 and "valid (against itself and task 'tinymiracl')" in res.output
    alone = invoke("validate", str(path), "--tasks-dir", str(tasks), env={"XBENCH_CACHE": str(tmp_path / "none")})
    assert alone.exit_code == 0 and "valid against itself only: the data of task 'tinymiracl' is not here" \
        in alone.output

    def shallower(raw: dict) -> None:  # a top-50 run claimed instead of the task's top 100
        for s in raw["slices"]:
            s["per_query"]["depth"] = 50
            s["per_query"]["ranks"] = [sorted((r if r <= 50 else 0 for r in ranks), key=lambda r: r == 0)
                                       for ranks in s["per_query"]["ranks"]]

    forged = forge(path, tmp_path / "forged.json", shallower)
    res = invoke("validate", str(forged), *given)
    assert res.exit_code == 2 and "field `slices.0.per_query.depth`: is 50 but the task's search depth is 100" \
        in res.output
