"""`xbench submit`: real results files go in at their normalised path; each kind of bad file is rejected with
its field, exit code 2 and an untouched results folder."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import doctored, invoke, snapshot

from xbench.results.store import load


def submit(env: dict[str, Path], *files: Path, replace: bool = False):
    return invoke("submit", *map(str, files), "--results-dir", str(env["results"]), "--tasks-dir", str(env["tasks"]),
                  *(["--replace"] if replace else []))


def test_accepts_valid_files_at_normalised_paths(env):
    res = submit(env, env["bm25"], env["st"])
    assert res.exit_code == 0, res.output
    assert sorted(snapshot(env["results"])) == ["bm25/tiny.json", "tiny-st/tiny.json"]
    assert load(env["results"] / "bm25" / "tiny.json") == load(env["bm25"])
    assert invoke("validate", str(env["results"] / "tiny-st" / "tiny.json")).exit_code == 0


def test_names_in_the_file_cannot_escape_results(env):
    def traverse(raw: dict) -> None:
        raw["model"]["name"] = "../../../outside"

    bad = doctored(env["bm25"], env["tmp"] / "in" / "x.json", traverse)
    res = submit(env, bad)
    assert res.exit_code == 0, res.output
    assert list(snapshot(env["results"])) == ["outside/tiny.json"]
    assert not (env["tmp"] / "outside").exists() and not (env["tmp"].parent / "outside").exists()


def _drop_main_score(raw: dict) -> None:
    del raw["main_score"]


def _bad_type(raw: dict) -> None:
    raw["slices"][0]["n_queries"] = "five"


def _tamper(raw: dict) -> None:
    raw["summary"]["multi"]["macro"]["map"] += 0.1


def _unknown_task(raw: dict) -> None:
    raw["task"]["name"] = "tinyy"


def _other_spec(raw: dict) -> None:
    raw["task"]["description"] = "another description"


def _other_data(raw: dict) -> None:
    raw["data_sha256"] = "0" * 64


@pytest.mark.parametrize("edit, pattern", [
    (_drop_main_score, r"field `main_score`: is absent but the per-query ranks give 0\.\d+"),
    (_bad_type, r"field `slices\.0\.n_queries`: 'five' is not of type 'integer'"),
    (_tamper, r"field `summary\.multi\.macro\.map` is .* but the per-query ranks give"),
    (_unknown_task, r"field `task\.name`: unknown task 'tinyy' \(did you mean tiny\?\)"),
    (_other_spec, r"field `task\.description` is 'another description' but the local spec .*tiny\.yaml"),
    (_other_data, r"field `data_sha256` is 0000000000000000\.\.\. but the local data of task tiny hashes to"),
])
def test_each_rejection_names_the_field_and_leaves_results_untouched(env, edit: Callable[[dict], None], pattern):
    assert submit(env, env["st"]).exit_code == 0
    before = snapshot(env["results"])
    bad = doctored(env["bm25"], env["tmp"] / "bad.json", edit)
    res = submit(env, env["bm25"], bad)  # a good file first: the batch is all or nothing
    assert res.exit_code == 2
    assert res.output.startswith(f"error: {bad}: ") and re.search(pattern, res.output), res.output
    assert "Nothing was written" in res.output
    assert snapshot(env["results"]) == before


def test_not_json(env):
    bad = env["tmp"] / "broken.json"
    bad.write_text("{")
    res = submit(env, bad)
    assert res.exit_code == 2 and f"{bad}: not valid JSON" in res.output
    assert not env["results"].exists()


def test_duplicates_and_conflicts_need_replace(env):
    assert submit(env, env["bm25"]).exit_code == 0
    again = submit(env, env["bm25"])
    assert again.exit_code == 2 and "the same results are already in" in again.output and "--replace" in again.output

    def as_bm25(raw: dict) -> None:
        raw["model"]["name"] = "bm25"

    other = doctored(env["st"], env["tmp"] / "other.json", as_bm25)
    conflict = submit(env, other)
    assert conflict.exit_code == 2 and "different results for this pair are already in" in conflict.output
    assert load(env["results"] / "bm25" / "tiny.json") == load(env["bm25"])
    replaced = submit(env, other, replace=True)
    assert replaced.exit_code == 0, replaced.output
    assert load(env["results"] / "bm25" / "tiny.json") == load(other)


def test_same_pair_twice_in_one_batch(env):
    copy = shutil.copy(env["bm25"], env["tmp"] / "copy.json")
    res = submit(env, env["bm25"], copy, replace=True)
    assert res.exit_code == 2 and f"{env['bm25']} in this batch holds results for the same" in res.output
    assert not env["results"].exists()


def test_a_colliding_name_never_overwrites_another_model(env):
    assert submit(env, env["bm25"]).exit_code == 0

    def org_bm25(raw: dict) -> None:
        raw["model"]["name"] = "org/bm25"

    other = doctored(env["st"], env["tmp"] / "org.json", org_bm25)
    res = submit(env, other, replace=True)
    assert res.exit_code == 2 and "which holds model 'bm25'" in res.output
    assert load(env["results"] / "bm25" / "tiny.json") == load(env["bm25"])


def test_a_language_subset_goes_beside_the_full_run(env):
    subset_run = invoke("run", "--model", "bm25", "--tasks", "tiny", "--tasks-dir", str(env["tasks"]), "--languages",
                        "de,en", "--output", str(env["tmp"] / "subset"), "--cache-dir", str(env["tmp"] / "cache"))
    assert subset_run.exit_code == 0, subset_run.output
    res = submit(env, env["bm25"], env["tmp"] / "subset" / "bm25" / "tiny.en+de.json")
    assert res.exit_code == 0, res.output
    assert sorted(snapshot(env["results"])) == ["bm25/tiny.en+de.json", "bm25/tiny.json"]
    assert load(env["results"] / "bm25" / "tiny.json") == load(env["bm25"])  # the full run is untouched
    assert load(env["results"] / "bm25" / "tiny.en+de.json").task.languages == ["en", "de"]
