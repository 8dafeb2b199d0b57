"""Parquet corpora: conversion round trips, the content hash, the manifest's repeated and blank rows, views
(drops, keep, prefix, chunked streaming from any start) checked against plain Python on the same records, and
the errors that name the file or field."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xbench.errors import XbenchError
from xbench.tasks import corpus as corpus_module
from xbench.tasks.corpus import ROW_GROUP, convert_batches, convert_jsonl, find_or_convert, open_corpus

GROUP = 4  # rows per row group in these tests, so that 40 records make ten of them
WORDS = ["alpha", "Größe", "日本語", "{x}", "}", "naïve", "🙂", "a\nb", "tab\there", '"quoted"']
SPECIAL = {  # position -> record: blanks, a missing title, ids spelled both ways, repeated ids
    2: {"_id": "blank-text", "title": "Only a title", "text": "   "},
    5: {"docid": "no-title", "text": "text without a title"},
    7: {"_id": "both-blank", "title": " \t", "text": "\u3000\x1c\u00a0\n"},
    11: {"_id": "d3", "title": "again", "text": "a repeated docid"},
    13: {"_id": "blank-title", "title": "", "text": "text under an empty title"},
    21: {"docid": "d3", "title": "", "text": ""},
    30: {"_id": "empty", "title": "", "text": ""},
}


def records(n: int = 40) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        words = lambda k: " ".join(rng.choice(WORDS, k))  # noqa: E731
        out.append(SPECIAL.get(i, {"_id" if i % 2 else "docid": f"d{i}", "title": words(2), "text": words(6)}))
    return out


def normalised(recs: list[dict]) -> list[dict]:
    """What a corpus holds: the id from `_id` or `docid`, a missing title or text as ""."""
    return [{"docid": r.get("_id") or r["docid"], "title": r.get("title") or "", "text": r.get("text") or ""}
            for r in recs]


def content_sha256(rows: list[dict]) -> str:
    """The content hash from Python values: per column, sha256 of the UTF-8 bytes and of the int64 lengths."""
    parts = []
    for column in ("docid", "title", "text"):
        values = [r[column].encode() for r in rows]
        parts += [hashlib.sha256(b"".join(values)).hexdigest(),
                  hashlib.sha256(np.array([len(v) for v in values], "<i8").tobytes()).hexdigest()]
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def write_jsonl(path, recs: list[dict], **dumps) -> None:
    text = "".join(json.dumps(r, **dumps) + "\n" for r in recs)
    path.write_bytes(gzip.compress(text.encode()) if path.suffix == ".gz" else text.encode())


@pytest.fixture()
def converted(tmp_path):
    """A corpus of records() converted from JSON lines with GROUP rows per row group."""
    write_jsonl(tmp_path / "corpus.jsonl", records(), ensure_ascii=False)
    convert_jsonl(tmp_path / "corpus.jsonl", tmp_path / "pq", "test", row_group=GROUP)
    return open_corpus(tmp_path / "pq")


def expected_view(template: str, keep=None, prefix: str = "") -> tuple[list[str], list[str]]:
    """(ids, texts) of a view, by str.format: first occurrence of each id, not blank after templating, in keep."""
    ids, texts, seen = [], [], set()
    for r in normalised(records()):
        first = r["docid"] not in seen
        seen.add(r["docid"])
        text = template.format(title=r["title"], text=r["text"])
        if first and text.strip() and (keep is None or r["docid"] in keep):
            ids.append(prefix + r["docid"])
            texts.append(text)
    return ids, texts


def streamed(view, rows: int, start: int = 0) -> list[tuple[int, list[str]]]:
    return list(view.batches(rows, start))


def test_round_trip_from_jsonl_and_gz_keeps_every_value(tmp_path):
    recs = records()
    write_jsonl(tmp_path / "a.jsonl", recs, ensure_ascii=False)
    write_jsonl(tmp_path / "b.jsonl.gz", recs)  # \u escapes this time: the same content
    plain = convert_jsonl(tmp_path / "a.jsonl", tmp_path / "a", "plain", row_group=GROUP)
    packed = convert_jsonl(tmp_path / "b.jsonl.gz", tmp_path / "b", "gz", row_group=GROUP)
    for folder in ("a", "b"):
        assert pq.read_table(tmp_path / folder / "corpus.parquet").to_pylist() == normalised(recs)
        meta = pq.ParquetFile(tmp_path / folder / "corpus.parquet").metadata
        assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [GROUP] * 10
        assert meta.row_group(0).column(2).compression == "ZSTD"
    assert plain.sha256 == packed.sha256 == content_sha256(normalised(recs))
    assert (plain.rows, plain.source, packed.source) == (40, "plain", "gz")
    assert plain.bytes == (tmp_path / "a" / "corpus.parquet").stat().st_size
    on_disk = json.loads((tmp_path / "a" / "corpus.json").read_text())
    assert on_disk["format"] == 1 and on_disk["duplicate_rows"] == [11, 21] and on_disk["sha256"] == plain.sha256
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["corpus.json", "corpus.parquet"]  # no temp file


def test_hash_ignores_batching_and_sees_one_character(tmp_path):
    rows = normalised(records())
    table = pa.Table.from_pylist(rows)
    reference = content_sha256(rows)
    cuts = {"batches of 3": table.to_batches(max_chunksize=3),
            "sliced tables": [table.slice(i, 7) for i in range(0, 40, 7)],  # arrays with offsets into shared buffers
            "one table, large strings": [table.cast(pa.schema([(c, pa.large_string()) for c in table.column_names]))]}
    for name, batches in cuts.items():
        assert convert_batches(batches, tmp_path / name, "t", row_group=5).sha256 == reference, name
    changed = [dict(r) for r in rows]
    changed[17]["text"] = changed[17]["text"][:-1] + "X"
    moved = [dict(r) for r in rows]  # the same characters, one moved from the title to the text
    moved[0]["title"], moved[0]["text"] = moved[0]["title"][:-1], moved[0]["title"][-1] + moved[0]["text"]
    for other in (changed, moved):
        digest = convert_batches([pa.Table.from_pylist(other)], tmp_path / "other", "t").sha256
        assert digest == content_sha256(other) != reference


def test_manifest_lists_repeated_and_blank_rows_as_python_sees_them(converted):
    rows = normalised(records())
    seen: set[str] = set()
    repeated = [i for i, r in enumerate(rows) if r["docid"] in seen or seen.add(r["docid"])]
    m = converted.manifest
    assert m.duplicate_rows == tuple(repeated) == (11, 21)
    assert m.blank_title_rows == tuple(i for i, r in enumerate(rows) if not r["title"].strip())
    assert m.blank_text_rows == tuple(i for i, r in enumerate(rows) if not r["text"].strip()) == (2, 7, 21, 30)
    assert converted.fingerprint == m.sha256[:32] and converted.rows == 40


@pytest.mark.parametrize("template", ["{title} {text}", "{text}", "{title}", "passage: {text}",
                                      "« {title} »\n{text} {{literal}} {text}", "{text}{title}"])
def test_view_texts_equal_str_format_without_repeats_and_blanks(converted, template):
    view = converted.view(template, prefix="sw:")
    ids, texts = expected_view(template, prefix="sw:")
    assert view.ids().to_pylist() == ids and view.rows == len(ids)
    assert [t for _, chunk in streamed(view, 1000) for t in chunk] == texts
    first_rows = [r for i, r in enumerate(normalised(records())) if i not in (11, 21)]  # d3 repeated
    blank = sum(1 for r in first_rows if not template.format(**r).strip())
    assert view.notes == [f"{converted.path}: 2 repeated docids (first kept) and {blank} blank passages left out."]


def test_keep_filters_by_unprefixed_docid(converted):
    keep = {"d3", "d4", "blank-text", "empty", "no-title", "not-in-corpus"}
    view = converted.view("{text}", keep=keep, prefix="x:")
    ids, texts = expected_view("{text}", keep, "x:")
    assert ids == ["x:d3", "x:d4", "x:no-title"]
    assert view.ids().to_pylist() == ids and [t for _, c in streamed(view, 2) for t in c] == texts
    assert view.notes == [f"{converted.path}: 2 repeated docids (first kept) and 2 blank passages left out."]
    assert converted.view("{text}", keep=set()).rows == 0 and streamed(converted.view("{text}", keep=[]), 3) == []


def test_batches_from_any_start_equal_slices_of_the_whole_list(converted, monkeypatch):
    view = converted.view("{title} {text}")
    texts = expected_view("{title} {text}")[1]
    for rows in (1, 3, 4, 5, 64):
        for start in range(len(texts) + 2):
            chunks = streamed(view, rows, start)
            assert [p for p, _ in chunks] == list(range(start, len(texts), rows))
            assert [c for _, c in chunks] == [texts[i:i + rows] for i in range(start, len(texts), rows)]
    read = []
    original = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group",
                        lambda self, g, columns=None, **kw: read.append((g, tuple(columns))) or original(self, g,
                                                                                                        columns, **kw))
    # view position 20 is row 23 (rows 7, 11 and 21 dropped before it), in row group 5: groups 0-4 are not read
    assert streamed(view, 3, 20)[0] == (20, texts[20:23])
    assert read[0] == (5, ("title", "text"))
    read.clear()
    view.ids()
    assert {columns for _, columns in read} == {("docid",)}
    read.clear()
    streamed(converted.view("{text}"), 100)
    assert {columns for _, columns in read} == {("text",)}


def test_view_fingerprint_changes_with_template_prefix_keep_and_content(converted, tmp_path):
    base = converted.view("{text}", keep={"d4", "d6"})
    same = converted.view("{text}", keep=["d6", "d4"])
    others = [converted.view("{title} {text}", keep={"d4", "d6"}), converted.view("{text}", keep={"d4", "d6"},
                                                                                    prefix="p:"),
              converted.view("{text}", keep={"d4"}), converted.view("{text}")]
    assert base.fingerprint == same.fingerprint and len(base.fingerprint) == 32
    assert len({base.fingerprint, *(v.fingerprint for v in others)}) == 5
    rows = normalised(records())
    rows[0]["text"] += "!"
    convert_batches([pa.Table.from_pylist(rows)], tmp_path / "changed", "t")
    assert open_corpus(tmp_path / "changed").view("{text}", keep={"d4", "d6"}).fingerprint != base.fingerprint


@pytest.mark.parametrize(("template", "message"), [
    ("{title} {body}", "task tiny: field `doc_template` uses unknown placeholder 'body'; available: ['text', 'title']"),
    ("{0}", "field `doc_template` uses unknown placeholder '0'"),
    ("{text!r}", "field `doc_template` formats {text}"),
    ("{text:>20}", "field `doc_template` formats {text}"),
    ("{text", "field `doc_template` is not a valid template"),
    ("just words", "uses neither {title} nor {text}"),
])
def test_bad_templates_name_the_field_and_task(converted, template, message):
    with pytest.raises(XbenchError, match=message.replace("{", r"\{").replace("[", r"\[").replace("(", r"\(")):
        converted.view(template, field="doc_template", task="tiny")


@pytest.mark.parametrize(("lines", "message"), [
    ('{"_id": "a", "text": "x"}\n{"docid": "b", "text": "y"}\n{"title": "t", "text": "no id"}\n',
     r"record 3 has no id; every passage needs its docid"),
    ('{"_id": "a", "text": "x"}\n{"_id": "b", "text": "y"\n', "cannot be read as JSON lines of passages"),
    ('{"_id": 5, "text": "x"}\n', "cannot be read as JSON lines of passages"),
])
def test_unreadable_records_name_the_file_and_the_expected_shape(tmp_path, lines, message):
    (tmp_path / "corpus.jsonl").write_text(lines)
    with pytest.raises(XbenchError, match=message) as err:
        convert_jsonl(tmp_path / "corpus.jsonl", tmp_path / "out", str(tmp_path / "corpus.jsonl"))
    assert str(tmp_path / "corpus.jsonl") in str(err.value) and '"_id": "<docid>"' in str(err.value)
    assert not (tmp_path / "out" / "corpus.json").exists()


def test_changed_or_unfinished_corpus_is_refused_with_the_fix(converted, tmp_path):
    parquet = converted.path
    with parquet.open("ab") as fh:
        fh.write(b"x")
    with pytest.raises(XbenchError, match="the file changed after its conversion") as err:
        open_corpus(converted.folder)
    assert str(parquet) in str(err.value) and f"xbench data convert SRC --out {converted.folder}" in str(err.value)

    def failing():
        yield pa.Table.from_pylist(normalised(records())[:10])
        raise KeyboardInterrupt

    convert_batches([pa.Table.from_pylist(normalised(records()))], tmp_path / "cut", "t")
    with pytest.raises(KeyboardInterrupt):
        convert_batches(failing(), tmp_path / "cut", "t", row_group=GROUP)
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == ["corpus.parquet"]  # old parquet, no manifest
    with pytest.raises(XbenchError, match="its conversion was interrupted"):
        open_corpus(tmp_path / "cut")
    convert_batches([pa.Table.from_pylist(normalised(records()))], tmp_path / "cut", "t")  # a rerun completes it
    assert open_corpus(tmp_path / "cut").rows == 40
    with pytest.raises(XbenchError, match="holds no converted corpus"):
        open_corpus(tmp_path / "nothing")


def test_find_or_convert_converts_once_and_again_when_the_source_changes(tmp_path, monkeypatch, capsys):
    calls = []
    convert = corpus_module.convert_jsonl
    monkeypatch.setattr(corpus_module, "convert_jsonl", lambda *a, **kw: calls.append(a[0]) or convert(*a, **kw))
    folder, cache = tmp_path / "sw", tmp_path / "cache"
    folder.mkdir()
    assert find_or_convert(folder, cache) is None
    write_jsonl(folder / "corpus.jsonl.gz", records())
    first = find_or_convert(folder, cache)
    assert first is not None and first.folder.parent == cache / "corpora" and len(first.folder.name) == 16
    assert "Converting" in capsys.readouterr().out
    again = find_or_convert(folder, cache)
    assert again == first and calls == [folder / "corpus.jsonl.gz"]
    write_jsonl(folder / "corpus.jsonl.gz", records(41))
    os.utime(folder / "corpus.jsonl.gz", ns=(1, 1))  # a new size and mtime: another cache key
    changed = find_or_convert(folder, cache)
    assert changed is not None and changed.rows == 41 and changed.folder != first.folder and len(calls) == 2
    convert_batches([pa.Table.from_pylist(normalised(records()))], folder, "here")  # a converted folder wins
    assert find_or_convert(folder, cache) == open_corpus(folder) and len(calls) == 2


def test_default_row_group_is_the_documented_size(tmp_path):
    rows = [{"docid": str(i), "title": "", "text": "x"} for i in range(ROW_GROUP + 1)]
    convert_batches(pa.Table.from_pylist(rows).to_batches(max_chunksize=10_000), tmp_path, "t")
    meta = pq.ParquetFile(tmp_path / "corpus.parquet").metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [65_536, 1]


def test_repeated_rows_match_a_python_set_across_chunk_boundaries():
    rng = np.random.default_rng(1)
    for _ in range(100):
        values = [str(v) for v in rng.integers(0, 30, rng.integers(0, 60))]
        seen: set[str] = set()
        expected = [i for i, v in enumerate(values) if v in seen or seen.add(v)]
        cuts = sorted(rng.integers(0, len(values) + 1, 3))
        chunks = [values[a:b] for a, b in zip([0, *cuts], [*cuts, len(values)])]
        assert corpus_module._duplicate_rows(pa.chunked_array(chunks, pa.string())) == expected


def test_batches_without_titles_and_with_bad_columns(tmp_path):
    table = pa.Table.from_pylist(normalised(records()))
    convert_batches([table.drop_columns(["title"])], tmp_path / "a", "src")
    assert pq.read_table(tmp_path / "a" / "corpus.parquet").column("title").to_pylist() == [""] * 40
    bad = {"the passages have no `text` field": [table.drop_columns(["text"])],
           "field `docid` holds int64 values, not strings": [pa.table({"docid": [1], "text": ["x"]})],
           "record 7 has no id": [table.slice(0, 5), pa.table({"docid": ["a", None], "text": ["x", "y"]})]}
    for message, batches in bad.items():
        with pytest.raises(XbenchError, match=f"^src: {message}.*expected records"):
            convert_batches(batches, tmp_path / "b", "src")
    assert not (tmp_path / "b" / "corpus.json").exists() and not list((tmp_path / "b").glob(".*"))
