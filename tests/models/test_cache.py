"""Embedding cache: encode once across runs, role in the key, damaged shards recomputed, concurrent writers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

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
    assert sorted(enc.seen) == ["a", "bb", "ccc", "dddd"]
    np.testing.assert_array_equal(first, second[:5])
    np.testing.assert_array_equal(first[0], first[2])


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
