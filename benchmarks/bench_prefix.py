"""Shared frozen prefix benchmark (prints figures; asserts nothing): how much of an evaluation's encoding time a
training grid saves when its models share the base's embeddings and lowest k layers (xbench/models/prefix.py).

For each k: the plain model's time on N candidate sentences, the first rewired model's (which computes and stores
the prefix states), a second rewired model's (which only runs the top layers), and the largest difference between
its vectors and the plain ones.

    python benchmarks/bench_prefix.py --task xquad-r --language de --texts 400 --layers 6,9
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from xbench.models.builtins import build_me5
from xbench.models.prefix import PrefixStore, share_prefix
from xbench.paths import default_cache_root
from xbench.tasks.registry import discover, with_languages


def timed(model, texts: list[str]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    vectors = model.encode(texts, prompt_name="document", batch_size=64, convert_to_numpy=True)
    return time.perf_counter() - start, vectors


def main() -> None:
    from sentence_transformers import SentenceTransformer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="xquad-r")
    parser.add_argument("--language", default="de")
    parser.add_argument("--texts", type=int, default=400, help="candidate sentences to encode")
    parser.add_argument("--layers", default="6,9", help="comma-separated k: layers shared (of me5-small's 12)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = str(build_me5(default_cache_root()))
    texts = list(with_languages(discover()[args.task], [args.language]).load().candidates["text"])[: args.texts]
    plain_s, want = timed(SentenceTransformer(path, device="cpu"), texts)
    print(f"me5-small, {len(texts)} {args.task} {args.language} candidates, {args.threads} thread(s): "
          f"plain {plain_s:.1f} s")
    print(f"{'k':>3s} {'fill s':>8s} {'reuse s':>8s} {'reuse/plain':>12s} {'max |diff|':>11s}")
    for k in (int(x) for x in args.layers.split(",")):
        store = PrefixStore()
        first = SentenceTransformer(path, device="cpu")
        share_prefix(first, k, store)
        fill_s, _ = timed(first, texts)
        second = SentenceTransformer(path, device="cpu")
        share_prefix(second, k, store)
        reuse_s, got = timed(second, texts)
        print(f"{k:3d} {fill_s:8.1f} {reuse_s:8.1f} {reuse_s / plain_s:12.2f} {np.abs(got - want).max():11.2e}")


if __name__ == "__main__":
    main()
