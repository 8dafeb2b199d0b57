"""The command line end to end on a tiny task: real models, results that validate, resume, and bad input."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import click
import numpy as np
import pytest
from helpers import invoke, write_tiny_task

from xbench.results.store import load


def run_tiny(tasks: Path, model: str, out: Path, cache: Path, *extra: str):
    return invoke("run", "--model", model, "--tasks", "tiny", "--tasks-dir", str(tasks), "--output", str(out),
                  "--cache-dir", str(cache), *extra)


def test_local_sentence_transformer_end_to_end(tiny_tasks, tiny_st_model, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    res = run_tiny(tiny_tasks, str(tiny_st_model), out, cache)
    assert res.exit_code == 0, res.output
    [folder] = list(out.iterdir())
    path = folder / "tiny.json"
    result = load(path)
    # a local folder is named by its folder name and a short fingerprint, never by its path
    assert result.model.name == f"tiny-st@{result.model.fingerprint[:8]}" and folder.name == "tiny-st_" + \
        result.model.fingerprint[:8]
    assert result.run.counts == {"texts": 15, "unique_texts": 15, "encoded_now": 15}
    assert {s.setting for s in result.slices} == {"mono", "cross", "multi"}
    assert len([s for s in result.slices if s.setting == "cross"]) == 6  # fr has only q1: en->fr, de->fr, ...
    assert invoke("validate", str(path)).exit_code == 0

    again = run_tiny(tiny_tasks, str(tiny_st_model), out, cache)
    assert "tiny: up to date" in again.output
    forced = run_tiny(tiny_tasks, str(tiny_st_model), out, cache, "--force")
    assert load(path).run.counts["encoded_now"] == 0, forced.output  # everything came from the cache
    assert load(path).summary == result.summary


def test_bm25_end_to_end_and_hand_checked_ranks(tiny_tasks, tmp_path):
    res = run_tiny(tiny_tasks, "bm25", tmp_path / "out", tmp_path / "cache")
    assert res.exit_code == 0, res.output
    result = load(tmp_path / "out" / "bm25" / "tiny.json")
    mono_en = next(s for s in result.slices if (s.setting, s.query_lang) == ("mono", "en"))
    # "Which planet is red?" shares "red"/"planet"-pieces only with "Mars is red.": ranked first
    assert mono_en.per_query.ranks == [[1], [1]]
    assert mono_en.scores["map"] == 1.0


def test_a_language_subset_is_evaluated_and_recorded(tiny_tasks, tmp_path):
    res = run_tiny(tiny_tasks, "bm25", tmp_path / "out", tmp_path / "cache", "--languages", "de,en")
    assert res.exit_code == 0, res.output
    path = tmp_path / "out" / "bm25" / "tiny.en+de.json"  # the subset's languages, in the task's order
    assert [p.name for p in (tmp_path / "out" / "bm25").iterdir()] == [path.name]
    result = load(path)
    assert result.task.languages == ["en", "de"]  # in the task's order
    assert {(s.setting, s.query_lang, s.cand_lang) for s in result.slices if s.setting == "cross"} == \
        {("cross", "en", "de"), ("cross", "de", "en")}
    assert result.run.command == ("xbench run --model bm25 --tasks tiny --settings mono,cross,multi --languages en,de "
                                  f"--tasks-dir {tiny_tasks.resolve()}")
    assert invoke("validate", str(path)).exit_code == 0


def test_every_language_named_is_the_full_run(tiny_tasks, tmp_path):
    res = run_tiny(tiny_tasks, "bm25", tmp_path / "out", tmp_path / "cache", "--languages", "fr,de,en")
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "out" / "bm25").iterdir()] == ["tiny.json"]


def test_a_language_subset_is_stored_beside_the_full_run_not_over_it(tiny_tasks, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert run_tiny(tiny_tasks, "bm25", out, cache).exit_code == 0
    full = load(out / "bm25" / "tiny.json")
    res = run_tiny(tiny_tasks, "bm25", out, cache, "--languages", "en,de")
    assert res.exit_code == 0, res.output
    assert f"tiny: done -> {out / 'bm25' / 'tiny.en+de.json'}" in res.output
    assert load(out / "bm25" / "tiny.json") == full  # the 3-language run is untouched
    assert load(out / "bm25" / "tiny.en+de.json").task.languages == ["en", "de"]
    # the up-to-date check looks at each run's own file
    assert "tiny: up to date" in run_tiny(tiny_tasks, "bm25", out, cache, "--languages", "de,en").output
    assert "tiny: up to date" in run_tiny(tiny_tasks, "bm25", out, cache).output
    assert sorted(p.name for p in (out / "bm25").iterdir()) == ["tiny.en+de.json", "tiny.json"]
    # the report reads both, the subset labelled with its languages
    page = tmp_path / "index.md"
    shown = invoke("report", str(out), "--format", "md", "--out", str(page), "--resamples", "100")
    assert shown.exit_code == 0, shown.output
    assert "Language subsets: bm25 (en+de) on en, de only (of de, en, fr)." in page.read_text()


@pytest.fixture(scope="module")
def two_static_models(tiny_st_model, tmp_path_factory) -> tuple[Path, Path]:
    """Two sentence-transformers folders both called `tiny-st`, with different weights."""
    import torch
    from sentence_transformers import SentenceTransformer

    root = tmp_path_factory.mktemp("same-name")
    a = Path(shutil.copytree(tiny_st_model, root / "a" / "tiny-st"))
    model = SentenceTransformer(str(tiny_st_model), device="cpu")
    with torch.no_grad():
        weight = model[0].embedding.weight
        weight.copy_(torch.from_numpy(np.random.default_rng(1).normal(size=tuple(weight.shape)).astype(np.float32)))
    b = root / "b" / "tiny-st"
    model.save(str(b))
    return a, b


def test_two_folders_of_one_name_get_two_results_folders(tiny_tasks, two_static_models, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    for folder in two_static_models:
        res = run_tiny(tiny_tasks, str(folder), out, cache)
        assert res.exit_code == 0, res.output
    results = [load(p) for p in sorted(out.glob("*/tiny.json"))]
    assert len(results) == 2 and results[0].model.fingerprint != results[1].model.fingerprint
    assert sorted(r.model.name for r in results) == sorted(f"tiny-st@{r.model.fingerprint[:8]}" for r in results)


def test_another_model_under_the_same_name_is_refused_then_replaced_with_force(tiny_tasks, two_static_models,
                                                                               tmp_path):
    a, b = two_static_models
    out, cache = tmp_path / "out", tmp_path / "cache"
    path = out / "tiny-st" / "tiny.json"
    assert run_tiny(tiny_tasks, str(a), out, cache, "--name", "tiny-st").exit_code == 0
    first = load(path)
    assert first.model.name == "tiny-st" and str(a) in first.model.card["source"]

    refused = run_tiny(tiny_tasks, str(b), out, cache, "--name", "tiny-st")
    assert refused.exit_code == 1, refused.output  # the task failed
    message = " ".join(refused.output.split())
    assert f"{path} holds the results of another model named 'tiny-st'" in message
    assert first.model.card["source"] in message and str(b) in message  # both sources
    assert "pass --output elsewhere, or remove" in message and "or pass --force to replace it" in message
    assert "0/1 tasks ran; failed: tiny" in message
    assert load(path) == first  # untouched
    assert [p.name for p in (out / "tiny-st").iterdir()] == ["tiny.json"]  # nothing staged beside it

    forced = run_tiny(tiny_tasks, str(b), out, cache, "--name", "tiny-st", "--force")
    assert forced.exit_code == 0, forced.output
    second = load(path)
    assert second.model.fingerprint != first.model.fingerprint and str(b) in second.model.card["source"]
    assert second.summary != first.summary  # other weights, other numbers
    # the same model again: up to date as before; the first model is now the other one
    assert "tiny: up to date" in run_tiny(tiny_tasks, str(b), out, cache, "--name", "tiny-st").output
    assert run_tiny(tiny_tasks, str(a), out, cache, "--name", "tiny-st").exit_code == 1
    assert load(path) == second


def test_a_rerun_of_the_same_model_on_changed_settings_recomputes(tiny_tasks, tiny_st_model, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert run_tiny(tiny_tasks, str(tiny_st_model), out, cache, "--settings", "mono").exit_code == 0
    res = run_tiny(tiny_tasks, str(tiny_st_model), out, cache)
    assert res.exit_code == 0 and "tiny: done" in res.output, res.output
    [path] = out.glob("*/tiny.json")
    assert load(path).settings == ["mono", "cross", "multi"]


def test_validate_rejects_tampered_aggregate(tiny_tasks, tmp_path):
    run_tiny(tiny_tasks, "bm25", tmp_path / "out", tmp_path / "cache")
    path = tmp_path / "out" / "bm25" / "tiny.json"
    raw = json.loads(path.read_text())
    raw["slices"][0]["scores"]["map"] = 0.123
    path.write_text(json.dumps(raw))
    res = invoke("validate", str(path))
    assert res.exit_code == 2
    assert "slices.0.scores.map" in res.output and "per-query ranks give" in res.output


@pytest.mark.parametrize("args, pattern", [
    (["--model", "/no/such/model"], "no such model folder"),
    (["--model", "bm25", "--tasks", "tinny"], "Did you mean tiny"),
    (["--model", "bm25", "--settings", "mono,sideways"], "unknown \\['sideways'\\]"),
    (["--model", "bm25", "--languages", "en,sw"], "sw is no language of the chosen tasks"),
])
def test_bad_input_exits_2_with_a_fix(tiny_tasks, tmp_path, args, pattern):
    res = invoke("run", "--tasks", "tiny", "--tasks-dir", str(tiny_tasks), "--output", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache"), *args)
    assert res.exit_code == 2
    assert re.search(pattern, res.output), res.output
    assert not (tmp_path / "out" / "bm25").exists()


def test_hub_id_offline_names_the_fix(tiny_tasks, tmp_path):
    res = invoke("run", "--model", "intfloat/multilingual-e5-small", "--tasks", "tiny", "--tasks-dir",
                 str(tiny_tasks), "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"),
                 env={"HF_HUB_OFFLINE": "1"})
    assert res.exit_code == 2
    assert "hf download intfloat/multilingual-e5-small --local-dir DIR" in res.output


def test_broken_yaml_in_tasks_dir(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "broken.yaml").write_text("tasks: [ {name: x")
    res = invoke("tasks", "--tasks-dir", str(folder))
    assert res.exit_code == 2 and "broken.yaml: not valid YAML" in res.output


def test_unwritable_output(tiny_tasks, tmp_path):
    if os.geteuid() == 0:
        blocked = tmp_path / "file"  # root ignores permissions: a regular file in the way also blocks writing
        blocked.write_text("")
        target = blocked / "out"
    else:
        target = tmp_path / "ro"
        target.mkdir(mode=0o500)
    res = invoke("run", "--model", "bm25", "--tasks", "tiny", "--tasks-dir", str(tiny_tasks), "--output",
                 str(target), "--cache-dir", str(tmp_path / "c"))
    assert res.exit_code == 2 and "not writable" in res.output


def test_damaged_and_empty_data(tiny_tasks, tmp_path):
    data = tiny_tasks.parent / "data" / "tiny"
    (data / "de.json.gz").write_bytes(b"garbage")
    res = run_tiny(tiny_tasks, "bm25", tmp_path / "out", tmp_path / "c")
    assert res.exit_code == 1 and "de.json.gz: sha256" in res.output and "0/1 tasks ran" in res.output


def test_empty_text_is_refused(tmp_path):
    tasks = write_tiny_task(tmp_path, ["en"])
    data = tmp_path / "data" / "tiny"
    doc = json.loads(gzip.decompress((data / "en.json.gz").read_bytes()))
    doc["data"][0]["paragraphs"][0]["qas"][0]["question"] = "   "
    (data / "en.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
    (data / "SHA256SUMS").write_text(f"{hashlib.sha256((data / 'en.json.gz').read_bytes()).hexdigest()}  en.json.gz\n")
    res = run_tiny(tasks, "bm25", tmp_path / "out", tmp_path / "c")
    assert res.exit_code == 1 and "1 queries have empty text (first id 'en:q1')" in res.output


def test_shipped_schema_is_current():
    from xbench.results.schema import SCHEMA_PATH, json_schema

    assert SCHEMA_PATH.read_text() == json_schema(), "run `make schema` and commit xbench/results/"


def test_lazy_command_table_matches_the_commands():
    """`xbench --help` lists commands from a table, without importing them: it must say what each command says."""
    from xbench.cli import COMMANDS, main

    ctx = click.Context(main)
    for name, (_, first_line) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        assert (command.help or "").splitlines()[0] == first_line, name
    listed = invoke("--help").output
    assert all(name in listed for name in COMMANDS)
