"""`xbench data`: MIRACL passages streamed from a local copy of the hub dataset into Parquet corpora (every value
checked against the records written), and `xbench data convert` on a file and on a folder of languages."""

from __future__ import annotations

import gzip
import json

import pyarrow.parquet as pq
import pytest
from helpers import MIRACL_LANGS, invoke, tiny_miracl, write_beir, write_hub_copy, write_task

from xbench.errors import XbenchError
from xbench.tasks.corpus import open_corpus
from xbench.tasks.prepare import prepare_miracl
from xbench.tasks.registry import discover


def hub_order(passages: dict[str, tuple[str, str]]) -> list[dict]:
    """The records in the order the hub copy's two files hold them (write_hub_copy: even lines, then odd)."""
    rows = [{"docid": doc, "title": t, "text": x} for doc, (t, x) in passages.items()]
    return rows[0::2] + rows[1::2]


@pytest.mark.parametrize("variant", ["full", "judged"])
def test_miracl_passages_become_a_parquet_corpus(tmp_path, variant):
    data = tiny_miracl()
    task = discover((write_task(tmp_path, data),))["tinymiracl"]
    hub = write_hub_copy(tmp_path / "hub", data)
    prepared = list(prepare_miracl(list(MIRACL_LANGS), variant, tmp_path / "out", str(hub), task))
    for done, lang in zip(prepared, MIRACL_LANGS):
        judged = {doc for rel in data[lang]["qrels"].values() for doc in rel}
        expected = [r for r in hub_order(data[lang]["passages"]) if variant == "full" or r["docid"] in judged]
        corpus = open_corpus(done.folder)
        assert pq.read_table(corpus.path).to_pylist() == expected
        assert (done.lang, done.passages, done.judged_absent, corpus.rows) == (lang, len(expected), 0, len(expected))
        assert corpus.manifest.source == f"{hub}/miracl-corpus-v1.0-{lang} ({variant})"
        assert sorted(p.name for p in done.folder.iterdir()) == [
            "corpus.json", "corpus.parquet", "qrels", "queries.jsonl", "xbench-source.json"]
        assert json.loads((done.folder / "xbench-source.json").read_text())["passages"] == len(expected)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(MIRACL_LANGS)  # no temp folder left


def test_records_without_string_docids_are_refused(tmp_path):
    data = tiny_miracl()
    task = discover((write_task(tmp_path, data),))["tinymiracl"]
    folder = tmp_path / "hub" / "miracl-corpus-v1.0-sw"
    folder.mkdir(parents=True)
    (folder / "docs-0.jsonl.gz").write_bytes(gzip.compress(b'{"docid": 7, "title": "", "text": "x"}\n'))
    with pytest.raises(XbenchError, match=r"sw: the records lack a string `docid` \(fields: docid: int64, title: "
                                          r"string, text: string\); --source must hold MIRACL corpus files"):
        list(prepare_miracl(["sw"], "full", tmp_path / "out", str(tmp_path / "hub"), task))
    assert list((tmp_path / "out").iterdir()) == []


def test_data_convert_writes_a_corpus_per_file_or_language(tmp_path):
    data = tiny_miracl()
    beir = write_beir(tmp_path / "beir", data)
    res = invoke("data", "convert", str(beir), "--out", str(tmp_path / "pq"), "--source", "tiny")
    assert res.exit_code == 0, res.output
    for lang in MIRACL_LANGS:
        corpus = open_corpus(tmp_path / "pq" / lang)
        expected = [{"docid": d, "title": t, "text": x} for d, (t, x) in data[lang]["passages"].items()]
        assert pq.read_table(corpus.path).to_pylist() == expected and corpus.manifest.source == "tiny"
        assert f"{tmp_path / 'pq' / lang}: {len(expected):,} passages, sha256 {corpus.manifest.sha256}, " \
            in res.output and "passages/s)" in res.output
    res = invoke("data", "convert", str(beir / "sw" / "corpus.jsonl"), "--out", str(tmp_path / "one"))
    assert res.exit_code == 0, res.output
    one = open_corpus(tmp_path / "one")
    assert one.manifest.sha256 == open_corpus(tmp_path / "pq" / "sw").manifest.sha256
    assert one.manifest.source == str((beir / "sw" / "corpus.jsonl").resolve())
    res = invoke("data", "convert", str(tmp_path / "pq"), "--out", str(tmp_path / "x"))
    assert res.exit_code == 2 and "holds no <lang>/corpus.jsonl(.gz)" in res.output
