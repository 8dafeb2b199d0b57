"""Task specs and the registry: every bad spec names the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from xbench.errors import XbenchError
from xbench.tasks.registry import discover, select

GOOD = """tasks:
  - name: t1
    version: '1'
    family: f
    description: d
    loader: lareqa
    source: {dir: ../data/t1}
    license: CC0
    languages: [en, de]
"""


def write(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir(exist_ok=True)
    (folder / "x.yaml").write_text(text)
    return folder


def test_builtin_specs_load():
    tasks = discover()
    assert {"xquad-r", "mlqa-r"} <= set(tasks)
    assert tasks["xquad-r"].spec.settings == ["mono", "cross", "multi"]


def test_user_folder_adds_tasks(tmp_path):
    assert "t1" in discover((write(tmp_path, GOOD),))


@pytest.mark.parametrize("text, pattern", [
    ("tasks: [\n  - name: t1", r"x\.yaml: not valid YAML"),
    ("just a string", r"x\.yaml: expected a mapping with a non-empty list under `tasks:`"),
    (GOOD + "    colour: blue\n", r"x\.yaml: task t1: field `colour`: Extra inputs are not permitted"),
    (GOOD.replace("    loader: lareqa\n", ""), r"field `loader`: Field required"),
    (GOOD + "    settings: [mono, sideways]\n", r"field `settings.1`"),
    (GOOD + "    metrics: [map, precision@3]\n", r"unknown metrics \['precision@3'\]"),
    (GOOD + "    main_metric: multi.ndcg@20\n", r"main_metric 'multi.ndcg@20'"),
    (GOOD.replace("[en, de]", "[en, en]"), r"languages must be unique"),
    (GOOD.replace("source: {dir: ../data/t1}", "source: {}"), r"field `source`: .*give `dir`"),
])
def test_bad_spec_names_file_and_field(tmp_path, text, pattern):
    with pytest.raises(XbenchError, match=pattern):
        discover((write(tmp_path, text),))


def test_duplicate_name_is_refused(tmp_path):
    with pytest.raises(XbenchError, match="already defined"):
        discover((write(tmp_path, GOOD.replace("name: t1", "name: xquad-r")),))


def test_unknown_task_gets_did_you_mean():
    with pytest.raises(XbenchError, match="Did you mean xquad-r"):
        select(discover(), "xquad")
    assert [t.name for t in select(discover(), "mlqa-r, xquad-r")] == ["mlqa-r", "xquad-r"]


def test_wildcards_choose_a_task_and_its_splits_once_each():
    tasks = discover()
    splits = sorted(n for n in tasks if n.startswith("xquad-r."))
    assert len(splits) >= 3  # the topic splits ship with the package
    chosen = [t.name for t in select(tasks, "xquad-r*,xquad-r")]
    assert sorted(chosen) == sorted(["xquad-r", *splits]) and len(chosen) == len(set(chosen))
    assert [t.name for t in select(tasks, "tico19.n?ws")] == ["tico19.news"]
    with pytest.raises(XbenchError, match="no task matches 'nope\\*'"):
        select(tasks, "nope*")


def test_missing_data_folder_is_reported(tmp_path):
    task = discover((write(tmp_path, GOOD),))["t1"]
    assert not task.data_available()
    with pytest.raises(XbenchError, match=r"field `source.dir`"):
        task.load()
