"""Shared frozen prefix (xbench/models/prefix.py): the rewired model gives the plain model's vectors, every
prefix state is computed once across models that share the frozen layers, and a changed prefix is not reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from xbench.models.prefix import PrefixStore, share_prefix
from xbench.training.tiny import build_tiny

TEXTS = ["the cat sat on the mat", "a dog", "where is the cat?", "dogs and cats and a long tail of words here",
         "the mat", "a"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("prefix"), TEXTS * 3, seed=0)


def load(path: Path, perturb: str | None = None, seed: int = 1):
    """The tiny model; `perturb` = a parameter name prefix to add noise to (a fine-tuned part)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model[0].auto_model.named_parameters():
            if perturb and name.startswith(perturb):
                param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    return model


def encode(model, texts: list[str], batch_size: int = 4) -> np.ndarray:
    return model.encode(texts, batch_size=batch_size, convert_to_numpy=True, prompt="query: ")


def test_rewired_models_match_the_plain_path_and_share_states(tiny_bert: Path) -> None:
    store = PrefixStore()
    base, tuned = load(tiny_bert), load(tiny_bert, perturb="encoder.layer.1.")  # layer 0 + embeddings frozen
    want_base, want_tuned = encode(load(tiny_bert), TEXTS), encode(load(tiny_bert, perturb="encoder.layer.1."), TEXTS)
    assert not np.allclose(want_base, want_tuned, atol=1e-3)  # the tuned top layer matters
    assert share_prefix(base, 1, store) and share_prefix(tuned, 1, store)
    np.testing.assert_allclose(encode(base, TEXTS), want_base, atol=1e-5)
    assert len(store.states) == len(TEXTS)  # one entry per distinct token sequence
    np.testing.assert_allclose(encode(tuned, TEXTS[::-1], batch_size=3)[::-1], want_tuned, atol=1e-5)
    assert len(store.states) == len(TEXTS)  # the tuned model computed no prefix state of its own
    assert len(tuned[0].auto_model.encoder.layer) == 1


def test_a_different_prefix_is_computed_anew(tiny_bert: Path) -> None:
    store = PrefixStore()
    want = encode(load(tiny_bert, perturb="encoder.layer.0."), TEXTS)
    base, other = load(tiny_bert), load(tiny_bert, perturb="encoder.layer.0.")
    assert share_prefix(base, 1, store) and share_prefix(other, 1, store)
    encode(base, TEXTS)
    np.testing.assert_allclose(encode(other, TEXTS), want, atol=1e-5)
    assert len(store.states) == 2 * len(TEXTS)  # two prefixes, keyed apart by their weights


def test_out_of_range_or_non_bert_models_are_left_alone(tiny_bert: Path, tiny_st_model: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = load(tiny_bert)
    assert not share_prefix(model, 3, PrefixStore()) and len(model[0].auto_model.encoder.layer) == 2
    assert not share_prefix(model, 0, PrefixStore())
    assert not share_prefix(SentenceTransformer(str(tiny_st_model), device="cpu"), 1, PrefixStore())
