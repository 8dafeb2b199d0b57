"""BM25: the memoised tokenisation against the tokenizer itself, and the streamed on-disk index against hand
arithmetic and against bm25s indexing the same corpus in memory."""

from __future__ import annotations

import gzip
import json
import math
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bm25s
import numpy as np
import pytest

from xbench.errors import XbenchError
from xbench.models import bm25
from xbench.paths import DATA_ROOT
from xbench.tasks.registry import discover

# Where a word-by-word tokenisation could part from the tokenizer's: space runs and other spaces, a combining mark
# opening the text or a word, a Prepend character before a space (one grapheme with it), added tokens written in
# the text, a literal "▁", unknown runs (whose text is the term), case the normaliser or str.lower treats apart.
EDGES = ["a  b", " a", "a ", "a\xa0 b", "a \xa0b", "a\tb\nc", "A\u200bB", "", "   ", "\u0301abc de", "x \u0301y",
         "x\u0600 y", "\u0600 \u0600", "ab\u0600", "foo<s>bar baz", "<unk> </s> <mask>", "\u2581x \u2581",
         "鳃 ⲡϣⲁϯ 月岑妙珎", "ΟΔΟΣ İstanbul ＦＵＬＬＷＩＤＴＨ", "1⁞2 in", "co-op, e.g. (x)"]


@pytest.fixture(scope="module")
def xquad() -> tuple[list[str], list[str]]:
    data = discover()["xquad-r"].load()
    return data.queries["text"].tolist(), data.candidates["text"].tolist()


def reference_tokens(texts: list[str]) -> list[list[str]]:
    """The tokenizer on each whole lowercased text, its tokens' strings minus "▁": BM25's tokens by definition."""
    encodings = bm25._pieces().tokenizer.encode_batch([t.lower() for t in texts], add_special_tokens=False)
    return [[token for token in e.tokens if token != bm25.SPACE_PIECE] for e in encodings]


def test_tokenize_equals_the_tokenizer_on_whole_texts(xquad, monkeypatch: pytest.MonkeyPatch) -> None:
    queries, candidates = xquad
    texts = EDGES + queries[::7] + candidates[::7]  # every language of XQuAD-R
    expected = reference_tokens(texts)
    assert bm25.tokenize(texts) == expected  # the memo filling
    assert bm25.tokenize(texts[::-1]) == expected[::-1]  # the memo full
    monkeypatch.setattr(bm25, "MEMO_WORDS", 0)  # restarted empty before every call
    assert bm25.tokenize(texts[:200]) == bm25.tokenize(texts[:200]) == expected[:200]
    assert bm25.tokenize(["x\u0600 y", "鳃"]) == [["▁x", "\u0600", "▁y"], ["鳃"]]


def test_tokenize_ids_are_the_tokenizer_ids_and_unknown_runs_get_their_own() -> None:
    texts = ["Cat dog.", "", "cat 鳃 dog 鳃 ⲡϣⲁϯ", "<unk>"]
    ids, offsets = bm25.tokenize_ids(texts)
    assert ids.dtype == np.int32 and offsets.dtype == np.int64 and offsets.tolist()[:3] == [0, 3, 3]
    tokenizer = bm25._pieces().tokenizer
    cat, dog, unk = (tokenizer.token_to_id(t) for t in ("▁cat", "▁dog", "<unk>"))
    assert ids[:3].tolist() == [cat, dog, tokenizer.token_to_id(".")]
    row = ids[offsets[2]:offsets[3]].tolist()
    assert row[0] == cat and row[2] == dog and row[1] == row[3] != row[4]  # 鳃 twice, one id; ⲡϣⲁϯ another
    assert min(row[1], row[4]) >= tokenizer.get_vocab_size(with_added_tokens=True)  # past the vocabulary
    assert ids[offsets[3]:].tolist() == [unk]  # "<unk>" written in a text is the special token itself


@pytest.mark.slow
def test_tokenize_equals_the_tokenizer_on_all_shipped_text() -> None:
    texts = []
    for name in ("xquad-r", "mlqa-r"):
        data = discover()[name].load()
        texts += data.queries["text"].tolist() + data.candidates["text"].tolist()
    for path in sorted(DATA_ROOT.rglob("*.jsonl.gz")):  # the other tasks and the training data, ~100 languages
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            texts += [v for line in fh for v in json.loads(line).values() if isinstance(v, str)]
    assert len(texts) > 150_000
    assert bm25.tokenize(texts) == reference_tokens(texts)


def build(texts: list[str], dest: Path, size: int) -> Path:
    bm25.build_index((texts[i:i + size] for i in range(0, len(texts), size)), dest, total=len(texts))
    return dest


def test_hand_computed_three_documents(tmp_path: Path) -> None:
    index = bm25.DiskBM25(build(["cat dog", "Cat cat fish", "DOG"], tmp_path / "idx", 2))
    # N = 3 documents of 2, 3 and 1 tokens: average length 2. Lucene IDF = ln(1 + (N - df + 0.5) / (df + 0.5)):
    idf_cat = idf_dog = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))  # df 2: ln(1.6)
    idf_fish = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))  # df 1: ln(8/3)
    # tf part = tf / (k1 * (1 - b + b * len / avg) + tf), k1 = 0.9, b = 0.4:
    norm = [0.9 * (0.6 + 0.4 * 2 / 2), 0.9 * (0.6 + 0.4 * 3 / 2), 0.9 * (0.6 + 0.4 * 1 / 2)]  # 0.9, 1.08, 0.72
    assert norm == pytest.approx([0.9, 1.08, 0.72])
    expected = {
        "cat fish": [idf_cat * 1 / (norm[0] + 1), idf_cat * 2 / (norm[1] + 2) + idf_fish * 1 / (norm[1] + 1), 0],
        "dog": [idf_dog * 1 / (norm[0] + 1), 0, idf_dog * 1 / (norm[2] + 1)],
        "cat cat": [2 * idf_cat * 1 / (norm[0] + 1), 2 * idf_cat * 2 / (norm[1] + 2), 0],  # a repeat adds again
        "zebra": [0, 0, 0],  # a term the corpus lacks
        "  ": [0, 0, 0],  # no term at all
    }
    assert expected["cat fish"] == pytest.approx([0.2473703, 0.3051972 + 0.4715525, 0], abs=1e-6)
    for (query, want), got in zip(expected.items(), index.scores(list(expected))):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=query)


def test_index_equals_bm25s_in_memory(xquad, tmp_path: Path) -> None:
    queries, candidates = xquad
    corpus = [*candidates[::20], "", "鳃 ⲡϣⲁϯ 月岑妙珎", "x\u0600 y"]  # 650 sentences in 11 languages, and odd ones
    asked = [*queries[::260], "鳃 zzqq", "", "the the the"]
    assert len(corpus) > 600 and len(asked) > 50
    dest = build(corpus, tmp_path / "idx", 37)  # 18 chunks spilled

    reference = bm25s.BM25(k1=bm25.K1, b=bm25.B, method="lucene")
    reference.index(bm25.tokenize(corpus), show_progress=False)
    loaded = bm25s.BM25.load(dest, mmap=True)
    assert isinstance(loaded.scores["data"], np.memmap) and loaded.scores["num_docs"] == len(corpus)
    assert set(loaded.vocab_dict) == set(reference.vocab_dict)
    disk = bm25.DiskBM25(dest)
    for tokens, got in zip(bm25.tokenize(asked), disk.scores(asked), strict=True):
        want = reference.get_scores(tokens) if tokens else np.zeros(len(corpus), dtype=np.float32)
        # bit-identical: the same float64 arithmetic per (document, term), the same float32 sums in query order
        np.testing.assert_array_equal(got, want)
        if tokens:
            np.testing.assert_array_equal(loaded.get_scores(tokens), want)
    assert list(tmp_path.iterdir()) == [dest]  # no spill or temporary folder left


def test_chunking_and_history_do_not_change_a_byte(xquad, tmp_path: Path) -> None:
    corpus = [*xquad[1][::40], "鳃 ⲡϣⲁϯ", "月岑妙珎 鳃"]  # 3 unknown runs, numbered as the process first meets them
    bm25._pieces.cache_clear()
    small = build(corpus, tmp_path / "small", 7)
    bm25._pieces.cache_clear()
    for run in ("珎", "ⲡϣⲁϯ", "鳃"):  # met in another order before this build
        bm25.tokenize([run])
    large = build(corpus, tmp_path / "large", 1000)
    names = sorted(p.name for p in small.iterdir())
    assert names == sorted(p.name for p in large.iterdir()) == sorted(
        [bm25.DATA, bm25.INDICES, bm25.INDPTR, bm25.VOCAB, bm25.PARAMS])
    assert all((small / n).read_bytes() == (large / n).read_bytes() for n in names)


def test_an_interrupted_build_leaves_nothing(tmp_path: Path) -> None:
    def chunks() -> Iterator[list[str]]:
        yield ["cat dog"] * 10
        yield ["fish"] * 10
        raise RuntimeError("corpus reader failed")

    with pytest.raises(RuntimeError, match="corpus reader failed"):
        bm25.build_index(chunks(), tmp_path / "idx")
    assert list(tmp_path.iterdir()) == []


def test_bad_corpus_or_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(XbenchError, match="the corpus is empty"):
        bm25.build_index(iter([]), tmp_path / "idx")
    with pytest.raises(XbenchError, match="the corpus is empty"):
        bm25.build_index([[], []], tmp_path / "idx")
    with pytest.raises(XbenchError, match="none of the corpus's 2 texts has a token"):
        bm25.build_index([["", "  "]], tmp_path / "idx")
    assert list(tmp_path.iterdir()) == []
    dest = build(["cat"], tmp_path / "idx", 1)
    with pytest.raises(XbenchError, match="already exists"):
        build(["dog"], dest, 1)
    params = json.loads((dest / bm25.PARAMS).read_text())
    (dest / bm25.PARAMS).write_text(json.dumps({**params, "k1": 1.2}))
    with pytest.raises(XbenchError, match="k1=1.2"):
        bm25.DiskBM25(dest)
    with pytest.raises(XbenchError, match="not a readable BM25 index"):
        bm25.DiskBM25(tmp_path / "missing")


def test_a_killed_build_is_cleaned_up_by_the_next(tmp_path: Path) -> None:
    """SIGKILL leaves the spill behind (no handler runs); the next build of the same index removes it."""
    script = (
        "import os, pathlib, signal, sys\n"
        "from xbench.models import bm25\n"
        "def chunks():\n"
        "    yield ['cat dog'] * 10\n"
        "    yield ['fish'] * 10\n"  # read once the first chunk is spilled
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "    yield ['never']\n"
        "bm25.build_index(chunks(), pathlib.Path(sys.argv[1]) / 'idx')\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".idx.") and (left / "spill").is_dir()

    dest = build(["cat dog", "fish"], tmp_path / "idx", 1)
    assert list(tmp_path.iterdir()) == [dest]
