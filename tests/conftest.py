"""Shared fixtures: a tiny LAReQA-format task made here, and a tiny real sentence-transformers model."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

# Three languages, two articles; "q1" exists everywhere, "q2" only in en and de (MLQA-style partial parallelism).
TINY = {
    "en": [("Sport", [("Cats sleep a lot. Dogs bark loudly at night.", [("q1", "Who barks at night?", 18)])]),
           ("Space", [("The moon orbits the earth. Mars is red.", [("q2", "Which planet is red?", 27)])])],
    "de": [("Sport", [("Katzen schlafen viel. Hunde bellen nachts laut.", [("q1", "Wer bellt nachts?", 22)])]),
           ("Space", [("Der Mond umkreist die Erde. Der Mars ist rot.", [("q2", "Welcher Planet ist rot?", 28)])])],
    "fr": [("Sport", [("Les chats dorment. Les chiens aboient la nuit.", [("q1", "Qui aboie la nuit?", 19)])])],
}


def _sentences(context: str) -> tuple[list[str], list[list[int]]]:
    sentences, breaks, start = [], [], 0
    for part in context.split(". "):
        text = part if part.endswith(".") else part + "."
        end = start + len(text)
        sentences.append(text)
        breaks.append([start, end])
        start = end + 1
    return sentences, breaks


def write_tiny_task(root: Path, languages: list[str] | None = None) -> Path:
    """Write data + manifest + spec for a 3-language task named `tiny`; returns the tasks folder."""
    data = root / "data" / "tiny"
    data.mkdir(parents=True)
    languages = languages or list(TINY)
    for lang in languages:
        articles = []
        for title, paragraphs in TINY[lang]:
            paras = []
            for context, qas in paragraphs:
                sentences, breaks = _sentences(context)
                paras.append({"context": context, "sentences": sentences, "sentence_breaks": breaks,
                              "qas": [{"id": i, "question": q, "answers": [{"answer_start": a, "text": ""}]}
                                      for i, q, a in qas]})
            articles.append({"title": title, "paragraphs": paras})
        (data / f"{lang}.json.gz").write_bytes(gzip.compress(json.dumps({"data": articles}).encode(), mtime=0))
    manifest = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                       for p in sorted(data.glob("*.json.gz")))
    (data / "SHA256SUMS").write_text(manifest)
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "tiny.yaml").write_text(
        "tasks:\n"
        "  - name: tiny\n    version: '1'\n    family: test\n    description: tiny LAReQA-format task\n"
        "    loader: lareqa\n    source: {dir: ../data/tiny}\n    license: CC0\n"
        f"    languages: [{', '.join(languages)}]\n"
    )
    return tasks


@pytest.fixture()
def tiny_tasks(tmp_path: Path) -> Path:
    return write_tiny_task(tmp_path)


@pytest.fixture(scope="session")
def tiny_st_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real sentence-transformers model: a WordPiece tokenizer trained here + a seeded StaticEmbedding."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    corpus = [context + " " + q for lang in TINY.values() for _, paras in lang for context, qas in paras
              for _, q, _ in qas]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[UNK]", "[PAD]"]))
    weights = np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), 16)).astype(np.float32)
    model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights)])
    path = tmp_path_factory.mktemp("tiny-st") / "tiny-st"
    model.save(str(path))
    return path
