"""Scoring on a GPU against the CPU path: the same ranks on XQuAD-R with me5-small embeddings (prints; asserts
nothing). Needs a CUDA device.

me5-small encodes XQuAD-R on the GPU (token-budget batches) through the embedding cache, then every mono, cross and
multi slice is ranked twice: by the CPU path (`DenseRetriever`'s numpy scores, `rank_pool`'s numpy ranking) and by
the GPU path (`torch_scorer` on cuda: matrix products, the stable sort and the top k on the device). It prints how
many relevant ranks and top-10 lists differ, the largest score difference, and the seconds of each.

A few differences are possible and are not a bug: cuBLAS and the CPU's BLAS add a dot product's terms in another
order, so two candidates tied to the last bit on one side can be a bit apart on the other.

    python benchmarks/gpu_check.py                       # XQuAD-R, all languages
    python benchmarks/gpu_check.py --languages de,en,zh  # quicker
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from xbench.evaluation.kernel import run_slice
from xbench.models.base import DenseRetriever
from xbench.models.registry import resolve
from xbench.paths import default_cache_root
from xbench.retrieval.exact import ScoreFn, dense_scorer, torch_scorer
from xbench.tasks.registry import discover, on_languages, select
from xbench.tasks.settings import slices
from xbench.tasks.taskdata import TaskData


class Scores:
    """The retriever's embeddings scored by one function: `dense_scorer` (numpy, the CPU path) or `torch_scorer` on
    a device (`--device cpu` runs the torch path on the CPU: a check of the script without a GPU)."""

    def __init__(self, dense: DenseRetriever, device: str | None) -> None:
        self.info, self.device = dense.info, device
        self.queries, self.cands = dense.embeddings()

    def prepare(self, data: TaskData) -> dict[str, int]:
        return {}  # the embeddings are the retriever's, prepared already

    def scorer(self, query_rows: np.ndarray, cand_rows: np.ndarray) -> ScoreFn:
        if self.device is None:
            return dense_scorer(self.queries[query_rows], self.cands[cand_rows])
        return torch_scorer(self.queries[query_rows], self.cands[cand_rows], self.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--languages", default="")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--cache", type=Path, default=default_cache_root())
    args = parser.parse_args()
    languages = [x for x in args.languages.split(",") if x]
    task = on_languages(select(discover(), "xquad-r"), languages)[0]
    data = task.load()

    start = time.perf_counter()
    dense = resolve("me5-small", cache_root=args.cache, device=args.device, batch_size=args.batch_size)
    assert isinstance(dense, DenseRetriever)
    counts = dense.prepare(data)
    print(f"me5-small on {args.device}: {counts['encoded_now']} texts encoded, {counts['unique_texts']} unique, "
          f"{time.perf_counter() - start:.1f} s with the model load")
    torch.ones(8, device=args.device) @ torch.ones(8, device=args.device)  # CUDA context and cuBLAS, once
    device = f"torch {args.device}"
    ways = {"numpy": Scores(dense, None), device: Scores(dense, args.device)}
    seconds = dict.fromkeys(ways, 0.0)
    ranks_differ = tops_differ = ranks_total = 0
    for sl in slices(data, task.spec, ["mono", "cross", "multi"]):
        results = {}
        for name, way in ways.items():
            start = time.perf_counter()
            results[name] = run_slice(way, data, sl, task.spec.metrics)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds[name] += time.perf_counter() - start
        cpu, dev = results["numpy"].per_query, results[device].per_query
        ranks_differ += sum(a != b for x, y in zip(cpu.ranks, dev.ranks) for a, b in zip(x, y))
        ranks_total += sum(map(len, cpu.ranks))
        tops_differ += sum(a != b for a, b in zip(cpu.top_langs or [], dev.top_langs or []))
    q, c = dense.embeddings()
    block = q[:1000]
    gpu = (torch.from_numpy(block).to(args.device) @ torch.from_numpy(c).to(args.device).T).cpu().numpy()
    print(f"XQuAD-R ({', '.join(task.spec.languages)}), every mono, cross and multi slice:")
    print(f"  relevant ranks differing: {ranks_differ} of {ranks_total}; multi top-10 language lists differing: "
          f"{tops_differ}; max |score cpu - score {args.device}| on 1000 queries: "
          f"{np.abs(block @ c.T - gpu).max():.2e}")
    for name, s in seconds.items():
        print(f"  {name:10s} scoring + ranking + metrics: {s:7.2f} s")


if __name__ == "__main__":
    main()
