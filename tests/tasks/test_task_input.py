"""Bad user tasks and data fail with an error naming the file, the field and the fix: never a traceback, never
silently wrong data (and no results file from a run that read them)."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import invoke, write_tiny_task

from xbench.errors import XbenchError
from xbench.tasks.registry import discover


def run_tiny(root: Path, tasks: Path):
    """`xbench run` of the tiny task with bm25 (no model download); returns the result and the results folder."""
    out = root / "results"
    res = invoke("run", "--model", "bm25", "--tasks", "tiny", "--tasks-dir", str(tasks), "--output", str(out),
                 "--cache-dir", str(root / "cache"))
    return res, out


def no_results(out: Path) -> bool:
    return not list(out.rglob("*.json")) if out.exists() else True


def edit_spec(tasks: Path, edit: Callable[[str], str]) -> None:
    spec = tasks / "tiny.yaml"
    spec.write_text(edit(spec.read_text()))


def test_latin1_spec_says_save_as_utf8(tmp_path):
    tasks = write_tiny_task(tmp_path)
    spec = tasks / "tiny.yaml"
    spec.write_bytes(spec.read_bytes().replace(b"tiny LAReQA", "tiny caf\xe9".encode("latin-1")))
    res = invoke("tasks", "--tasks-dir", str(tasks))
    assert res.exit_code == 2
    assert "tiny.yaml: not UTF-8" in res.output and "save it as UTF-8" in res.output


def test_duplicate_key_names_file_line_and_key(tmp_path):
    tasks = write_tiny_task(tmp_path)
    edit_spec(tasks, lambda text: text + "    license: MIT\n")
    with pytest.raises(XbenchError, match=r"tiny\.yaml:10: key 'license' appears twice"):
        discover((tasks,))
    res = invoke("tasks", "--tasks-dir", str(tasks))
    assert res.exit_code == 2 and "'license' appears twice" in res.output


def test_yaml_merge_keys_still_override(tmp_path):
    """`<<` merges are an intended override, not a duplicate."""
    tasks = write_tiny_task(tmp_path)
    edit_spec(tasks, lambda text: text.replace("    license: CC0\n", "    <<: {license: X}\n    license: CC0\n"))
    assert discover((tasks,))["tiny"].spec.license == "CC0"


@pytest.mark.parametrize("options, field", [
    ("{domain_map: 3, domain_map_sha256: x}", "options.domain_map"),
    ("{domain_map: a.tsv, domain_map_sha256: 12}", "options.domain_map_sha256"),
])
def test_non_string_option_names_the_field(tmp_path, options, field):
    tasks = write_tiny_task(tmp_path)
    edit_spec(tasks, lambda text: text + f"    options: {options}\n")
    res = run_tiny(tmp_path, tasks)[0]
    assert res.exit_code == 1, res.output  # the task failed
    assert f"field `{field}`" in res.output and "give a string" in res.output
    assert no_results(tmp_path / "results")


def rewrite_en(root: Path, edit: Callable[[dict], None]) -> None:
    """Apply `edit` to the first question of en.json.gz and re-pin the manifest (the data is valid JSON, listed)."""
    data = root / "data" / "tiny"
    path = data / "en.json.gz"
    doc = json.loads(gzip.decompress(path.read_bytes()))
    edit(doc["data"][0]["paragraphs"][0]["qas"][0])
    path.write_bytes(gzip.compress(json.dumps(doc).encode(), mtime=0))
    (data / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                                             for p in sorted(data.glob("*.json.gz"))))


@pytest.mark.parametrize("edit, field", [
    (lambda qa: qa.update(answers=[]), "field `answers` is []"),
    (lambda qa: qa["answers"][0].update(answer_start="18"), "field `answers[0].answer_start` is '18'"),
    (lambda qa: qa["answers"][0].update(answer_start=999), "field `answers[0].answer_start` is 999"),
    (lambda qa: qa["answers"][0].update(answer_start=-1), "field `answers[0].answer_start` is -1"),
    (lambda qa: qa.update(question=None), "field `question` is None"),
    (lambda qa: qa.update(question=["Who?"]), "field `question` is ['Who?']"),
])
def test_bad_lareqa_record_names_file_question_and_field(tmp_path, edit, field):
    tasks = write_tiny_task(tmp_path)
    rewrite_en(tmp_path, edit)
    res, out = run_tiny(tmp_path, tasks)
    assert res.exit_code == 1, res.output
    assert "en.json.gz: question 'q1': " + field in res.output
    assert no_results(out)


def test_unlisted_data_file_is_not_read(tmp_path):
    tasks = write_tiny_task(tmp_path)
    manifest = tmp_path / "data" / "tiny" / "SHA256SUMS"
    manifest.write_text("".join(line + "\n" for line in manifest.read_text().splitlines() if "fr.json" not in line))
    res, out = run_tiny(tmp_path, tasks)
    assert res.exit_code == 1, res.output
    assert "fr.json.gz: task tiny reads this file" in res.output
    assert "sha256sum fr.json.gz >> SHA256SUMS" in res.output
    assert no_results(out)


def test_missing_unlisted_file_says_not_found(tmp_path):
    tasks = write_tiny_task(tmp_path, ["en", "de"])
    edit_spec(tasks, lambda text: text.replace("[en, de]", "[en, de, fr]"))
    with pytest.raises(XbenchError, match=r"fr\.json\.gz: data file not found \(task tiny, field `languages`\)"):
        discover((tasks,))["tiny"].load()


def test_empty_manifest_is_refused(tmp_path):
    tasks = write_tiny_task(tmp_path)
    (tmp_path / "data" / "tiny" / "SHA256SUMS").write_text("\n")
    res, out = run_tiny(tmp_path, tasks)
    assert res.exit_code == 1, res.output
    assert "SHA256SUMS: the data manifest lists no file" in res.output
    assert no_results(out)


def test_every_shipped_task_reads_listed_files_only():
    """The shipped data folders hold LICENSE and SOURCE.md outside their manifests; no loader reads them, and
    every file a loader does read is listed (MIRACL's passages live outside xbench and are skipped here)."""
    for task in discover().values():
        if task.spec.loader == "miracl":
            continue
        assert not task.load().queries.empty, task.name
