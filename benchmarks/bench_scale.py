"""MIRACL-scale benchmark of the whole `xbench run` path (prints figures; asserts nothing).

A synthetic MIRACL-like language is written as a corpus in xbench's Parquet format (`<work>/<N>/sw/`, with BEIR
`queries.jsonl` and `qrels/dev.tsv` beside it) and run through `python -m xbench run` as a user would, with
`--data-dir`: loading, the corpus fingerprint, the vector shards or the BM25 index on disk, the streamed search
and the metrics. Each run is a child process whose memory is sampled every 0.1 s: the peak of `RssAnon` (heap,
the figure that must stay flat as the corpus grows) beside the peak `VmHWM` (which also counts the page cache of
memory-mapped shards, given back under pressure).

Models: a seeded 384-d static model (sentence-transformers StaticEmbedding over the vendored XLM-R tokenizer,
written to `<work>/static-384`: a real model folder that Ray workers load too, and cheap, so the harness and not
the model is measured) for the dense path, and bm25 for the lexical one. Phases per model:
- `cold`: empty cache; with `--kill-at F` the run is killed (SIGKILL) once F of the corpus is encoded (dense) or
  indexed (bm25), then `resume` reruns the same command;
- `warm`: `--force` on the filled cache: reads the shards (or index) once and searches, nothing encoded;
Columns: wall (the child process, imports included), in-run (the language's load + encode/index + search
timings from the results file), encoder (the model's own time inside it), search (the streamed search alone), and
harness passages/s = passages / (load + encode/index - encoder): loading, fingerprint, shard or index writing.

    python benchmarks/bench_scale.py --passages 200000 --models static,bm25 --kill-at 0.5      # a quick check
    python benchmarks/bench_scale.py --passages 1000000 --passages 5000000 --kill-at 0.5      # the issue's runs
    python benchmarks/bench_scale.py --passages 1000000 --models static --ray 127.0.0.1:6379  # a running Ray cluster
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from xbench.paths import DATA_ROOT
from xbench.results.store import load

GIB = 1 << 30
LANG = "sw"  # a MIRACL language label for the synthetic pool (the words are German Wikipedia's)
WORDS_FROM = "de"
SPEC = """tasks:
  - name: synth
    version: "1.0"
    family: miracl
    description: synthetic MIRACL-like corpus for benchmarks/bench_scale.py
    loader: miracl
    source: {{dir: {data}}}
    license: synthetic
    languages: [{lang}]
    settings: [mono]
    query_template: "{{text}}"
    doc_template: "{{title}} {{text}}"
    main_metric: mono.ndcg@10
    metrics: [ndcg@10, recall@100, map, mrr]
    options: {{variant: full, depth: 100, search: exact}}
    split: dev
"""


def word_pool() -> np.ndarray:
    """Every whitespace word of the shipped German Wikipedia paragraphs (repeats kept: Zipfian draws)."""
    words: list[str] = []
    for task in ("xquad-r", "mlqa-r"):
        path = DATA_ROOT / task / f"{WORDS_FROM}.json.gz"
        if path.is_file():
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                words += [w for a in json.load(fh)["data"] for p in a["paragraphs"] for w in p["context"].split()]
    return np.array(words, dtype=object)


def write_corpus(folder: Path, n: int, queries: int, seed: int = 0) -> None:
    """N passages (~100 words, lognormal lengths) as Parquet through xbench's converter, and Q queries each made
    of 8 words of one passage (its one relevant passage) and 2 random words."""
    import pyarrow as pa

    from xbench.tasks.corpus import convert_batches

    if (folder / LANG / "corpus.json").is_file():
        return
    pool, rng = word_pool(), np.random.default_rng(seed)
    sources = np.sort(rng.choice(n, queries, replace=False))
    picked: dict[int, str] = {}

    def batches(size: int = 65_536) -> Iterator[pa.RecordBatch]:
        for start in range(0, n, size):
            stop = min(n, start + size)
            lengths = np.clip(rng.lognormal(math.log(95), 0.4, stop - start), 10, 400).astype(int)
            words = pool[rng.integers(0, len(pool), int(lengths.sum()))]
            cuts = np.cumsum(lengths)[:-1]
            texts = [" ".join(w) for w in np.split(words, cuts)]
            for row in sources[(sources >= start) & (sources < stop)].tolist():
                mine = texts[row - start].split()
                query = [*rng.choice(mine, min(8, len(mine)), replace=False), *pool[rng.integers(0, len(pool), 2)]]
                picked[row] = " ".join(query)
            yield pa.record_batch({"docid": [f"d{i}" for i in range(start, stop)],
                                   "title": [f"Title {i % 997}" for i in range(start, stop)], "text": texts})

    target = folder / LANG
    convert_batches(batches(), target, source=f"synthetic, seed {seed}", total=n)
    (target / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{r}", "text": picked[r]}) + "\n"
                                                  for r in sources.tolist()))
    (target / "qrels").mkdir(exist_ok=True)
    (target / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                              + "".join(f"q{r}\td{r}\t1\n" for r in sources.tolist()))


def static_model(path: Path, dim: int = 384) -> Path:
    """A seeded static embedding model over the vendored XLM-R tokenizer, saved as a sentence-transformers folder."""
    if path.is_dir():
        return path
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer

    from xbench.models.me5 import xlmr_tokenizer_json

    tokenizer = Tokenizer.from_file(str(xlmr_tokenizer_json()))
    weights = np.random.default_rng(0).standard_normal((tokenizer.get_vocab_size(), dim)).astype(np.float32)
    SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights)]).save(str(path))
    return path


class Sampler:
    """Peak RssAnon and VmHWM over a process and its children, sampled from /proc every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every = pid, every
        self.rss_anon = self.hwm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        import psutil

        try:
            root = psutil.Process(self.pid)
            return [root.pid, *(c.pid for c in root.children(recursive=True))]
        except psutil.Error:
            return []

    def _loop(self) -> None:
        while not self._stop.is_set():
            anon = hwm = 0
            for pid in self._tree():
                try:
                    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                                  if ":" in line)
                except OSError:
                    continue
                anon += int(fields.get("RssAnon", "0 kB").split()[0]) * 1024
                hwm += int(fields.get("VmHWM", "0 kB").split()[0]) * 1024
            self.rss_anon, self.hwm = max(self.rss_anon, anon), max(self.hwm, hwm)
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def progress(cache: Path, n: int) -> float:
    """Share of the corpus done: vector rows in shard files (dense), or chunks spilled by the BM25 build."""
    from xbench.models.bm25 import CHUNK

    rows = 0
    for path in cache.glob("vectors/*/*/rows-*.npy"):
        start, stop = path.stem.split("-")[1:3]
        rows += int(stop) - int(start)
    spilled = len(list(cache.glob("bm25/*/.*.tmp/spill/*")))
    return max(rows, spilled * CHUNK) / n


def run(args: list[str], kill_at: float | None, cache: Path, n: int) -> dict:
    """One `xbench run` in a child process: wall seconds, memory peaks, and whether it was killed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "xbench", "run", *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(child.pid)
    killed = False
    while child.poll() is None:
        if kill_at is not None and progress(cache, n) >= kill_at:
            child.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.5)
    out = child.communicate()[0]
    sampler.stop()
    if child.returncode not in (0, -9) and not killed:
        print(out[-3000:])
        raise SystemExit(f"xbench run failed ({child.returncode})")
    return {"wall": time.perf_counter() - start, "rss_anon": sampler.rss_anon, "hwm": sampler.hwm,
            "killed": killed, "out": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, action="append", help="corpus size (repeatable)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--models", default="static,bm25")
    parser.add_argument("--kill-at", type=float, default=None, help="kill the cold run at this share, then resume")
    parser.add_argument("--ray", default=None, help="a Ray address (e.g. 127.0.0.1:6379) for the dense runs")
    parser.add_argument("--work", type=Path, default=Path("/tmp/xbench-scale"))
    parser.add_argument("--keep", action="store_true", help="keep corpora, caches and outputs")
    a = parser.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    tasks = a.work / "tasks"
    tasks.mkdir(exist_ok=True)
    (tasks / "synth.yaml").write_text(SPEC.format(data=DATA_ROOT / "miracl", lang=LANG))
    rows = []
    for n in a.passages or [200_000]:
        corpus = a.work / f"corpus-{n}"
        t0 = time.perf_counter()
        write_corpus(corpus, n, a.queries)
        print(f"corpus of {n:,} passages ready in {time.perf_counter() - t0:.0f} s: {corpus}", flush=True)
        for model in a.models.split(","):
            name = str(static_model(a.work / "static-384")) if model == "static" else model
            cache, out = a.work / f"cache-{n}-{model}", a.work / f"out-{n}-{model}"
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            base = ["--model", name, "--tasks", "synth", "--tasks-dir", str(tasks), "--data-dir",
                    f"synth={corpus}", "--output", str(out), "--cache-dir", str(cache)]
            ray = bool(a.ray) and model != "bm25"  # Ray actors report no encoder time: no harness rate then
            if ray:
                base += ["--ray", a.ray, "--ray-actors", "2"]
            phases = [("cold", base, a.kill_at)]
            if a.kill_at is not None:
                phases.append(("resume", base, None))
            phases.append(("warm", [*base, "--force"], None))
            for phase, args, kill in phases:
                got = run(args, kill, cache, n)
                timings: dict[str, float] = {}
                files = list(out.glob("*/synth.json"))
                if files and not got["killed"]:
                    result = load(files[0])
                    timings = result.run.timings
                    score = result.main_score
                else:
                    score = None
                encoder = timings.get("encoder_s", 0.0)
                work = timings.get("load_s", 0.0) + timings.get("encode_s", timings.get("index_s", 0.0)) - encoder
                rows.append([f"{n:,}", model, phase + (" (killed)" if got["killed"] else ""), f"{got['wall']:.1f}",
                             f"{sum(v for k, v in timings.items() if k != 'encoder_s'):.1f}",
                             f"{encoder:.1f}", f"{timings.get('search_s', float('nan')):.1f}",
                             f"{got['rss_anon'] / GIB:.2f}", f"{got['hwm'] / GIB:.2f}",
                             f"{n / work:,.0f}" if work > 0 and not ray else "-",
                             f"{score:.4f}" if score is not None else "-"])
                print(" | ".join(rows[-1]), flush=True)
            if not a.keep:
                shutil.rmtree(cache, ignore_errors=True)
    header = ["passages", "model", "phase", "wall s", "in-run s", "encoder s", "search s", "RssAnon GiB",
              "VmHWM GiB", "harness passages/s", "nDCG@10"]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
