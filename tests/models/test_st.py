"""sentence-transformers encoders: a damaged local model folder is a user error naming the folder and the fix;
token-budget batches; a model loaded on its first encode only."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from helpers import invoke, write_tiny_task
from tokenizers import Tokenizer

from xbench.models.base import DenseRetriever
from xbench.models.cache import SHARD_TEXTS
from xbench.models.me5 import xlmr_tokenizer_json
from xbench.models.st import ModelCards, load_sentence_transformer, plan_batches, pool_chunk
from xbench.tasks.registry import discover

TEXTS = ["Cats sleep a lot.", "Hunde bellen nachts laut.", "Who barks at night?", "Mars is red.", "Der Mond."]


def test_corrupt_weights_name_the_folder(tmp_path, tiny_st_model):
    model = tmp_path / "broken-model"
    shutil.copytree(tiny_st_model, model)
    weights = list(model.rglob("model.safetensors"))
    assert weights
    for path in weights:
        path.write_bytes(b"not safetensors" * 8)
    tasks = write_tiny_task(tmp_path)
    out = tmp_path / "results"
    res = invoke("run", "--model", str(model), "--tasks", "tiny", "--tasks-dir", str(tasks), "--output", str(out),
                 "--cache-dir", str(tmp_path / "cache"))
    assert res.exit_code == 2, res.output
    assert f"the model folder {model.resolve()} cannot be loaded" in res.output
    assert "Save or download the model again" in res.output
    assert not out.exists() or not list(out.rglob("*.json"))


def test_plan_batches_by_hand():
    # mean 4 tokens, batch size 2: budget 8 slots; longest first, ties in input order
    batches = plan_batches(np.array([2, 8, 3, 3, 1, 4, 5, 6]), 2)
    assert [b.tolist() for b in batches] == [[1], [7], [6], [5, 2], [3, 0], [4]]
    # a text longer than the budget still gets a batch of its own; nothing is lost or repeated
    assert [b.tolist() for b in plan_batches(np.array([1, 30, 1]), 1)] == [[1], [0, 2]]
    assert plan_batches(np.array([], dtype=np.int64), 8) == []


def _slots(lengths: np.ndarray, batches: list[np.ndarray]) -> tuple[int, int]:
    """(padded token slots, real tokens) of a batching: each batch is padded to its longest text."""
    return sum(len(b) * int(lengths[b].max()) for b in batches), int(lengths.sum())


def test_token_batches_pad_xquad_r_candidates_by_at_most_5_percent():
    """The shipped XQuAD-R candidates as me5-small reads them ("passage: " + sentence, its XLM-R tokenizer,
    512 tokens), handed over as the cache hands them (longest in characters first, SHARD_TEXTS at a time)."""
    texts = ["passage: " + t for t in dict.fromkeys(discover()["xquad-r"].load().candidates["text"])]
    tokenizer = Tokenizer.from_file(str(xlmr_tokenizer_json()))
    tokenizer.enable_truncation(512)
    lengths = np.array([len(e.ids) for e in tokenizer.encode_batch(texts)])
    by_chars = np.array(sorted(range(len(texts)), key=lambda i: -len(texts[i])))
    new = old = (0, 0)
    for start in range(0, len(texts), SHARD_TEXTS):
        chunk = lengths[by_chars[start : start + SHARD_TEXTS]]
        new = tuple(map(sum, zip(new, _slots(chunk, plan_batches(chunk, 64)))))
        old = tuple(map(sum, zip(old, _slots(chunk, [np.arange(i, min(i + 32, len(chunk)))
                                                       for i in range(0, len(chunk), 32)]))))
    assert new[0] / new[1] <= 1.05
    assert old[0] / old[1] > 1.5  # the figure for batches of 32 in character order: 1.539


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Spy on SentenceTransformer construction (what loading the weights means here)."""
    import sentence_transformers

    made: list[str] = []

    class Counting(sentence_transformers.SentenceTransformer):
        def __init__(self, *args: object, **kwargs: object) -> None:
            made.append(str(args[0]) if args else "modules")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", Counting)
    return made


def test_a_recorded_card_defers_the_load_to_the_first_encode(tiny_st_model, tmp_path, monkeypatch):
    made = _counting(monkeypatch)
    load = {"pooling": None, "device": "cpu", "batch_size": 4, "cache_root": tmp_path}
    first = load_sentence_transformer(str(tiny_st_model), **load)
    assert made == [str(tiny_st_model)]  # nothing recorded yet: loaded now, and its card recorded
    second = load_sentence_transformer(str(tiny_st_model), **load)
    assert made == [str(tiny_st_model)] and second.info == first.info  # same fingerprint and card, no load
    assert second.info.card["prompts"] == first.model.prompts
    vectors = second.encode(TEXTS, "query")
    second.encode(TEXTS, "doc")
    assert len(made) == 2  # loaded once, on the first encode
    np.testing.assert_array_equal(vectors, first.encode(TEXTS, "query"))
    elsewhere = load_sentence_transformer(str(tiny_st_model), **{**load, "cache_root": None})
    assert len(made) == 3 and elsewhere.info == first.info  # without a cache there is no record: loaded now


def test_a_damaged_card_record_means_one_more_load(tiny_st_model, tmp_path, monkeypatch):
    made = _counting(monkeypatch)
    load = {"pooling": None, "device": "cpu", "batch_size": 4, "cache_root": tmp_path}
    info = load_sentence_transformer(str(tiny_st_model), **load).info
    (record,) = (tmp_path / "model-cards").iterdir()
    assert record.name == f"{info.fingerprint}.json"
    record.write_text("{not json")
    assert load_sentence_transformer(str(tiny_st_model), **load).info == info and len(made) == 2
    assert ModelCards(tmp_path).get(info.fingerprint) is not None  # recorded again


def test_a_warm_run_never_loads_the_model(tiny_st_model, tmp_path, monkeypatch):
    tasks = write_tiny_task(tmp_path / "t")
    data = discover((tasks,))["tiny"].load()
    load = {"pooling": None, "device": "cpu", "batch_size": 4, "cache_root": tmp_path / "cache"}
    DenseRetriever(load_sentence_transformer(str(tiny_st_model), **load), tmp_path / "cache").prepare(data)
    made = _counting(monkeypatch)
    warm = DenseRetriever(load_sentence_transformer(str(tiny_st_model), **load), tmp_path / "cache")
    assert warm.prepare(data)["encoded_now"] == 0
    assert made == []


def test_scores_ranked_by_torch_give_the_same_results_file(tiny_st_model, tmp_path, monkeypatch):
    """A --device cuda run scores and ranks in torch (language blocks sliced per setting there); torch on the CPU
    stands in for the GPU: every metric and rank equals the numpy path's."""
    from xbench.evaluation.run import run_task
    from xbench.models import base
    from xbench.results.store import load as load_result
    from xbench.retrieval.exact import torch_scorer

    task = discover((write_tiny_task(tmp_path / "t"),))["tiny"]
    load = {"pooling": None, "device": "cpu", "batch_size": 4, "cache_root": tmp_path / "cache"}

    def run(name: str) -> dict:
        retriever = DenseRetriever(load_sentence_transformer(str(tiny_st_model), **load), tmp_path / "cache")
        outcome = run_task(retriever, task, settings=["mono", "cross", "multi"], output=tmp_path / name,
                           command="test", device="cpu", force=True)
        result = load_result(outcome.path).model_dump(exclude={"run"})
        assert result["slices"]
        return result

    numpy_path = run("numpy")
    calls = []
    monkeypatch.setattr(base, "dense_scorer",
                        lambda q, p, device, pool_t=None: calls.append(1) or torch_scorer(q, p, "cpu"))
    assert run("torch") == numpy_path
    assert calls


@pytest.mark.parametrize("texts, devices, batch_size, chunk", [
    (2048, 8, 64, 256),     # a small task's call over 8 GPUs: one 256-text chunk each (not 26)
    (65536, 8, 64, 512),    # a corpus shard: 8 batches a chunk, 16 chunks per device to balance speeds
    (100, 8, 64, 64),       # fewer texts than a batch per device: one whole batch
    (1000, 2, 32, 256),     # 500 each -> capped at 8 batches of 32
])
def test_pool_chunks_are_whole_batches_that_keep_every_device_busy(texts, devices, batch_size, chunk):
    assert pool_chunk(texts, devices, batch_size) == chunk


def test_a_static_model_is_tokenised_once_per_text(tiny_st_model, tmp_path, monkeypatch):
    """Static embeddings get sentence-transformers' own batching; one probe text tells, so the texts are not
    tokenised a second time for nothing."""
    encoder = load_sentence_transformer(str(tiny_st_model), pooling=None, device="cpu", batch_size=2,
                                        cache_root=tmp_path)
    model = encoder.model
    seen: list[int] = []
    preprocess = model.preprocess
    monkeypatch.setattr(model, "preprocess", lambda texts, **kw: seen.append(len(texts)) or preprocess(texts, **kw))
    tokenize = model.tokenize
    monkeypatch.setattr(model, "tokenize", lambda texts, **kw: seen.append(len(texts)) or tokenize(texts, **kw))
    first = encoder.encode(TEXTS, "doc")
    again = encoder.encode(TEXTS, "doc")
    assert sum(seen) == 1 + 2 * len(TEXTS)  # the probe, then each text once per call
    np.testing.assert_array_equal(first, again)
