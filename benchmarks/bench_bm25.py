"""BM25 at corpus scale: tokenising and streamed on-disk indexing throughput, peak memory, index size (prints
figures; asserts nothing).

The corpus is bench_scale's synthetic MIRACL-like one: N seeded passages of ~100 words (lognormal), one language
each, words drawn from the Wikipedia paragraphs of the shipped XQuAD-R and MLQA-R data. It is generated up front
and held by the benchmark (its RSS is the baseline each phase's peak is shown against), then fed to the index in
chunks, as a corpus reader would. Each phase starts with an empty word memo (see xbench.models.bm25._Pieces).
Memory is sampled every 20 ms from /proc/self/status: RssAnon (the process's own heap) and VmHWM (its peak RSS,
which also counts pages of the memory-mapped index files while they are mapped).

    nice -n 10 python benchmarks/bench_bm25.py --passages 200000
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter, process_time

import numpy as np
from bench_scale import settle, synthetic_corpus

from xbench.models import bm25

MIB = 1 << 20


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@dataclass
class Usage:
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    base_anon: int = 0  # KiB when the phase started
    peak_anon: int = 0
    peak_hwm: int = 0


@contextmanager
def measured() -> Iterator[Usage]:
    """Wall and CPU seconds, and peak RssAnon / VmHWM sampled by a thread while the block runs."""
    settle()  # resets VmHWM to the current RSS
    usage, done = Usage(base_anon=status_kib("RssAnon")), threading.Event()

    def sample() -> None:
        while True:
            usage.peak_anon = max(usage.peak_anon, status_kib("RssAnon"))
            usage.peak_hwm = max(usage.peak_hwm, status_kib("VmHWM"))
            if done.wait(0.02):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start, cpu = perf_counter(), process_time()
    try:
        yield usage
    finally:
        usage.seconds, usage.cpu_seconds = perf_counter() - start, process_time() - cpu
        done.set()
        sampler.join()


def report(name: str, n: int, usage: Usage) -> None:
    print(f"{name}: {n / usage.seconds:,.0f} passages/s ({usage.seconds:.1f} s wall, {n / usage.cpu_seconds:,.0f} "
          f"passages per CPU-second); peak RssAnon {usage.peak_anon / 1024:,.0f} MiB "
          f"(+{(usage.peak_anon - usage.base_anon) / 1024:,.0f} over the phase's start), "
          f"peak VmHWM {usage.peak_hwm / 1024:,.0f} MiB", flush=True)


def fresh_memo() -> None:
    bm25._pieces.cache_clear()
    bm25._pieces()  # loads the tokenizer outside the timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=65_536, help="texts per chunk fed to build_index")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None, help="where the index is built (default: a temp folder)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start", flush=True)

    start = perf_counter()
    corpus, queries, _ = synthetic_corpus(args.passages, args.queries, args.seed)
    words = sum(t.count(" ") + 1 for t in corpus) / len(corpus)
    print(f"corpus: {len(corpus):,} passages, {words:.0f} words each on average ({perf_counter() - start:.0f} s to "
          f"generate); RssAnon {status_kib('RssAnon') / 1024:,.0f} MiB with it held", flush=True)

    def chunks() -> Iterator[list[str]]:
        return (corpus[i:i + args.chunk] for i in range(0, len(corpus), args.chunk))

    fresh_memo()
    with measured() as usage:
        tokens = sum(int(bm25.tokenize_ids(chunk)[1][-1]) for chunk in chunks())
    report("tokenise", len(corpus), usage)
    print(f"  {tokens / len(corpus):.0f} tokens per passage; {len(bm25._pieces().after):,} words memoised")

    root = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        fresh_memo()
        dest = root / "index"
        with measured() as usage:
            bm25.build_index(chunks(), dest, total=len(corpus))
        report("tokenise + index", len(corpus), usage)
        sizes = {p.name: p.stat().st_size for p in dest.iterdir()}
        nnz = sizes[bm25.DATA] // 4
        print(f"  index on disk: {sum(sizes.values()) / MIB:,.0f} MiB ({sum(sizes.values()) / len(corpus):,.0f} "
              f"bytes per passage), {nnz:,} (passage, term) pairs, {nnz / len(corpus):.0f} per passage")

        index = bm25.DiskBM25(dest)
        with measured() as usage:
            top = [int(np.argmax(scores)) for scores in index.scores(queries)]
        print(f"query (memory-mapped, full score vector): {usage.seconds / len(queries) * 1000:.1f} ms per query; "
              f"{len(top)} queries")
    finally:
        shutil.rmtree(root)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)


if __name__ == "__main__":
    main()
