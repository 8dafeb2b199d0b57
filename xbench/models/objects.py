"""Encoders handed over as Python objects (`xbench.evaluate(model)`): a loaded SentenceTransformer, or anything
with an `encode(texts)` method that returns one vector per text.

An object has no folder to hash, so its fingerprint (the embedding cache key) is behavioural: the vectors it gives
a fixed set of probe texts in several scripts, rounded so float noise does not change it. Other weights give other
vectors, hence another key; the same weights reloaded tomorrow reuse the cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from xbench.errors import XbenchError
from xbench.models.base import Encoder, ModelInfo, Role
from xbench.models.st import SentenceTransformerEncoder

PROBE = ["xbench fingerprint probe: a short English sentence.", "Ein kurzer deutscher Satz über das Wetter.",
         "这是一个用于识别模型的中文句子。", "جملة عربية قصيرة للتعرف على النموذج.", "Ορισμένες λέξεις στα ελληνικά."]
ROLES: tuple[Role, ...] = ("query", "doc")


def behaviour_fingerprint(kind: str, encode: Callable[[list[str], Role], np.ndarray]) -> str:
    """A cache key from what the model does: its probe vectors per role, rounded to 4 decimals."""
    digest = hashlib.sha256(kind.encode())
    for role in ROLES:
        vectors = np.asarray(encode(PROBE, role), dtype=np.float32)
        digest.update(role.encode())
        digest.update(np.round(vectors, 4).astype("<f4").tobytes())
    return digest.hexdigest()[:32]


class ObjectEncoder:
    """Any object with `encode(texts)`: vectors are used as given (scored by dot product), for both roles."""

    def __init__(self, model: Any, name: str | None) -> None:
        self.model = model
        kind = f"{type(model).__module__}.{type(model).__qualname__}"
        fingerprint = behaviour_fingerprint(kind, self.encode)
        self.info = ModelInfo(name=name or f"{type(model).__name__}-{fingerprint[:8]}", kind="object",
                              fingerprint=fingerprint,
                              card={"source": f"{kind} (Python object; fingerprint from probe vectors)"})

    def encode(self, texts: list[str], role: Role) -> np.ndarray:
        vectors = np.asarray(self.model.encode(texts), dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise XbenchError(f"{type(self.model).__name__}.encode returned shape {vectors.shape} for {len(texts)} "
                              "texts; it must return one vector per text (a 2-d array).")
        return vectors


def from_object(model: Any, name: str | None = None, batch_size: int = 64) -> Encoder:
    """The encoder for a Python object: a SentenceTransformer keeps its prompts and batching, anything else with
    an `encode` method is used as is; other objects are an error that says what is accepted."""
    if type(model).__module__.startswith("sentence_transformers"):
        probe = SentenceTransformerEncoder(model, ModelInfo("probe", "sentence-transformers", ""), batch_size)
        fingerprint = behaviour_fingerprint("sentence-transformers", probe.encode)
        info = ModelInfo(name=name or f"sentence-transformer-{fingerprint[:8]}", kind="sentence-transformers",
                         fingerprint=fingerprint,
                         card={"source": "SentenceTransformer object (fingerprint from probe vectors)",
                               "prompts": dict(getattr(model, "prompts", {}) or {}),
                               "max_seq_length": getattr(model, "max_seq_length", None)})
        return SentenceTransformerEncoder(model, info, batch_size)
    if callable(getattr(model, "encode", None)):
        return ObjectEncoder(model, name)
    raise XbenchError(f"model: a {type(model).__name__} object has no `encode` method. Pass a built-in name, a model "
                      "folder, a SentenceTransformer, or any object whose encode(texts) returns one vector per text.")
