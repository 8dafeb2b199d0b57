"""MIRACL-scale benchmark: encode throughput, FAISS build/search, peak memory (prints figures; asserts nothing).

Full MIRACL is millions of passages per language, far beyond the shipped tasks, so this measures the large-corpus
path on a synthetic corpus of N passages and Q queries and puts the figures on paper for 10M passages:

- model encode: the real default model (me5-small) on a sample of passages, in texts/s on this CPU, and the
  hours that makes for N and 10M passages;
- harness encode: all N passages through `xbench.models.cache.encode_cached` with a cheap stand-in encoder (hashed bag
  of words, normalised float32), so cache keys, shards and memory run at full scale without hours of model time;
  cold (empty cache) and warm (every text cached, as a rerun with --force);
- FAISS flat (exact), IVF and HNSW through `xbench.retrieval.ann` (top-100 at the task depth): build and search time,
  and recall@100 of IVF/HNSW against flat on the same queries;
- peak RSS of every phase (VmHWM, reset per phase) against the target: peak <= 1.5 x (float32 matrix + model),
  where "model" is the RSS that loading me5-small adds (weights and the torch runtime).

Passages are seeded and MIRACL-like: one language each, ~100 words (lognormal), words drawn from the Wikipedia
paragraphs of the shipped XQuAD-R and MLQA-R data (languages written with spaces), so texts are unique and
tokenise realistically. A query is 8 words of a source passage plus 2 random words, so it has a true neighbour.

    nice python benchmarks/bench_scale.py --passages 50000 --queries 1000 --model-sample 200   # a quick check
    python benchmarks/bench_scale.py                                                            # 1M x 10k
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import gzip
import itertools
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import numpy as np
import psutil
import scipy.sparse

from xbench.models.builtins import build_me5
from xbench.models.cache import SHARD_TEXTS, EmbeddingStore, encode_cached
from xbench.models.registry import entries, resolve
from xbench.paths import DATA_ROOT, default_cache_root
from xbench.retrieval import ann

DATA = DATA_ROOT  # the shipped evaluation data, inside the package
PAPER_N = 10_000_000  # the extrapolation target: full MIRACL is tens of millions of passages
DEPTH = 100
TARGET = 1.5  # peak RSS at most this times (matrix + model)
GIB = 1 << 30


# ---- memory ---------------------------------------------------------------------------------------------------

def rss() -> int:
    return psutil.Process().memory_info().rss


def peak_rss() -> int:
    """VmHWM (reset by `settle`); ru_maxrss (the process's lifetime peak) where /proc has none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def settle() -> None:
    """Free what the last phase dropped and hand glibc's free heap back, so the next phase starts clean."""
    gc.collect()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


@dataclass
class Phase:
    name: str
    seconds: float
    before: int  # RSS when the phase started
    peak: int
    after: int  # RSS when it ended, with what it keeps
    note: str = ""


class Meter:
    """Seconds and peak RSS per phase."""

    def __init__(self) -> None:
        self.phases: dict[str, Phase] = {}

    @contextmanager
    def phase(self, name: str, note: str = "") -> Iterator[Phase]:
        settle()
        record = Phase(name, 0.0, rss(), 0, 0, note)
        start = perf_counter()
        yield record
        record.seconds = perf_counter() - start
        record.peak = max(peak_rss(), rss())
        gc.collect()
        record.after = rss()
        self.phases[name] = record
        print(f"  {name}: {record.seconds:.1f} s, peak RSS {record.peak / GIB:.2f} GiB", flush=True)


# ---- synthetic corpus -----------------------------------------------------------------------------------------

def word_pools() -> dict[str, np.ndarray]:
    """Every whitespace word of the shipped Wikipedia paragraphs per language (with repeats: drawing uniformly
    from a pool follows that language's own Zipfian word frequencies). zh and th are left out: no spaces."""
    words: dict[str, list[str]] = {}
    for path in sorted((DATA / "xquad-r").glob("*.json.gz")) + sorted((DATA / "mlqa-r").glob("*.json.gz")):
        lang = path.name.split(".")[0]
        if lang in ("zh", "th"):
            continue
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            articles = json.load(fh)["data"]
        words.setdefault(lang, []).extend(w for a in articles for p in a["paragraphs"] for w in p["context"].split())
    return {lang: np.array(ws, dtype=object) for lang, ws in words.items()}


def synthetic_corpus(n: int, q: int, seed: int = 0) -> tuple[list[str], list[str], np.ndarray]:
    """N passages (one language each, lognormal length with mean ~100 words) and Q queries, each made of 8 words
    of a source passage and 2 random words of its language; returns passages, queries, source row per query."""
    pools = word_pools()
    langs = sorted(pools)
    rng = np.random.default_rng(seed)
    lang_of = rng.integers(0, len(langs), n).tolist()
    lengths = np.clip(rng.lognormal(math.log(90), 0.5, n), 10, 400).astype(int).tolist()
    sources = np.sort(rng.choice(n, q, replace=False))
    wanted, source_words = set(sources.tolist()), {}
    passages = []
    for i in range(n):
        pool = pools[langs[lang_of[i]]]
        words = pool[rng.integers(0, len(pool), lengths[i])]
        passages.append(" ".join(words))
        if i in wanted:
            source_words[i] = (words, pool)
    queries = []
    for i in sources.tolist():
        words, pool = source_words[i]
        picked = [*rng.choice(words, min(8, len(words)), replace=False), *pool[rng.integers(0, len(pool), 2)]]
        queries.append(" ".join(picked))
    return passages, queries, sources


# ---- encoders -------------------------------------------------------------------------------------------------

class Buckets(dict):
    """word -> hash bucket, memoised (crc32: deterministic across processes, unlike `hash`)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def __missing__(self, word: str) -> int:
        self[word] = bucket = zlib.crc32(word.encode()) % self.n
        return bucket


class HashingEncoder:
    """Stand-in for the model on the harness path: sum of a random vector per hashed word, normalised. Cheap
    (the harness, not the model, dominates its time) and passages sharing words are near, so ANN recall means
    something; it is not a model, so recall on it only indicates."""

    def __init__(self, dim: int, buckets: int = 1 << 14, seed: int = 0) -> None:
        self.table = np.random.default_rng(seed).standard_normal((buckets, dim), dtype=np.float32)
        self.buckets = Buckets(buckets)
        self.seconds = 0.0

    def __call__(self, texts: list[str]) -> np.ndarray:
        start = perf_counter()
        rows = [[self.buckets[w] for w in t.split()] for t in texts]
        indptr = np.cumsum([0, *map(len, rows)])
        cols = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(indptr[-1]))
        counts = scipy.sparse.csr_matrix((np.ones(len(cols), np.float32), cols, indptr),
                                         shape=(len(texts), len(self.table)))
        vectors = np.asarray(counts @ self.table, dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        self.seconds += perf_counter() - start
        return vectors


def load_model(cache: Path):
    """me5-small as `xbench run` loads it; the built model is linked from the default cache, never rebuilt."""
    target = entries()["me5-small"].path(cache)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(build_me5(default_cache_root()))
    return resolve("me5-small", cache_root=cache)


def harness_encode(texts: list[str], queries: list[str], encoder: HashingEncoder,
                   cache: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """The DenseRetriever path (`encode_cached` per role) with the stand-in: (queries, docs, texts encoded now)."""
    fingerprint = f"bench-scale-hashing-{encoder.table.shape[1]}"
    q, n_q = encode_cached(queries, encoder, EmbeddingStore(cache, fingerprint, "query"), desc="stand-in queries")
    d, n_d = encode_cached(texts, encoder, EmbeddingStore(cache, fingerprint, "doc"), desc="stand-in passages")
    return q, d, n_q + n_d


# ---- FAISS ----------------------------------------------------------------------------------------------------

def index_bytes(index) -> int:
    """What the FAISS structures hold (vectors, ids, graph links), from their sizes: no serialisation copy."""
    import faiss

    if isinstance(index, faiss.IndexHNSW):
        h = index.hnsw
        return index.ntotal * index.d * 4 + h.neighbors.size() * 4 + h.levels.size() * 4 + h.offsets.size() * 8
    ivf = faiss.extract_index_ivf(index)
    return ivf.invlists.compute_ntotal() * (ivf.code_size + 8) + ivf.nlist * index.d * 4


def run_index(method: str, queries: np.ndarray, docs: np.ndarray, meter: Meter) -> tuple[np.ndarray, dict]:
    """Build (IVF/HNSW; flat scans shard by shard and builds nothing) and search top-100 through xbench.retrieval.ann.

    ann has no public build/search split (`ann.search` builds and searches in one call), so IVF/HNSW use its
    `_index` and `_tie_sorted`, which is exactly what `ann.search` runs."""
    plan = ann.SearchPlan(method=f"faiss-{method}", depth=DEPTH)
    rows = np.arange(len(docs))
    figures: dict = {"build_s": 0.0, "index_bytes": 0}
    if method == "flat":
        with meter.phase(f"{method} search") as p:
            found = ann.search(queries, docs, rows, plan, plan.method)
        figures["search_s"] = p.seconds
        return found, figures
    with meter.phase(f"{method} build") as p:
        index = ann._index(docs, rows, plan, plan.method)
    figures.update(build_s=p.seconds, index_bytes=index_bytes(index))
    with meter.phase(f"{method} search") as p:
        k = min(len(rows), DEPTH + ann.TIE_MARGIN)
        found = ann._tie_sorted(*index.search(queries, k), DEPTH)
    figures["search_s"] = p.seconds
    del index
    return found, figures


def ivf_work(n: int) -> float:
    """IVF build cost in distance computations, as ann builds it: 10 k-means iterations over min(N, 64 nlist)
    training points, then N points assigned to one of nlist = 4 sqrt(N) lists."""
    nlist = max(1, int(4 * math.sqrt(n)))
    return nlist * (10 * min(n, ann.TRAIN_PER_LIST * nlist) + n)


def overlap_at(found: np.ndarray, exact: np.ndarray) -> float:
    """recall@DEPTH of `found` against the exact top DEPTH, per query, averaged."""
    return float(np.mean([len(np.intersect1d(f[f >= 0], e[e >= 0])) / max(1, (e >= 0).sum())
                          for f, e in zip(found, exact)]))


# ---- report ---------------------------------------------------------------------------------------------------

def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def gib(n: float) -> str:
    return f"{n / GIB:.2f}"


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f}" if seconds >= 3600 else f"{seconds / 3600:.3f} ({seconds:.0f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384, help="stand-in vector size (me5-small: 384)")
    parser.add_argument("--model-sample", type=int, default=2_000, help="passages the real model encodes")
    parser.add_argument("--index", default="flat,ivf,hnsw", help="comma list of flat, ivf, hnsw")
    parser.add_argument("--cache-dir", type=Path, help="embedding cache (default: a temp dir, removed at the end)")
    args = parser.parse_args()
    methods = [m for m in args.index.split(",") if m]
    if bad := set(methods) - {"flat", "ivf", "hnsw"}:
        parser.error(f"--index: unknown {sorted(bad)}; use flat, ivf, hnsw")
    if not 0 < args.queries <= args.passages:
        parser.error("--queries must be between 1 and --passages")
    n, q = args.passages, args.queries
    tmp = None if args.cache_dir else tempfile.mkdtemp(prefix="bench-scale-")
    cache = args.cache_dir or Path(tmp)
    shutil.rmtree(cache / "embeddings" / f"bench-scale-hashing-{args.dim}", ignore_errors=True)  # cold means cold
    print(f"bench_scale: {n:,} passages, {q:,} queries, dim {args.dim}, top-{DEPTH}, cache {cache}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    meter = Meter()
    base = rss()
    try:
        with meter.phase("corpus", "synthetic texts held in memory"):
            texts, queries, sources = synthetic_corpus(n, q)
        with meter.phase("model load", "me5-small: weights + torch runtime"):
            retriever = load_model(cache)
        sample = [texts[i] for i in np.random.default_rng(1).choice(n, min(args.model_sample, n), replace=False)]
        tokenizer = getattr(getattr(retriever.encoder, "model", None), "tokenizer", None)
        tokens = tokenizer(sample, truncation=True, max_length=512)["input_ids"] if tokenizer else []
        retriever.encoder.encode(sample[:8], "doc")  # warm-up: first-call costs are not throughput
        with meter.phase("model encode", f"me5-small on {len(sample):,} passages (real model)"):
            retriever.encoder.encode(sample, "doc")
        model_tps = len(sample) / meter.phases["model encode"].seconds
        torch_model = getattr(retriever.encoder, "model", None)
        weights = sum(t.numel() * t.element_size() for t in torch_model.parameters()) if torch_model else 0
        encoder = HashingEncoder(args.dim)
        with meter.phase("harness cold", "encode_cached, empty cache, stand-in encoder"):
            encoded = harness_encode(texts, queries, encoder, cache)[2]  # vectors dropped: the warm run rebuilds them
        cold_encoder_s = encoder.seconds
        with meter.phase("harness warm", "encode_cached, every text cached (a --force rerun)"):
            query_vecs, docs, _ = harness_encode(texts, queries, encoder, cache)
        disk = sum(f.stat().st_size for f in (cache / "embeddings").rglob("*.npz"))
        found, ann_figures = {}, {}
        for method in methods:
            found[method], ann_figures[method] = run_index(method, query_vecs, docs, meter)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    ph = meter.phases
    matrix = n * args.dim * 4
    model = ph["model load"].after - ph["model load"].before
    text_bytes = sys.getsizeof(texts) + sum(map(sys.getsizeof, texts))
    limit = TARGET * (matrix + model)
    scale = PAPER_N / n

    def at_paper(p: Phase) -> int:
        """Peak at PAPER_N: texts and the matrices a phase starts with grow linearly; so does what the phase adds,
        except FAISS work done per shard (bounded at SHARD_SIZE vectors); the index itself grows linearly."""
        method = p.name.split()[0]
        held = text_bytes + ((n + q) * args.dim * 4 if method in ann_figures else 0)
        if p.name == "corpus":  # the word pools are a fixed transient: only the texts grow
            return int(p.peak + text_bytes * (scale - 1))
        growth = p.peak - p.before
        if p.name.startswith("harness"):
            return int(p.before + held * (scale - 1) + growth * scale)
        index = ann_figures[method]["index_bytes"] if p.name.endswith("build") else 0
        per_shard = min(scale, max(1.0, ann.SHARD_SIZE / n))
        return int(p.before + held * (scale - 1) + index * scale + max(0, growth - index) * per_shard)

    print(f"\nMemory: float32 matrix {gib(matrix)} GiB ({n:,} x {args.dim} x 4 B), model {gib(model)} GiB "
          f"(RSS added by loading me5-small; its weights {gib(weights)} GiB), texts {gib(text_bytes)} GiB "
          f"(sys.getsizeof), interpreter + imports {gib(base)} GiB")
    print(f"Target: peak RSS <= {TARGET} x (matrix + model) = {gib(limit)} GiB; '(peak-texts)' leaves out the corpus "
          f"texts, which any harness holds. At small N the fixed part dominates; "
          f"'peak @10M': texts, matrices, harness growth and indexes scaled linearly, FAISS per-shard work kept "
          f"(rough from N below ~200k).")

    def verdict(peak: float, budget: float) -> str:
        return f"{peak / budget:.2f} {'over' if peak > TARGET * budget else 'ok'}"

    rows = []
    for p in ph.values():
        paper = ["-", "-"] if p.name.startswith("model") else [
            gib(at_paper(p)), verdict(at_paper(p), matrix * scale + model)]
        rows.append([p.name, f"{p.seconds:.1f}", gib(p.before), gib(p.peak), gib(p.peak - p.before), gib(p.after),
                     verdict(p.peak, matrix + model), verdict(p.peak - text_bytes, matrix + model), *paper, p.note])
    table(["phase", "s", "RSS before", "peak", "peak-before", "RSS after", "peak/(mat+model)",
           "(peak-texts)/(mat+model)", "peak @10M", "@10M/(mat+model)", "what"], rows)

    total_tokens = sum(map(len, tokens))
    harness_s = ph["harness cold"].seconds - cold_encoder_s
    print(f"\nEncode throughput ({len(sample):,}-passage sample: {total_tokens / len(sample):.0f} model tokens "
          f"and {sum(len(t.split()) for t in sample) / len(sample):.0f} words per passage on average)")
    table(["what", "texts/s", f"hours for {n:,}", f"hours for {PAPER_N:,}"], [
        ["(a) real model: me5-small encode, this CPU", f"{model_tps:.1f}", hours(n / model_tps),
         hours(PAPER_N / model_tps)],
        ["(b) harness cold: encode_cached + stand-in, total", f"{(n + q) / ph['harness cold'].seconds:.0f}",
         hours(ph["harness cold"].seconds), hours(ph["harness cold"].seconds * scale)],
        ["    of which harness only (keys, shards, stack)", f"{(n + q) / harness_s:.0f}", hours(harness_s),
         hours(harness_s * scale)],
        ["(b) harness warm: every text from the cache", f"{(n + q) / ph['harness warm'].seconds:.0f}",
         hours(ph["harness warm"].seconds), hours(ph["harness warm"].seconds * scale)],
    ])
    print(f"    texts encoded in the cold run: {encoded:,} in {math.ceil(n / SHARD_TEXTS) + math.ceil(q / SHARD_TEXTS)}"
          f" shards of {SHARD_TEXTS}; cache on disk {gib(disk)} GiB")

    print(f"\nFAISS top-{DEPTH} through xbench.retrieval.ann ({q:,} queries; nlist 4 sqrt(N), nprobe 32, "
          "HNSW32 efSearch 128; on the stand-in vectors, so recall indicates only)")
    rows = []
    for method, f in ann_figures.items():
        recall = f"{overlap_at(found[method], found['flat']):.3f}" if "flat" in found else "-"
        hit = float(np.mean((found[method] == sources[:, None]).any(axis=1)))
        rows.append([method, f"{f['build_s']:.1f}", f"{f['search_s']:.1f}", f"{q / f['search_s']:.0f}", recall,
                     f"{hit:.3f}", gib(f["index_bytes"]) if f["index_bytes"] else f"scan ({ann.SHARD_SIZE:,}/shard)"])
    table(["index", "build s", "search s", "queries/s", "recall@100 vs flat", "source passage in top 100",
           "index GiB"], rows)

    print(f"\nOn paper for {PAPER_N:,} passages ({q:,} queries; model at the throughput measured above)")
    rows = [["float32 matrix GiB", gib(matrix), gib(matrix * scale), "N"],
            ["texts in memory GiB", gib(text_bytes), gib(text_bytes * scale), "N"],
            ["embedding cache on disk GiB", gib(disk), gib(disk * scale), "N"],
            ["model encode hours (me5-small, this CPU)", hours(n / model_tps), hours(PAPER_N / model_tps), "N"],
            ["harness cold hours (stand-in encoder)", hours(ph["harness cold"].seconds),
             hours(ph["harness cold"].seconds * scale), "N"]]
    growth = {"flat": (scale, "N"), "ivf": (math.sqrt(scale), "sqrt N (nlist ~ sqrt N)"),
              "hnsw": (math.log(PAPER_N) / math.log(n), "log N")}
    build = {"ivf": (ivf_work(PAPER_N) / ivf_work(n), "k-means + N x nlist"),
             "hnsw": (scale * math.log(PAPER_N) / math.log(n), "N log N")}
    for method, f in ann_figures.items():
        if method in build:
            rows.append([f"{method} build s", f"{f['build_s']:.1f}", f"{f['build_s'] * build[method][0]:.0f}",
                         build[method][1]])
            rows.append([f"{method} index GiB", gib(f["index_bytes"]), gib(f["index_bytes"] * scale), "N"])
        rows.append([f"{method} search s", f"{f['search_s']:.1f}", f"{f['search_s'] * growth[method][0]:.1f}",
                     growth[method][1]])
    worst = max((p for p in ph.values() if not p.name.startswith("model")), key=at_paper)
    rows.append([f"peak RSS GiB ({worst.name})", gib(worst.peak), gib(at_paper(worst)), "see the memory table"])
    rows.append([f"target {TARGET} x (matrix + model) GiB", gib(limit), gib(TARGET * (matrix * scale + model)), "N"])
    table(["quantity", f"measured at {n:,}", f"at {PAPER_N:,}", "scales as"], rows)


if __name__ == "__main__":
    main()
