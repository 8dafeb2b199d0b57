"""A task whose corpus is streamed (MIRACL layout) runs language by language: each language's file is written and
reused, languages run separately merge into exactly the file of one run over all of them, and a changed corpus is
never "up to date"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import MIRACL_LANGS as LANGS
from helpers import invoke, tiny_miracl, write_beir, write_task

from xbench.results.store import load
from xbench.tasks.corpus import CorpusView


def _run(model: Path, tasks: Path, corpus: Path, out: Path, cache: Path, *extra: str):
    res = invoke("run", "--model", str(model), "--name", "tiny-st", "--tasks", "tinymiracl", "--tasks-dir",
                 str(tasks), "--output", str(out), "--cache-dir", str(cache), "--data-dir", f"tinymiracl={corpus}",
                 *extra)
    assert res.exit_code == 0, res.output
    return res


def _same_numbers(a: Path, b: Path) -> None:
    """Everything but the run record (command, times) is equal: slices, per-query data, aggregates, identity."""
    assert load(a).model_dump(exclude={"run"}) == load(b).model_dump(exclude={"run"})


def test_languages_run_separately_merge_into_the_file_of_one_run(tiny_st_model: Path, tmp_path: Path) -> None:
    tasks = write_task(tmp_path, tiny_miracl(), variant="full")
    corpus = write_beir(tmp_path / "beir", tiny_miracl())
    cache = tmp_path / "cache"
    _run(tiny_st_model, tasks, corpus, tmp_path / "all", cache)
    folder = tmp_path / "all" / "tiny-st"
    assert sorted(p.name for p in folder.glob("*.json")) == ["tinymiracl.json", "tinymiracl.sw.json",
                                                            "tinymiracl.yo.json"]
    whole = load(folder / "tinymiracl.json")
    assert whole.task.languages == list(LANGS) and whole.data_parts is not None
    assert set(whole.data_parts) == set(LANGS)

    for lang in LANGS:  # one language at a time, into another folder: the last run completes the task
        res = _run(tiny_st_model, tasks, corpus, tmp_path / "split", cache, "--languages", lang)
    _same_numbers(tmp_path / "split" / "tiny-st" / "tinymiracl.json", folder / "tinymiracl.json")
    assert "--languages" not in load(tmp_path / "split" / "tiny-st" / "tinymiracl.json").run.command
    for lang in LANGS:
        _same_numbers(tmp_path / "split" / "tiny-st" / f"tinymiracl.{lang}.json", folder / f"tinymiracl.{lang}.json")

    merged = tmp_path / "merged.json"
    res = invoke("merge", *(str(folder / f"tinymiracl.{lang}.json") for lang in reversed(LANGS)), "--out",
                 str(merged), "--order", ",".join(LANGS))
    assert res.exit_code == 0, res.output
    _same_numbers(merged, folder / "tinymiracl.json")
    assert invoke("validate", str(merged), "--tasks-dir", str(tasks), "--data-dir",
                  f"tinymiracl={corpus}").exit_code == 0


def test_a_changed_corpus_is_recomputed_and_an_unchanged_one_is_up_to_date(tiny_st_model: Path,
                                                                           tmp_path: Path) -> None:
    data = tiny_miracl()
    tasks = write_task(tmp_path, data, variant="full")
    corpus = write_beir(tmp_path / "beir", data)
    cache, out = tmp_path / "cache", tmp_path / "out"
    _run(tiny_st_model, tasks, corpus, out, cache)
    first = load(out / "tiny-st" / "tinymiracl.json")
    assert "up to date" in _run(tiny_st_model, tasks, corpus, out, cache).output

    path = corpus / "sw" / "corpus.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[0])
    lines[0] = json.dumps({**record, "text": record["text"] + " w1 w2 w3"})
    path.write_text("\n".join(lines) + "\n")
    res = _run(tiny_st_model, tasks, corpus, out, cache)
    assert "up to date" not in res.output
    second = load(out / "tiny-st" / "tinymiracl.json")
    assert first.data_parts is not None and second.data_parts is not None
    assert second.data_parts["sw"] != first.data_parts["sw"] and second.data_parts["yo"] == first.data_parts["yo"]
    assert second.data_sha256 != first.data_sha256
    sw = load(out / "tiny-st" / "tinymiracl.sw.json")
    assert sw.run.counts["encoded_now"] == 160  # sw's corpus is another one (new shards); its queries are cached
    assert load(out / "tiny-st" / "tinymiracl.yo.json").run.finished <= first.run.finished  # yo was not redone


def test_a_streamed_file_is_validated_from_the_corpus_ids_alone(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`xbench validate` checks a streamed task's file language by language without reading a passage's text (a
    MIRACL-en corpus is 33M of them), a language's own file (every query) and the merge (queries with a relevant
    passage) alike, and names the field a tampered file gets wrong."""
    data = tiny_miracl()
    for doc in [d for d, g in data["sw"]["qrels"]["0"].items() if g > 0]:  # query sw:0 loses every relevant passage
        del data["sw"]["passages"][doc]
    tasks = write_task(tmp_path, data, variant="full")
    corpus = write_beir(tmp_path / "beir", data)
    env = {"XBENCH_CACHE": str(tmp_path / "cache")}
    res = invoke("run", "--model", "bm25", "--tasks", "tinymiracl", "--tasks-dir", str(tasks), "--output",
                 str(tmp_path / "out"), "--data-dir", f"tinymiracl={corpus}", env=env)
    assert res.exit_code == 0, res.output
    merged, sw = (tmp_path / "out" / "bm25" / name for name in ("tinymiracl.json", "tinymiracl.sw.json"))
    assert "sw:0" in load(sw).query_ids and "sw:0" not in load(merged).query_ids

    def unread(*args: object, **kwargs: object) -> None:
        raise AssertionError("validate read the corpus's texts")

    monkeypatch.setattr(CorpusView, "batches", unread)
    check = ("--tasks-dir", str(tasks), "--data-dir", f"tinymiracl={corpus}")
    for path in (merged, sw):
        res = invoke("validate", str(path), *check, env=env)
        assert res.exit_code == 0 and "against itself and task 'tinymiracl'" in res.output, res.output

    raw = json.loads(merged.read_text())
    raw["slices"][0]["n_candidates"] += 1
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    res = invoke("validate", str(tmp_path / "bad.json"), *check, env=env)
    assert res.exit_code == 2, res.output
    assert "field `slices.0.n_candidates`: is 158 but the corpus of sw holds 157" in res.output, res.output
    raw["slices"][0]["n_candidates"] -= 1
    raw["query_ids"][-1] = "yo:99"  # not a query of the task
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    res = invoke("validate", str(tmp_path / "bad.json"), *check, env=env)
    assert res.exit_code == 2, res.output
    assert "field `slices.1.per_query.query_index`: does not list the 8 queries of yo" in res.output, res.output
