"""Embedding cache: encode once across runs (a warm run never calls the encoder), role in the key, binary keys and
the first format's hex keys, damaged shards (and shards of another dimension) recomputed, concurrent writers,
stale temp files removed, I/O errors that name the path."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import threading
import time

import numpy as np
import pytest

from xbench.errors import XbenchError
from xbench.models import cache
from xbench.models.cache import EmbeddingStore, encode_cached


class CountingEncoder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.array([[len(t), sum(map(ord, t)) % 97] for t in texts], dtype=np.float32)


def test_each_unique_text_is_encoded_once_across_runs(tmp_path):
    enc = CountingEncoder()
    texts = ["a", "bb", "a", "ccc", "bb"]
    first, n1 = encode_cached(texts, enc, EmbeddingStore(tmp_path, "fp", "doc"))
    second, n2 = encode_cached(texts + ["dddd"], enc, EmbeddingStore(tmp_path, "fp", "doc"))
    assert (n1, n2) == (3, 1)
    assert sorted(enc.seen) == ["a", "bb", "ccc", "dddd"]  # each unique text once, no probe of the dimension
    np.testing.assert_array_equal(first, second[:5])
    np.testing.assert_array_equal(first[0], first[2])
    third, n3 = encode_cached(texts, enc, EmbeddingStore(tmp_path, "fp", "doc"))
    assert n3 == 0 and len(enc.seen) == 4  # a fully warm run calls the encoder zero times
    np.testing.assert_array_equal(third, first)
    folder = tmp_path / "embeddings" / "fp" / "doc"
    assert json.loads((folder / "meta.json").read_text()) == {"dim": 2}
    keys = []
    for path in folder.glob("shard-*.npz"):
        with np.load(path) as shard:
            assert shard["keys"].dtype == np.dtype("S32")
            keys += shard["keys"].view("V32").tolist()
    assert sorted(keys) == sorted(hashlib.sha256(t.encode()).digest() for t in ("a", "bb", "ccc", "dddd"))


def test_a_digest_ending_in_zero_bytes_keeps_them(tmp_path):
    text = next(f"t{i}" for i in range(10_000) if hashlib.sha256(f"t{i}".encode()).digest().endswith(b"\0"))
    assert cache.text_key(text)[-1] == 0  # numpy's 'S' items drop trailing zero bytes; the store must not
    enc = CountingEncoder()
    encode_cached([text], enc, EmbeddingStore(tmp_path, "fp", "doc"))
    vectors, n = encode_cached([text], enc, EmbeddingStore(tmp_path, "fp", "doc"))
    assert n == 0 and enc.seen == [text]
    np.testing.assert_array_equal(vectors, enc([text]))
    other = EmbeddingStore(tmp_path, "fp", "query")  # a writer handed the key through an 'S' array lost the zeros
    other.put([cache.text_key(text).rstrip(b"\0")], np.ones((1, 2), np.float32))
    assert [k for k, _ in other.read({cache.text_key(text)}, set())] == [[cache.text_key(text)]]


def test_shards_of_the_first_format_are_read_after_one_probe(tmp_path):
    """Hex keys and no meta.json (caches written before): read as they are, the dimension probed once, recorded."""
    folder = tmp_path / "embeddings" / "fp" / "doc"
    folder.mkdir(parents=True)
    texts = ["a", "bb", "ccc"]
    old = np.array([[7.0, 1.0], [8.0, 2.0], [9.0, 3.0]], dtype=np.float32)  # not what the encoder gives: read back
    np.savez(folder / "shard-old.npz", keys=np.array([hashlib.sha256(t.encode()).hexdigest() for t in texts]),
             vectors=old)
    enc = CountingEncoder()
    vectors, n = encode_cached(texts + ["dddd"], enc, EmbeddingStore(tmp_path, "fp", "doc"))
    assert n == 1 and enc.seen == ["a", "dddd"]  # the probe (the shortest text), then the one new text
    np.testing.assert_array_equal(vectors, np.vstack([old, enc(["dddd"])]))
    assert json.loads((folder / "meta.json").read_text()) == {"dim": 2}
    again, n = encode_cached(texts, enc, EmbeddingStore(tmp_path, "fp", "doc"))
    assert n == 0 and len(enc.seen) == 3  # recorded: no probe any more
    np.testing.assert_array_equal(again, old)


def test_an_encoder_of_another_dimension_than_recorded_is_an_error_naming_meta_json(tmp_path):
    encode_cached(["a"], CountingEncoder(), EmbeddingStore(tmp_path, "fp", "doc"))
    store = EmbeddingStore(tmp_path, "fp", "doc")
    with pytest.raises(XbenchError, match=re.escape(f"{store.dir / 'meta.json'}: the cache records vectors of "
                                                    "dimension 2, the encoder gives 3")):
        encode_cached(["b"], lambda t: np.ones((len(t), 3), np.float32), store)


def test_role_and_fingerprint_are_part_of_the_key(tmp_path):
    enc = CountingEncoder()
    for fp, role in [("fp", "query"), ("fp", "doc"), ("other", "doc")]:
        _, n = encode_cached(["x"], enc, EmbeddingStore(tmp_path, fp, role))
        assert n == 1


def test_damaged_shard_is_dropped_and_recomputed(tmp_path, caplog):
    enc = CountingEncoder()
    encode_cached(["a", "b"], enc, EmbeddingStore(tmp_path, "fp", "doc"))
    shard = next((tmp_path / "embeddings" / "fp" / "doc").glob("shard-*.npz"))
    shard.write_bytes(shard.read_bytes()[:50])  # truncated, as by a crash or a full disk
    vectors, n = encode_cached(["a", "b"], enc, EmbeddingStore(tmp_path, "fp", "doc"))
    assert n == 2 and "damaged shard" in caplog.text
    np.testing.assert_array_equal(vectors, enc(["a", "b"]))


def test_interrupted_encoding_resumes_from_written_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "SHARD_TEXTS", 2)
    texts = [f"t{i}" for i in range(6)]
    calls = {"n": 0}

    def crashing(batch: list[str]) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return CountingEncoder()(batch)

    with pytest.raises(KeyboardInterrupt):
        encode_cached(texts, crashing, EmbeddingStore(tmp_path, "fp", "doc"))
    _, n = encode_cached(texts, CountingEncoder(), EmbeddingStore(tmp_path, "fp", "doc"))
    assert n == 2  # two shards of two texts survived the interruption
    assert not list((tmp_path / "embeddings" / "fp" / "doc").glob("*.tmp"))


def test_concurrent_writers_do_not_corrupt(tmp_path):
    texts = [f"text {i}" for i in range(200)]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            encode_cached(texts, CountingEncoder(), EmbeddingStore(tmp_path, "fp", "doc"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    vectors, n = encode_cached(texts, CountingEncoder(), EmbeddingStore(tmp_path, "fp", "doc"))
    assert n == 0
    np.testing.assert_array_equal(vectors, CountingEncoder()(texts))


def _rewrite_shards(folder, keep) -> None:
    """Rewrite every shard of a store with `keep(vectors)`, consistently, as a damaged or foreign cache would."""
    for shard in sorted(folder.glob("shard-*.npz")):
        with np.load(shard) as data:
            keys, vectors = data["keys"], data["vectors"]
        np.savez(shard.with_suffix(""), keys=keys, vectors=keep(vectors))


def test_vectors_of_another_dimension_are_re_encoded(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(cache, "SHARD_TEXTS", 2)
    texts = ["a", "bb", "ccc", "dddd"]
    folder = tmp_path / "embeddings" / "fp" / "doc"
    encode_cached(texts, CountingEncoder(), EmbeddingStore(tmp_path, "fp", "doc"))
    _rewrite_shards(folder, lambda v: v[:, :1])  # every shard, consistently, at 1 of the model's 2 dimensions
    vectors, n = encode_cached(texts, CountingEncoder(), EmbeddingStore(tmp_path, "fp", "doc"))
    assert n == 4 and "vectors of dimension 1, the model's have 2" in caplog.text
    np.testing.assert_array_equal(vectors, CountingEncoder()(texts))
    first = sorted(folder.glob("shard-*.npz"))[0]  # mixed dimensions: only the odd shard is re-encoded
    with np.load(first) as data:
        np.savez(first.with_suffix(""), keys=data["keys"], vectors=np.hstack([data["vectors"]] * 2))
    vectors, n = encode_cached(texts, CountingEncoder(), EmbeddingStore(tmp_path, "fp", "doc"))
    assert n == 2
    np.testing.assert_array_equal(vectors, CountingEncoder()(texts))


def test_stale_temp_files_are_removed_and_fresh_ones_kept(tmp_path):
    folder = tmp_path / "embeddings" / "fp" / "doc"
    folder.mkdir(parents=True)
    stale, fresh = folder / "old.tmp", folder / "live.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = time.time() - cache.STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    EmbeddingStore(tmp_path, "fp", "doc")
    assert not stale.exists() and fresh.exists()


def test_a_full_disk_or_an_unreadable_shard_is_an_error_naming_the_path(tmp_path, monkeypatch):
    store = EmbeddingStore(tmp_path, "fp", "doc")
    encode_cached(["a"], CountingEncoder(), store)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(XbenchError, match=re.escape(f"{store.dir}: cannot write an embedding shard (No space left "
                                                    "on device); free disk space or pass a writable --cache-dir")):
        encode_cached(["b"], CountingEncoder(), store)
    assert not list(store.dir.glob("*.tmp"))

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(np, "load", denied)
    shard = next(store.dir.glob("shard-*.npz"))
    with pytest.raises(XbenchError, match=re.escape(f"{shard}: cannot read the embedding cache (Permission denied)")):
        encode_cached(["a"], CountingEncoder(), store)
    assert shard.exists()  # not taken for a damaged shard


def test_a_damaged_meta_json_costs_one_probe_and_is_rewritten(tmp_path, caplog):
    enc = CountingEncoder()
    encode_cached(["a", "bb"], enc, EmbeddingStore(tmp_path, "fp", "doc"))
    meta = tmp_path / "embeddings" / "fp" / "doc" / "meta.json"
    meta.write_text("{not json")
    vectors, n = encode_cached(["a", "bb"], enc, EmbeddingStore(tmp_path, "fp", "doc"))
    assert n == 0 and enc.seen == ["bb", "a", "a"] and "damaged" in caplog.text  # encoded longest first, then the probe
    assert json.loads(meta.read_text()) == {"dim": 2}
    np.testing.assert_array_equal(vectors, enc(["a", "bb"]))
