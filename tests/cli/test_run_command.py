"""`xbench run` as a script sees it: the score table and --json, exit codes, and the stored command that
reproduces a results file."""

from __future__ import annotations

import json
import shlex

import pytest
from helpers import invoke, tiny_miracl, write_beir, write_task, write_tiny_task

from xbench.results.store import load

COLUMNS = ["task", "status", "mAP", "mono", "mAP", "cross", "mAP", "multi", "R@10", "multi", "rank", "dist", "main"]


@pytest.fixture()
def mixed_tasks(tmp_path):
    """One tasks folder holding `tiny` (data here) and `tinymiracl` (its passages are not here: skipped)."""
    write_tiny_task(tmp_path)
    return write_task(tmp_path, tiny_miracl())


def run(tasks, *args: str, out, tmp_path):
    return invoke("run", "--tasks-dir", str(tasks), "--output", str(out), "--cache-dir", str(tmp_path / "cache"),
                  *args, env={"XBENCH_CACHE": str(tmp_path / "empty-cache")})


def test_the_run_ends_with_a_table_of_the_scores_in_the_results_file(tiny_tasks, tmp_path):
    res = run(tiny_tasks, "--model", "bm25", "--tasks", "tiny", out=tmp_path / "out", tmp_path=tmp_path)
    assert res.exit_code == 0, res.output
    result = load(tmp_path / "out" / "bm25" / "tiny.json")
    lines = res.stdout.splitlines()
    assert lines[0].split() == COLUMNS and lines[-1] == "1/1 tasks ran"
    macro = {s: result.summary[s]["macro"] for s in ("mono", "cross", "multi")}
    shown = [f"{macro['mono']['map']:.3f}", f"{macro['cross']['map']:.3f}", f"{macro['multi']['map']:.3f}",
             f"{macro['multi']['recall@10']:.3f}", f"{macro['multi']['rank_distance']:.3f}",
             f"{result.main_score:.3f}"]
    assert lines[1].split() == ["tiny", "done", *shown]
    # bm25 ranks the gold sentence first for every monolingual query of the tiny task (checked by hand)
    assert shown[0] == "1.000"
    assert "tiny: done ->" in res.stderr and "tiny: done" not in res.stdout  # progress on stderr, results on stdout


def test_json_is_one_document_with_status_path_scores_and_timings(tiny_tasks, tmp_path):
    out = tmp_path / "out"
    first = run(tiny_tasks, "--model", "bm25", "--tasks", "tiny", "--json", out=out, tmp_path=tmp_path)
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    result = load(out / "bm25" / "tiny.json")
    [task] = doc["tasks"]
    assert (doc["model"], doc["fingerprint"], doc["exit_code"]) == ("bm25", result.model.fingerprint, 0)
    assert (task["task"], task["status"], task["path"]) == ("tiny", "done", str(out / "bm25" / "tiny.json"))
    assert task["main_metric"] == "multi.map" and task["main_score"] == result.main_score
    assert task["scores"]["cross.map"] == result.summary["cross"]["macro"]["map"]
    assert task["counts"] == result.run.counts and set(task["timings"]) == {"load_s", "encode_s", "score_s"}
    again = json.loads(run(tiny_tasks, "--model", "bm25", "--tasks", "tiny", "--json", out=out,
                           tmp_path=tmp_path).stdout)
    assert again["tasks"][0]["status"] == "up to date" and again["tasks"][0]["scores"] == task["scores"]


def test_exit_code_3_when_every_task_is_skipped_and_0_when_some_ran(mixed_tasks, tmp_path):
    skipped = run(mixed_tasks, "--model", "bm25", "--tasks", "tinymiracl", "--json", out=tmp_path / "o",
                  tmp_path=tmp_path)
    assert skipped.exit_code == 3, skipped.output
    doc = json.loads(skipped.stdout)
    assert doc["exit_code"] == 3 and doc["tasks"][0]["status"] == "skipped" and doc["tasks"][0]["scores"] == {}
    assert "xbench data miracl" in doc["tasks"][0]["message"]
    some = run(mixed_tasks, "--model", "bm25", "--tasks", "tiny,tinymiracl", out=tmp_path / "o", tmp_path=tmp_path)
    assert some.exit_code == 0, some.output
    assert some.stdout.splitlines()[-1] == "1/2 tasks ran; skipped (data not here): tinymiracl"


def test_exit_code_1_when_a_task_fails_and_the_others_still_run(mixed_tasks, tmp_path):
    (tmp_path / "data" / "tiny" / "de.json.gz").write_bytes(b"garbage")
    res = run(mixed_tasks, "--model", "bm25", "--tasks", "tiny,tinymiracl", "--data-dir",
              f"tinymiracl={write_beir(tmp_path / 'beir', tiny_miracl())}", out=tmp_path / "o", tmp_path=tmp_path)
    assert res.exit_code == 1, res.output
    assert "error: task tiny:" in res.stderr and "de.json.gz: sha256" in res.stderr
    assert res.stdout.splitlines()[-1] == "1/2 tasks ran; failed: tiny"
    assert (tmp_path / "o" / "bm25" / "tinymiracl.json").is_file()


def _rerun(command: str, tmp_path, tag: str):
    """Run a stored command as a user would paste it, into a fresh output folder and cache."""
    words = shlex.split(command)
    assert words[:2] == ["xbench", "run"]
    res = invoke(*words[1:], "--output", str(tmp_path / tag), "--cache-dir", str(tmp_path / f"cache-{tag}"),
                 env={"XBENCH_CACHE": str(tmp_path / "empty-cache")})
    assert res.exit_code == 0, res.output
    return res


@pytest.mark.parametrize("options", [
    ["--name", "mine", "--languages", "de,en", "--settings", "mono,multi", "--dtype", "bfloat16"],
    ["--pooling", "cls", "--settings", "cross"],
])
def test_the_stored_command_reproduces_the_results_file(tiny_tasks, tiny_st_model, tmp_path, options):
    res = run(tiny_tasks, "--model", str(tiny_st_model), "--tasks", "tiny", *options, out=tmp_path / "first",
              tmp_path=tmp_path)
    assert res.exit_code == 0, res.output
    [path] = (tmp_path / "first").glob("*/*.json")
    first = load(path)
    for option in options[::2]:
        assert option in shlex.split(first.run.command)
    _rerun(first.run.command, tmp_path, "again")
    again = load(tmp_path / "again" / path.relative_to(tmp_path / "first"))
    assert (again.model, again.task, again.settings, again.summary, again.slices) == \
        (first.model, first.task, first.settings, first.summary, first.slices)
    assert again.run.command == first.run.command


def test_the_stored_command_of_a_task_with_outside_data_reproduces_it(tmp_path):
    data = tiny_miracl()
    tasks = write_task(tmp_path, data)
    beir = write_beir(tmp_path / "beir", data)
    res = run(tasks, "--model", "bm25", "--tasks", "tinymiracl", "--data-dir", f"tinymiracl={beir}",
              out=tmp_path / "first", tmp_path=tmp_path)
    assert res.exit_code == 0, res.output
    first = load(tmp_path / "first" / "bm25" / "tinymiracl.json")
    assert f"--data-dir tinymiracl={beir.resolve()}" in first.run.command and "--tasks-dir" in first.run.command
    _rerun(first.run.command, tmp_path, "again")
    again = load(tmp_path / "again" / "bm25" / "tinymiracl.json")
    assert (again.summary, again.slices) == (first.summary, first.slices)


def test_a_bad_name_is_bad_input(tiny_tasks, tmp_path):
    res = run(tiny_tasks, "--model", "bm25", "--tasks", "tiny", "--name", "../up", out=tmp_path / "o",
              tmp_path=tmp_path)
    assert res.exit_code == 2 and "--name '../up': use 1 to 80 letters" in res.output
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").rglob("*.json"))
