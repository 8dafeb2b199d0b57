"""BM25 lexical baseline (bm25s), over lowercased XLM-R SentencePiece tokens so that every script, CJK and
Thai included, is split into comparable units. One index per candidate pool (IDF is the pool's own)."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import metadata
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer

from xbench.models.base import ModelInfo
from xbench.models.me5 import xlmr_tokenizer_json
from xbench.retrieval.exact import ScoreFn
from xbench.tasks.taskdata import TaskData

if TYPE_CHECKING:
    import bm25s

K1, B = 0.9, 0.4  # pyserini's defaults, so lexical numbers line up with its reproduction tables


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(xlmr_tokenizer_json()))


def tokenize(texts: list[str]) -> list[list[str]]:
    encoded = _tokenizer().encode_batch([t.lower() for t in texts], add_special_tokens=False)
    return [[tok for tok in e.tokens if tok != "\u2581"] for e in encoded]


class BM25Retriever:
    def __init__(self) -> None:
        card = {"k1": K1, "b": B, "method": "lucene", "tokens": "lowercased XLM-R SentencePiece pieces",
                "bm25s": metadata.version("bm25s")}
        fingerprint = hashlib.sha256(json.dumps(card, sort_keys=True).encode()).hexdigest()[:32]
        self.info = ModelInfo(name="bm25", kind="lexical", fingerprint=fingerprint, card=card)
        self._q: list[list[str]] = []
        self._d: list[list[str]] = []
        self._indexes: dict[bytes, bm25s.BM25] = {}

    def prepare(self, data: TaskData) -> dict[str, int]:
        self._q = tokenize(data.queries["text"].tolist())
        self._d = tokenize(data.candidates["text"].tolist())
        self._indexes.clear()
        n = len(self._q) + len(self._d)
        return {"texts": n, "unique_texts": n, "encoded_now": 0}

    def scorer(self, query_rows: np.ndarray, cand_rows: np.ndarray) -> ScoreFn:
        import bm25s  # lazy: only when a BM25 index is built

        key = hashlib.sha1(np.ascontiguousarray(cand_rows).tobytes()).digest()
        if key not in self._indexes:
            index = bm25s.BM25(k1=K1, b=B, method="lucene")
            index.index([self._d[i] for i in cand_rows], show_progress=False)
            self._indexes[key] = index
        index = self._indexes[key]
        queries = [self._q[i] for i in query_rows]
        return lambda rows: np.stack([index.get_scores(queries[r]) for r in rows]).astype(np.float32)
