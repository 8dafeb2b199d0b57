"""Where `xbench run` stores a result: a language subset beside the full run, and another model with the same name
never written over silently (the end-to-end cases are in tests/cli/test_cli.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import invoke

from xbench.errors import XbenchError
from xbench.evaluation.run import refuse_other_model, subset, task_path
from xbench.models.base import ModelInfo
from xbench.results.store import collect, load, result_path
from xbench.tasks.registry import discover, on_languages


@dataclass
class _Retriever:
    info: ModelInfo
    extra: dict[str, str] = field(default_factory=dict)


def test_result_path_names_a_subset_after_its_languages():
    out = Path("out")
    assert result_path(out, "/a/static/", "tiny") == out / "static" / "tiny.json"
    assert result_path(out, "bm25", "tiny", ["en", "de"]) == out / "bm25" / "tiny.en+de.json"
    assert result_path(out, "bm25", "tiny", []) == out / "bm25" / "tiny.json"
    assert result_path(out, "bm25", "tiny", ["../x", "zh/Hant"]) == out / "bm25" / "tiny.x+zh_Hant.json"  # stays in


def test_a_subset_is_only_fewer_languages_than_the_task_has(tiny_tasks):
    task = discover((tiny_tasks,))["tiny"]
    full = task.spec.languages
    assert subset(task, full) is None and subset(task, None) is None
    [fewer] = on_languages([task], ["de", "en"])
    assert subset(fewer, full) == ["en", "de"]  # the task's order
    assert subset(fewer, None) is None  # a caller that does not say: the plain path, as before
    [every] = on_languages([task], ["fr", "en", "de"])
    assert subset(every, full) is None
    info = ModelInfo(name="bm25", kind="lexical", fingerprint="f", card={})
    assert task_path(Path("o"), _Retriever(info), fewer, full) == Path("o") / "bm25" / "tiny.en+de.json"  # type: ignore[arg-type]


def test_another_fingerprint_is_refused_naming_the_file_both_sources_and_the_fix(tiny_results, tmp_path):
    path = tiny_results / "results" / "tiny-st" / "tiny.json"
    old = load(path)
    same = ModelInfo(name=old.model.name, kind="st", fingerprint=old.model.fingerprint, card={})
    refuse_other_model(path, _Retriever(same))  # type: ignore[arg-type]
    refuse_other_model(tmp_path / "absent.json", _Retriever(same))  # type: ignore[arg-type]
    other = ModelInfo(name=old.model.name, kind="st", fingerprint="0" * 32, card={"source": "/b/tiny-st (other)"})
    with pytest.raises(XbenchError) as err:
        refuse_other_model(path, _Retriever(other))  # type: ignore[arg-type]
    message = str(err.value)
    assert str(path) in message and old.model.card["source"] in message and "/b/tiny-st (other)" in message
    assert "--output" in message and "remove" in message and "--force" in message
    no_source = ModelInfo(name="x", kind="st", fingerprint="1" * 32, card={})
    with pytest.raises(XbenchError, match="fingerprint 1111"):
        refuse_other_model(path, _Retriever(no_source))  # type: ignore[arg-type]
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    refuse_other_model(broken, _Retriever(other))  # type: ignore[arg-type]  # no model's file: recomputed as before


def test_collect_reads_the_full_run_and_the_subset_beside_it(tiny_tasks, tmp_path):
    for extra in ((), ("--languages", "en,fr")):
        res = invoke("run", "--model", "bm25", "--tasks", "tiny", "--tasks-dir", str(tiny_tasks), "--output",
                     str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), *extra)
        assert res.exit_code == 0, res.output
    assert sorted(r.task.languages for r in collect([tmp_path / "out"])) == [["en", "de", "fr"], ["en", "fr"]]
