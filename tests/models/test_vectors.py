"""xbench.models.vectors: a corpus encoded into shard files only where rows are missing (resume after an
interruption, damaged files refilled), concurrent fills, the manifest check, and the memory-mapped cover."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from xbench.errors import XbenchError
from xbench.models.vectors import VectorShards

TEXTS = [f"passage {i} " + "x" * (i % 7) for i in range(50)]


def vector(text: str) -> list[float]:
    return [len(text), sum(map(ord, text)) % 101, 1.0]


def encoded(texts: list[str]) -> np.ndarray:
    return np.array([vector(t) for t in texts], dtype=np.float32)


class Corpus:
    """A corpus view reading `step` texts a batch (a Parquet reader's record batches need not match the shards)."""

    def __init__(self, texts: list[str], step: int | None = None) -> None:
        self.texts, self.step, self.read_rows = texts, step, 0

    def batches(self, rows: int, start: int = 0) -> Iterator[tuple[int, list[str]]]:
        step = self.step or rows
        for a in range(start, len(self.texts), step):
            self.read_rows += len(self.texts[a : a + step])
            yield a, self.texts[a : a + step]


class Encoder:
    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[int] = []
        self.fail_after = fail_after

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.fail_after is not None and len(self.calls) == self.fail_after:
            raise KeyboardInterrupt
        self.calls.append(len(texts))
        return encoded(texts)


def store(tmp_path, rows: int = len(TEXTS)) -> VectorShards:
    return VectorShards(tmp_path, "model-fp", "corpus-fp", rows)


def stacked(shards: VectorShards) -> np.ndarray:
    parts = shards.shards()
    assert [start for start, _ in parts] == list(np.cumsum([0] + [len(m) for _, m in parts[:-1]]))
    return np.vstack([m for _, m in parts])


@pytest.mark.parametrize("step", [None, 7, 50])
def test_fill_writes_shards_covering_the_corpus(tmp_path, step):
    vs, enc = store(tmp_path), Encoder()
    assert vs.missing() == [(0, 50)]
    assert vs.fill(Corpus(TEXTS, step).batches, enc, shard_rows=16) == 50
    assert enc.calls == [16, 16, 16, 2]  # regrouped to the shard size, whatever the reader's batches
    assert sorted(p.name for p in vs.dir.glob("rows-*.npy")) == [
        "rows-000000000000-000000000016.npy", "rows-000000000016-000000000032.npy",
        "rows-000000000032-000000000048.npy", "rows-000000000048-000000000050.npy"]
    assert json.loads((vs.dir / "manifest.json").read_text()) == {
        "format": 1, "model": "model-fp", "corpus": "corpus-fp", "rows": 50, "dim": 3, "shard_rows": 16}
    assert vs.missing() == []
    parts = vs.shards()
    assert all(isinstance(m, np.memmap) and m.dtype == np.float32 for _, m in parts)
    np.testing.assert_array_equal(stacked(vs), encoded(TEXTS))
    assert store(tmp_path).fill(Corpus(TEXTS).batches, enc, shard_rows=16) == 0 and len(enc.calls) == 4


def test_an_interrupted_fill_resumes_with_the_rest(tmp_path):
    corpus = Corpus(TEXTS)
    with pytest.raises(KeyboardInterrupt):
        store(tmp_path).fill(corpus.batches, Encoder(fail_after=2), shard_rows=16)
    assert not list(store(tmp_path).dir.glob("*.tmp"))
    vs, enc = store(tmp_path), Encoder()
    assert vs.missing() == [(32, 50)]
    corpus.read_rows = 0
    assert vs.fill(corpus.batches, enc, shard_rows=16) == 18 and enc.calls == [16, 2]
    assert corpus.read_rows == 18  # the reader starts at the gap
    np.testing.assert_array_equal(stacked(vs), encoded(TEXTS))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "dimension", "dtype", "rows"])
def test_a_damaged_shard_is_removed_and_refilled(tmp_path, caplog, damage):
    vs = store(tmp_path)
    vs.fill(Corpus(TEXTS).batches, Encoder(), shard_rows=16)
    path = vs.dir / "rows-000000000016-000000000032.npy"
    good = np.load(path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-20])
    elif damage == "garbage":
        path.write_bytes(b"not a numpy file")
    else:
        np.save(path, {"dimension": good[:, :2], "dtype": good.astype(np.float64), "rows": good[:10]}[damage])
    with pytest.raises(XbenchError, match=r"corpus rows 16\.\. have no vectors"):
        store(tmp_path).shards()
    assert "damaged shard" in caplog.text and not path.exists()
    vs, enc = store(tmp_path), Encoder()
    assert vs.missing() == [(16, 32)]
    assert vs.fill(Corpus(TEXTS).batches, enc, shard_rows=16) == 16 and enc.calls == [16]
    np.testing.assert_array_equal(stacked(vs), encoded(TEXTS))


def test_concurrent_fills_give_the_same_vectors(tmp_path):
    errors: list[BaseException] = []
    encoders = [Encoder(), Encoder()]

    def fill(enc: Encoder) -> None:
        try:
            store(tmp_path).fill(Corpus(TEXTS, 5).batches, enc, shard_rows=8)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fill, args=(enc,)) for enc in encoders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert 50 <= sum(map(sum, (e.calls for e in encoders))) <= 100  # each row once, or once by each writer
    vs = store(tmp_path)
    assert vs.missing() == [] and not list(vs.dir.glob("*.tmp"))
    np.testing.assert_array_equal(stacked(vs), encoded(TEXTS))


def test_overlapping_shards_are_cut_into_one_cover(tmp_path):
    """Writers that saw different gaps (or used other shard sizes) leave overlapping files: each row is read once."""
    vs = store(tmp_path)
    for a, b in [(0, 20), (10, 30), (10, 25), (30, 50), (0, 5), (28, 50)]:
        vs.put(a, encoded(TEXTS[a:b]))
    cover = vs.shards()
    assert [(s, len(m)) for s, m in cover] == [(0, 20), (20, 10), (30, 20)]
    np.testing.assert_array_equal(stacked(vs), encoded(TEXTS))


def test_another_corpus_size_or_dimension_is_an_error_naming_the_folder(tmp_path):
    vs = store(tmp_path)
    vs.put(0, encoded(TEXTS[:10]))
    folder = re.escape(str(vs.dir))
    with pytest.raises(XbenchError, match=rf"{folder}/manifest.json: it records .*'rows': 50.*Delete {folder} to "):
        store(tmp_path, rows=60)
    with pytest.raises(XbenchError, match=rf"{folder}/manifest.json: vectors of dimension 2 were given, the store "
                                          rf"holds dimension 3; .* Delete {folder}"):
        store(tmp_path).put(10, encoded(TEXTS[10:20])[:, :2])
    (vs.dir / "manifest.json").write_text("{")
    with pytest.raises(XbenchError, match=rf"{folder}/manifest.json: cannot be read"):
        store(tmp_path)


def test_bad_vectors_are_refused(tmp_path):
    vs = store(tmp_path)
    bad = encoded(TEXTS[:4])
    bad[2, 1] = np.inf
    with pytest.raises(XbenchError, match=r"non-finite values for corpus rows 0\.\.4"):
        vs.put(0, bad)
    with pytest.raises(ValueError, match=r"rows 48\.\.52 of 50"):
        vs.put(48, encoded(TEXTS[:4]))
    with pytest.raises(XbenchError, match=r"returned \(3, 3\) for 4 texts"):
        vs.fill(Corpus(TEXTS).batches, lambda texts: encoded(texts[:3]), shard_rows=4)
    assert vs.missing() == [(0, 50)] and not (vs.dir / "manifest.json").exists()


def test_a_short_corpus_is_an_error(tmp_path):
    with pytest.raises(XbenchError, match="the corpus reader ended at row 50, before row 60"):
        store(tmp_path, rows=60).fill(Corpus(TEXTS).batches, Encoder(), shard_rows=16)
