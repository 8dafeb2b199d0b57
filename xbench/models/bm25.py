"""BM25 lexical baseline (bm25s, k1=0.9 b=0.4, "lucene"), over lowercased XLM-R SentencePiece tokens so that every
script, CJK and Thai included, is split into comparable units.

Two forms with the same scores. `BM25Retriever` builds one in-memory bm25s index per candidate pool (IDF is the
pool's own): the shipped tasks. `build_index` streams a whole corpus (MIRACL: up to 33M passages a language) into
bm25s's on-disk format from integer token ids, never holding the corpus's tokens; `DiskBM25` loads it memory-mapped
and scores queries against every passage.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from importlib import metadata
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from xbench.errors import XbenchError
from xbench.io import scratch
from xbench.models.base import Hits, ModelInfo
from xbench.models.me5 import xlmr_tokenizer_json
from xbench.paths import default_cache_root
from xbench.retrieval.ann import SearchPlan
from xbench.retrieval.exact import ScoreFn
from xbench.retrieval.stream import TopK
from xbench.tasks.taskdata import CorpusSource, TaskData

if TYPE_CHECKING:
    import bm25s

K1, B = 0.9, 0.4  # pyserini's defaults, so lexical numbers line up with its reproduction tables
METHOD = "lucene"
CHUNK = 1 << 16  # passages tokenised and spilled at a time while indexing a streamed corpus
SPACE_PIECE = "\u2581"  # SentencePiece's word-start marker; alone it carries no meaning, so it is dropped

# Grapheme_Cluster_Break=Prepend (Unicode 16): the only characters that join a following space into one grapheme,
# which the tokenizer's normaliser transforms as a unit. A word ending in one is never memoised (see _Pieces).
_PREPEND = frozenset(
    "\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2\u0d4e\U000110bd\U000110cd\U000111c2"
    "\U000111c3\U0001193f\U00011941\U00011a3a\U00011a84\U00011a85\U00011a86\U00011a87\U00011a88\U00011a89"
    "\U00011d46\U00011f02\U000113d1")
MEMO_WORDS = 1 << 21  # words memoised at most (~150 bytes each); the memo restarts empty beyond that


class _Pieces:
    """The XLM-R tokenizer behind a word memo, because the tokenizer itself manages ~1k passages/s a core.

    The memo is exact, not an approximation. The tokenizer normalises grapheme by grapheme (Precompiled charsmap),
    collapses runs of spaces, then splits before every space (Metaspace) and segments each word on its own
    (Unigram). A grapheme never spans the point before a space (UAX #29) unless a Prepend character precedes it,
    so the ids of `text` are those of its first space-separated word alone followed by those of " " + each further
    word; space runs only add or remove lone "▁" pieces, which are dropped. Words ending in a Prepend character
    are not memoised, and the texts holding them go through the tokenizer whole.

    A run of characters the vocabulary lacks is one <unk> id, but its token is the run itself ("鳃", "ⲡϣⲁϯ"), and
    BM25 has always indexed that string, so such runs get ids of their own past the vocabulary (`extra`), first
    come first numbered, kept for the life of the process. Not thread-safe: one caller at a time (while
    `build_index` runs, that is its tokenising thread).
    """

    def __init__(self) -> None:
        self.tokenizer = Tokenizer.from_file(str(xlmr_tokenizer_json()))
        self._encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        self.space = self.tokenizer.token_to_id(SPACE_PIECE)
        self.unk = self.tokenizer.token_to_id("<unk>")
        self.vocab = self.tokenizer.get_vocab(with_added_tokens=True)  # piece -> id
        self.size = len(self.vocab)  # ids below are the tokenizer's, ids from here on are unknown runs
        self.extra: dict[str, int] = {}
        self.pieces = sorted(self.vocab, key=self.vocab.__getitem__)  # id -> piece, unknown runs appended
        self.first: dict[str, bytes] = {}  # a text's first word -> its ids (int32 bytes)
        self.after: dict[str, bytes] = {}  # any other word -> the ids of " " + word

    def ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if len(self.first) + len(self.after) > MEMO_WORDS:
            self.first.clear()
            self.after.clear()
        parts = [self._join(text.lower()) for text in texts]
        missed = [i for i, part in enumerate(parts) if part is None]
        if missed:
            lowered = [texts[i].lower() for i in missed]
            self._learn(lowered)
            for i, text in zip(missed, lowered):
                parts[i] = self._join(text)
            whole = [k for k, i in enumerate(missed) if parts[i] is None]  # a word ends in a Prepend character
            for k, part in zip(whole, self._encoded([lowered[k] for k in whole])):
                parts[missed[k]] = part
        done = cast(list[bytes], parts)
        offsets = np.zeros(len(done) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, done), dtype=np.int64, count=len(done)) // 4, out=offsets[1:])
        return np.frombuffer(b"".join(done), dtype=np.int32), offsets

    def _join(self, text: str) -> bytes | None:
        """The text's ids from the memo, None if a word is missing."""
        first, *others = text.split(" ")
        try:
            return self.first[first] + b"".join(map(self.after.__getitem__, others))
        except KeyError:
            return None

    def _learn(self, lowered: list[str]) -> None:
        """Memoise the texts' new words (split one text at a time: a chunk's words at once would be GBs)."""
        firsts: set[str] = set()
        others: set[str] = set()
        for text in lowered:
            first, *rest = text.split(" ")
            firsts.add(first)
            others.update(rest)
        new_firsts = [w for w in firsts if w not in self.first and w[-1:] not in _PREPEND]
        new_others = [w for w in others if w not in self.after and w[-1:] not in _PREPEND]
        self.first.update(zip(new_firsts, self._encoded(new_firsts)))
        self.after.update(zip(new_others, self._encoded([" " + w for w in new_others])))

    def _encoded(self, texts: list[str]) -> list[bytes]:
        """Each text's ids without the lone "▁", as int32 bytes (joined later without a Python int per token)."""
        ids = [e.ids for e in self._encode(texts, add_special_tokens=False)]
        unknown = [k for k, row in enumerate(ids) if self.unk in row]  # the fast path leaves tokens empty
        for k, encoding in zip(unknown, self.tokenizer.encode_batch([texts[k] for k in unknown],
                                                                      add_special_tokens=False)):
            ids[k] = [self._term(token) if i == self.unk else i for i, token in zip(ids[k], encoding.tokens)]
        offsets = np.cumsum([0, *map(len, ids)])
        flat = np.fromiter(chain.from_iterable(ids), dtype=np.int32, count=int(offsets[-1]))
        keep = flat != self.space
        bounds = (np.concatenate([[0], np.cumsum(keep)])[offsets] * 4).tolist()  # byte offsets once "▁" is gone
        buf = flat[keep].tobytes()
        return [buf[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def _term(self, token: str) -> int:
        """The id of an <unk> token's text ("<unk>" itself, written in a text, stays the special token)."""
        if token in self.vocab:
            return self.vocab[token]
        if token not in self.extra:
            self.extra[token] = len(self.pieces)
            self.pieces.append(token)
        return self.extra[token]


@lru_cache(maxsize=1)
def _pieces() -> _Pieces:
    return _Pieces()


def tokenize_ids(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(flat int32 token ids, int64 offsets of len(texts) + 1): text i is ids[offsets[i]:offsets[i + 1]], the
    lowercased text's XLM-R pieces without "▁"."""
    return _pieces().ids(texts)


def tokenize(texts: list[str]) -> list[list[str]]:
    """The pieces of `tokenize_ids` as strings, the form bm25s indexes and queries by."""
    ids, offsets = tokenize_ids(texts)
    pieces = list(map(_pieces().pieces.__getitem__, ids.tolist()))
    return [pieces[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


class BM25Retriever:
    def __init__(self, cache_root: Path | None = None) -> None:
        self.cache_root = cache_root  # where the on-disk indexes of streamed corpora go (default: xbench's cache)
        card = {"k1": K1, "b": B, "method": METHOD, "tokens": "lowercased XLM-R SentencePiece pieces",
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
            index = bm25s.BM25(k1=K1, b=B, method=METHOD)
            index.index([self._d[i] for i in cand_rows], show_progress=False)
            self._indexes[key] = index
        index = self._indexes[key]
        queries = [self._q[i] for i in query_rows]
        return lambda rows: np.stack([index.get_scores(queries[r]) for r in rows]).astype(np.float32)


    def search_corpus(self, queries: list[str], corpus: CorpusSource, plan: SearchPlan,
                      order_key: Callable[[np.ndarray], np.ndarray]) -> Hits:
        """Index the corpus once (on disk, from streamed chunks; reused by every later run on the same corpus
        view), then score each query against the whole corpus, memory-mapped, keeping its top `depth` under the
        core's tie policy (score desc, then candidate id)."""
        assert plan.depth is not None  # the streamed path requires a depth
        root = self.cache_root or default_cache_root()
        dest = root / "bm25" / self.info.fingerprint / corpus.fingerprint
        t0 = time.perf_counter()
        built = 0
        if not dest.is_dir():
            build_index((texts for _, texts in corpus.batches(CHUNK)), dest, total=corpus.rows,
                        desc=f"BM25 index of {corpus.rows:,} passages")
            built = corpus.rows
        t1 = time.perf_counter()
        index = DiskBM25(dest)
        positions = np.full((len(queries), plan.depth), -1, dtype=np.int64)
        for i, scores in enumerate(tqdm(index.scores(queries), total=len(queries), unit="query",
                                        desc=f"BM25 search of {corpus.rows:,} passages")):
            top = TopK(1, plan.depth)
            top.add(scores[None, :], 0)
            positions[i] = top.result(order_key)[0][0]
        return Hits(positions=positions, counts={"texts": len(queries) + corpus.rows, "indexed_now": built},
                    timings={"index_s": t1 - t0, "search_s": time.perf_counter() - t1})


# ---- one index per corpus, on disk -------------------------------------------------------------------------------
# The files bm25s.BM25.save writes and BM25.load reads: the BM25 weight of every (document, term) pair as a CSC
# matrix (one column per term, rows ascending), the term -> column vocabulary and the parameters.
DATA, INDICES, INDPTR = "data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy"
VOCAB, PARAMS = "vocab.index.json", "params.index.json"


def build_index(chunks: Iterable[list[str]], dest: Path, *, total: int | None = None,
                desc: str = "BM25 index") -> None:
    """Write at `dest` the index `bm25s.BM25(k1=K1, b=B, method="lucene").index(tokenize(corpus))` would hold, for
    the corpus streamed as `chunks` of texts (in corpus order; row i of the index is the corpus's text i).

    Two passes over disk, so memory is two chunks' arrays (the next is tokenised while this one is counted) plus
    O(vocabulary) (250k terms) plus the word memo (MEMO_WORDS), whatever the corpus size: ~1 GB over the caller's
    own with chunks of 65,536 passages of 100 words (benchmarks/bench_bm25.py). Pass 1 tokenises each chunk and
    spills its (term, document, tf) triples and document lengths; document frequencies accumulate. Pass 2, with
    N, df and the average length known, turns each spilled chunk into BM25 weights and scatters them by counting
    sort into the memory-mapped CSC files. Disk: 8 bytes per (document, distinct term) pair for the index, plus
    12 for the spill while building (~5M passages of 100 words: ~400M pairs, 3.2 GB + 4.8 GB). Everything is
    built in a temporary folder beside `dest` and renamed into place, so `dest` is either absent or complete.
    """
    dest = Path(dest)
    if dest.exists():
        raise XbenchError(f"{dest}: already exists; remove it to rebuild the BM25 index, or choose another folder.")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = scratch(dest.parent, f".{dest.name}.", ".tmp")
    except OSError as exc:
        raise XbenchError(f"{dest.parent}: cannot write there ({exc.strerror or exc}); choose a writable folder "
                          "for the BM25 index.") from None
    try:
        (work / "spill").mkdir()
        (work / "index").mkdir()
        with tqdm(total=total, desc=desc, unit="text") as bar:
            corpus = _spill(chunks, work / "spill", bar)
        _write(corpus, work / "index", desc)
        (work / "index").rename(dest)
    except OSError as exc:
        raise XbenchError(f"{dest}: building the BM25 index failed ({exc}); nothing was kept. It needs ~20 bytes "
                          "of free disk per (passage, distinct term) pair beside it while building.") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _Corpus:
    """What pass 1 learns: counts for the IDF and the length normalisation, and the spilled chunks in order."""

    def __init__(self) -> None:
        self.df = np.zeros(0, dtype=np.int64)  # documents per term id
        self.docs = 0
        self.tokens = 0
        self.chunks: list[Path] = []


def _tokenized(chunks: Iterable[list[str]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`tokenize_ids` of each non-empty chunk, the next one tokenised in a thread while the caller works on this
    one: tokenising holds the GIL, but numpy's sorts and the spill's writes release it, so both cores work."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead: Future[tuple[np.ndarray, np.ndarray]] | None = None
        for texts in chunks:
            if texts:
                job = pool.submit(tokenize_ids, texts)
                if ahead is not None:
                    yield ahead.result()
                ahead = job
        if ahead is not None:
            yield ahead.result()


def _spill(chunks: Iterable[list[str]], spill: Path, bar: tqdm) -> _Corpus:
    corpus = _Corpus()
    for ids, offsets in _tokenized(chunks):
        n = len(offsets) - 1
        vocab = len(_pieces().pieces)  # at least every id so far (unknown runs are added as they are met)
        lengths = np.diff(offsets)
        doc = np.repeat(np.arange(n, dtype=np.int64), lengths)
        # sorted by (term, document): the order pass 2 writes them in, so its sort finds them (nearly) sorted
        pairs, tf = np.unique(ids * np.int64(n) + doc, return_counts=True)
        terms = (pairs // n).astype(np.int32)
        corpus.df = np.bincount(terms, minlength=vocab) + np.pad(corpus.df, (0, vocab - len(corpus.df)))
        path = spill / f"{len(corpus.chunks):06d}.npz"
        np.savez(path, terms=terms, docs=(pairs % n).astype(np.int32), tf=tf.astype(np.int32),
                 lengths=lengths.astype(np.int32))
        corpus.chunks.append(path)
        corpus.docs += n
        corpus.tokens += int(offsets[-1])
        bar.update(n)
    if not corpus.docs:
        raise XbenchError("the corpus is empty: a BM25 index needs at least one text.")
    if not corpus.tokens:
        raise XbenchError(f"none of the corpus's {corpus.docs} texts has a token (all are empty or blank): there "
                          "is nothing to index.")
    return corpus


def _idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """bm25s's lucene IDF, computed as it does (math.log on Python floats, stored as float32): once per distinct
    df value, so the result is bit-identical to its per-term loop."""
    values, inverse = np.unique(df, return_inverse=True)
    idf = [math.log(1 + (n_docs - d + 0.5) / (d + 0.5)) for d in values.tolist()]
    return np.asarray(idf, dtype=np.float64).astype(np.float32)[inverse]


# The dtype bm25s's tf part is computed in: its length norm is a float64 scalar added to the float32 tf array, which
# NumPy >= 2 promotes to float64 and NumPy 1.x (value-based casting) keeps float32.
_TFC = np.result_type(np.float64(1.0), np.empty(0, dtype=np.float32))


def _columns(df: np.ndarray) -> np.ndarray:
    """The corpus's term ids in column order: the tokenizer's by id, then unknown runs by their text (their ids
    depend on what the process tokenised first, the files must not)."""
    pieces = _pieces()
    terms = np.flatnonzero(df)
    extra = sorted(terms[terms >= pieces.size].tolist(), key=pieces.pieces.__getitem__)
    return np.concatenate([terms[terms < pieces.size], np.asarray(extra, dtype=terms.dtype)])


def _write(corpus: _Corpus, out: Path, desc: str) -> None:
    terms = _columns(corpus.df)
    column = np.full(len(corpus.df), -1, dtype=np.int32)
    column[terms] = np.arange(len(terms), dtype=np.int32)
    indptr = np.zeros(len(terms) + 1, dtype=np.int64)
    np.cumsum(corpus.df[terms], out=indptr[1:])
    idf = _idf(corpus.df[terms], corpus.docs)
    avg_len = np.float64(corpus.tokens / corpus.docs)  # = np.mean of the lengths, exactly (an exact integer sum)
    for name, dtype in ((DATA, np.float32), (INDICES, np.int32)):
        np.lib.format.open_memmap(out / name, mode="w+", dtype=dtype, shape=(int(indptr[-1]),)).flush()
    heads = indptr[:-1].copy()  # next free slot of every column
    first_doc = 0
    for path in tqdm(corpus.chunks, desc=f"{desc}: writing", unit="chunk"):
        with np.load(path) as z:
            terms_c, docs, tf, lengths = z["terms"], z["docs"], z["tf"], z["lengths"]
        cols = column[terms_c]
        tf32 = tf.astype(np.float32)
        # bm25s: tf / (k1 * ((1 - b) + b * l_d / l_avg) + tf), times the IDF, stored as float32
        norm = (K1 * ((1 - B) + B * lengths / avg_len))[docs].astype(_TFC)
        weights = (idf[cols] * (tf32 / (norm + tf32))).astype(np.float32)
        docs += first_doc
        # by column, rows still ascending within each; only unknown runs' columns are out of term-id order
        order = np.argsort(cols, kind="stable")
        counts = np.bincount(cols, minlength=len(terms))
        sorted_cols = cols[order]
        slots = heads[sorted_cols] + np.arange(len(order)) - (np.cumsum(counts) - counts)[sorted_cols]
        # mapped per chunk, so the pages written are let go of (they stay in the page cache, not in this process)
        data = np.load(out / DATA, mmap_mode="r+")
        indices = np.load(out / INDICES, mmap_mode="r+")
        data[slots] = weights[order]
        indices[slots] = docs[order]
        data.flush()
        indices.flush()
        del data, indices
        heads += counts
        first_doc += len(lengths)
        path.unlink()
    np.save(out / INDPTR, indptr)
    vocab = dict(zip(map(_pieces().pieces.__getitem__, terms.tolist()), range(len(terms))))
    vocab[""] = len(terms)  # bm25s's empty-query token, which its index() adds
    (out / VOCAB).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    params = {"k1": K1, "b": B, "delta": 0.5, "method": METHOD, "idf_method": METHOD, "dtype": "float32",
              "int_dtype": "int32", "num_docs": corpus.docs, "version": metadata.version("bm25s"),
              "backend": "numpy"}
    (out / PARAMS).write_text(json.dumps(params, indent=4), encoding="utf-8")


class DiskBM25:
    """A `build_index` folder, memory-mapped: scores queries against the whole corpus, as bm25s does in memory."""

    def __init__(self, path: Path) -> None:
        import bm25s  # lazy: only when a BM25 index is read

        self.path = Path(path)
        try:
            self.index = bm25s.BM25.load(str(self.path), mmap=True)
        except (OSError, ValueError) as exc:
            raise XbenchError(f"{self.path}: not a readable BM25 index ({exc}); rebuild it with "
                              "xbench.models.bm25.build_index.") from None
        if (self.index.k1, self.index.b, self.index.method) != (K1, B, METHOD):
            raise XbenchError(f"{self.path}: a BM25 index with k1={self.index.k1} b={self.index.b} method="
                              f"{self.index.method}, not xbench's k1={K1} b={B} {METHOD}; rebuild it with "
                              "xbench.models.bm25.build_index.")
        self.num_docs = int(self.index.scores["num_docs"])

    def scores(self, query_texts: list[str]) -> Iterator[np.ndarray]:
        """Each query's float32 scores over every passage, in corpus order; a query without a token scores 0
        everywhere (bm25s's retrieve does the same; its get_scores would fail)."""
        for tokens in tokenize(query_texts):
            yield self.index.get_scores(tokens) if tokens else np.zeros(self.num_docs, dtype=np.float32)
