"""Encoding speed paths give the same vectors as the plain one: multi-process pool, Ray Data workers writing cache
shards, bfloat16; and the batch size that shrank on out-of-memory is remembered per model and device."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import invoke, write_tiny_task

from xbench.errors import XbenchError
from xbench.models.base import DenseRetriever
from xbench.models.cache import EmbeddingStore, encode_cached
from xbench.models.registry import Speed, resolve
from xbench.models.st import BatchSizes, SentenceTransformerEncoder, load_sentence_transformer
from xbench.tasks.registry import discover

TEXTS = ["Cats sleep a lot.", "Hunde bellen nachts laut.", "Who barks at night?", "Mars is red.", "Der Mond."]


def _plain(model: Path, tmp_path: Path) -> SentenceTransformerEncoder:
    return load_sentence_transformer(str(model), pooling=None, device="cpu", batch_size=2, cache_root=tmp_path)


def test_bfloat16_is_close_to_float32_and_keys_its_own_cache(tiny_st_model: Path, tmp_path: Path) -> None:
    full = _plain(tiny_st_model, tmp_path)
    half = load_sentence_transformer(str(tiny_st_model), pooling=None, device="cpu", batch_size=2, dtype="bfloat16")
    a, b = full.encode(TEXTS, "doc"), half.encode(TEXTS, "doc")
    assert b.dtype == np.float32
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99 and not np.array_equal(a, b)  # rounded, not the same numbers
    assert half.info.fingerprint != full.info.fingerprint and half.info.card["dtype"] == "bfloat16"


def test_float16_on_cpu_is_refused(tiny_st_model: Path) -> None:
    with pytest.raises(XbenchError, match="float16: half precision runs on a GPU only"):
        load_sentence_transformer(str(tiny_st_model), pooling=None, device="cpu", batch_size=2, dtype="float16")


@pytest.mark.slow  # starts a process pool
def test_multi_process_pool_gives_the_same_vectors(tiny_st_model: Path, tmp_path: Path) -> None:
    pooled = load_sentence_transformer(str(tiny_st_model), pooling=None, device="cpu", batch_size=2,
                                       devices=("cpu", "cpu"))
    single = _plain(tiny_st_model, tmp_path)
    try:
        np.testing.assert_allclose(pooled.encode(TEXTS * 3, "query"), single.encode(TEXTS * 3, "query"), atol=1e-6)
        assert pooled._pool is not None and len(pooled._pool["processes"]) == 2
    finally:  # the workers would otherwise idle until the whole suite exits
        pooled.close()
    assert pooled._pool is None


class OomAbove:
    """A token model (one token per word) that runs out of memory above `limit` padded token slots per batch, as a
    GPU would; each text's vector holds its token count, so the rows show that the order is restored."""

    prompts: dict[str, str] = {}
    truncate_dim = None
    device = "cpu"

    def __init__(self, limit: int) -> None:
        self.limit, self.slots = limit, []

    def preprocess(self, texts: list[str], prompt: str | None = None) -> dict[str, torch.Tensor]:
        lengths = [len(t.split()) for t in texts]
        mask = torch.tensor([[1] * n + [0] * (max(lengths) - n) for n in lengths])
        return {"input_ids": mask * 7, "attention_mask": mask}

    def eval(self) -> OomAbove:
        return self

    def __call__(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.slots.append(features["input_ids"].numel())
        if self.slots[-1] > self.limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return {"sentence_embedding": features["attention_mask"].sum(dim=1, keepdim=True).float().repeat(1, 4)}


def test_batch_size_halves_on_oom_and_is_remembered(tiny_st_model: Path, tmp_path: Path) -> None:
    info = _plain(tiny_st_model, tmp_path).info
    sizes = BatchSizes(tmp_path / "batch_sizes.json")
    model = OomAbove(limit=8)
    encoder = SentenceTransformerEncoder(model, info, 128, load={"device": "cuda:0"}, sizes=sizes)
    # 4, 4, 4, 3 and 2 tokens (mean 3.4): one batch of 5 x 4 slots until the budget, batch size x 3.4, holds
    # fewer than 4 texts of 4 tokens, i.e. at batch size 2 (6.8 slots: one text of 4 tokens per batch)
    assert encoder.encode(TEXTS, "doc")[:, 0].tolist() == [4, 4, 4, 3, 2]
    assert encoder.batch_size == 2 and max(model.slots[-4:]) <= 8
    assert json.loads(sizes.path.read_text()) == {f"{info.fingerprint}@cuda:0": 2}
    again = SentenceTransformerEncoder(OomAbove(limit=8), info, 128, load={"device": "cuda:0"}, sizes=sizes)
    assert again.batch_size == 2  # the next run starts at the size that worked
    other = SentenceTransformerEncoder(OomAbove(limit=8), info, 128, load={"device": "cpu"}, sizes=sizes)
    assert other.batch_size == 128  # another device has its own memory
    sizes.path.write_text("{not json")
    assert BatchSizes(sizes.path).get("any", 64) == 64  # a damaged file costs nothing but the memory


def test_non_oom_errors_are_not_swallowed(tiny_st_model: Path, tmp_path: Path) -> None:
    class Broken(OomAbove):
        def __call__(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            raise RuntimeError("shape mismatch")

    encoder = SentenceTransformerEncoder(Broken(0), _plain(tiny_st_model, tmp_path).info, 8)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        encoder.encode(TEXTS, "doc")


def test_fill_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path, "fp", "doc")
    with pytest.raises(XbenchError, match="wrote no vectors for 2 of 2 texts"):
        encode_cached(["a", "b"], lambda t: np.zeros((len(t), 2)), store, fill=lambda items: None)


@pytest.mark.slow  # starts a local Ray cluster
def test_ray_workers_write_the_shards_the_run_reads(tiny_st_model: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")  # the test extra installs it; importorskip only names the missing piece
    task = discover((write_tiny_task(tmp_path / "t"),))["tiny"]
    cache = tmp_path / "cache"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        retriever = resolve(str(tiny_st_model), cache_root=cache, batch_size=4,
                            speed=Speed(ray="local", ray_actors=2))
        counts = retriever.prepare(task.load())
        assert counts["encoded_now"] == counts["unique_texts"] > 0
    finally:
        ray.shutdown()
    plain = DenseRetriever(_plain(tiny_st_model, tmp_path), tmp_path / "other-cache")
    plain.prepare(task.load())
    for got, want in zip(retriever.embeddings(), plain.embeddings()):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert list((cache / "embeddings" / retriever.info.fingerprint / "doc").glob("shard-*.npz"))
    # the workers' shards are ordinary cache entries: a local rerun encodes nothing
    again = DenseRetriever(retriever.encoder.inner, cache)
    assert again.prepare(task.load())["encoded_now"] == 0


def test_speed_options_are_refused_for_non_torch_models(tmp_path: Path) -> None:
    with pytest.raises(XbenchError, match="apply to torch encoders only"):
        resolve("bm25", cache_root=tmp_path, speed=Speed(dtype="bfloat16"))


def test_cli_records_dtype_in_the_command(tiny_st_model: Path, tmp_path: Path) -> None:
    tasks = write_tiny_task(tmp_path / "t")
    result = invoke("run", "--model", str(tiny_st_model), "--tasks", "tiny", "--tasks-dir", str(tasks),
                    "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"), "--dtype", "bfloat16")
    assert result.exit_code == 0, result.output
    written = json.loads(next((tmp_path / "out").rglob("tiny.json")).read_text())
    assert "--dtype bfloat16" in written["run"]["command"]
