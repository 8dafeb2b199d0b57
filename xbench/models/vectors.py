"""A corpus's vectors on disk, for corpora too large for memory (MIRACL: 33M passages in English).

Layout: `<cache_root>/vectors/<model fingerprint>/<corpus fingerprint>/` with `manifest.json` and shard files
`rows-<start>-<stop>.npy` (float32, C order, (stop - start, dim)), the vectors of corpus rows [start, stop).
The file names are the record of what is encoded: each file is written whole to a temp file and renamed, so a
file that exists is complete, an interrupted fill keeps every shard it finished and a rerun encodes only the
gaps, and two writers of the same range leave one whole file. The manifest is written before the first shard and
checked on open. Search reads the shards memory-mapped (`shards`), so the vectors never have to fit in memory.

Unlike the content-addressed cache (`models.cache`, small tasks, every text keyed by its hash), rows are keyed by
position in a corpus whose fingerprint names its content: no key table, no lookups, 33M texts cost no hashing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from xbench.errors import XbenchError
from xbench.io import write_atomic
from xbench.models.cache import remove_stale, save_atomic

log = logging.getLogger(__name__)

SHARD_ROWS = 1 << 16  # 96 MiB at 384 dimensions: big enough to encode in long batches, small enough to redo
FORMAT = 1
MANIFEST = "manifest.json"
_SHARD = re.compile(r"rows-(\d{12})-(\d{12})\.npy")



class Reader(Protocol):
    """A corpus view's `batches`: (position of the first text, texts) batches of about `rows` texts, in corpus
    order from row `start` on."""

    def __call__(self, rows: int, start: int = 0) -> Iterator[tuple[int, list[str]]]: ...


class VectorShards:
    """The vectors of one (encoder fingerprint, corpus fingerprint) pair, `rows` corpus rows, as shard files."""

    def __init__(self, cache_root: Path, model: str, corpus: str, rows: int) -> None:
        self.dir = cache_root / "vectors" / model / corpus
        self.model, self.corpus, self.rows = model, corpus, rows
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise XbenchError(f"{self.dir}: cannot create the vector store ({exc.strerror or exc}); pass a "
                              "writable --cache-dir.") from None
        remove_stale(self.dir)
        self.dim: int | None = None
        self.shard_rows = SHARD_ROWS
        self._open()

    def _mismatch(self, what: str) -> XbenchError:
        return XbenchError(f"{self.dir / MANIFEST}: {what}; the folder belongs to other vectors or was edited. "
                           f"Delete {self.dir} to encode the corpus again.")

    def _open(self) -> None:
        """Check the manifest against this store (a missing one: nothing was written yet)."""
        path = self.dir / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except PermissionError as exc:
            raise XbenchError(f"{path}: cannot read the vector store ({exc.strerror}); fix its permissions or pass "
                              "another --cache-dir.") from None
        except (OSError, ValueError) as exc:
            raise self._mismatch(f"cannot be read ({exc})") from None
        expected = {"format": FORMAT, "model": self.model, "corpus": self.corpus, "rows": self.rows}
        found = {key: manifest.get(key) for key in expected}
        if found != expected or not isinstance(manifest.get("dim"), int):
            raise self._mismatch(f"it records {found} and dim {manifest.get('dim')!r}, this store is {expected}")
        self.dim = manifest["dim"]

    def _record(self, dim: int) -> None:
        """Write the manifest at the first put (concurrent writers write the same text); then check the dim."""
        if self.dim is None:
            self._open()  # another writer may have recorded it since
        if self.dim is None:
            write_atomic(self.dir / MANIFEST, json.dumps({
                "format": FORMAT, "model": self.model, "corpus": self.corpus, "rows": self.rows, "dim": dim,
                "shard_rows": self.shard_rows}, indent=1) + "\n")
            self.dim = dim
        elif dim != self.dim:
            raise self._mismatch(f"vectors of dimension {dim} were given, the store holds dimension {self.dim}")

    def put(self, start: int, vectors: np.ndarray) -> None:
        """Store the vectors of rows [start, start + len(vectors)) as one shard file. They are checked here, once,
        as the encoder's output (2-D, finite, the store's dimension), not on every read."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        stop = start + (len(vectors) if vectors.ndim else 0)
        if vectors.ndim != 2 or start < 0 or not start < stop <= self.rows:
            raise ValueError(f"{self.dir}: vectors of shape {vectors.shape} for rows {start}..{stop} of {self.rows}")
        if not np.isfinite(vectors).all():
            raise XbenchError(f"{self.dir}: the encoder returned non-finite values for corpus rows {start}..{stop}; "
                              "the model is broken or incompatible.")
        self._record(vectors.shape[1])
        path = self.dir / f"rows-{start:012d}-{stop:012d}.npy"
        try:
            save_atomic(path, lambda fh: np.save(fh, vectors))
        except OSError as exc:
            raise XbenchError(f"{path}: cannot write a vector shard ({exc.strerror or exc}); free disk space or pass "
                              "a writable --cache-dir.") from None

    def _valid(self) -> list[tuple[int, int, np.ndarray]]:
        """(start, stop, memory-mapped vectors) of every sound shard file, by start. Only headers are read; a file
        that is unreadable, truncated, of another shape or dtype, or present before the manifest is reported and
        removed, so that its rows count as missing."""
        if self.dim is None:
            self._open()  # a concurrent writer may have written the manifest (and shards) since
        found = []
        for path in self.dir.glob("rows-*.npy"):
            match = _SHARD.fullmatch(path.name)
            if match is None:
                continue
            start, stop = int(match[1]), int(match[2])
            try:
                vectors = np.load(path, mmap_mode="r")
                problem = None if self.dim is not None else "no manifest"
                if problem is None and (vectors.dtype != np.float32 or vectors.shape != (stop - start, self.dim)
                                        or not vectors.flags.c_contiguous or not 0 <= start < stop <= self.rows):
                    problem = f"{vectors.dtype} {vectors.shape} for rows {start}..{stop} of dimension {self.dim}"
            except FileNotFoundError:
                continue  # removed by another process in the meantime
            except PermissionError as exc:
                raise XbenchError(f"{path}: cannot read the vector store ({exc.strerror}); fix its permissions or "
                                  "pass another --cache-dir.") from None
            except (OSError, ValueError, EOFError) as exc:  # truncated: mmap longer than the file; a bad header
                problem = str(exc)
            if problem is not None:
                log.warning("vector store: damaged shard %s (%s); removing it, its rows will be encoded again",
                            path, problem)
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    raise XbenchError(f"{path}: cannot remove a damaged vector shard ({exc.strerror}); delete it by "
                                      "hand or pass another --cache-dir.") from None
                continue
            found.append((start, stop, vectors))
        return sorted(found, key=lambda f: (f[0], -f[1]))

    def missing(self) -> list[tuple[int, int]]:
        """The gaps [a, b) of [0, rows) that no sound shard covers, in order."""
        gaps, covered = [], 0
        for start, stop, _ in self._valid():
            if start > covered:
                gaps.append((covered, start))
            covered = max(covered, stop)
        return gaps + ([(covered, self.rows)] if covered < self.rows else [])

    def fill(self, read: Reader, encode: Callable[[list[str]], np.ndarray], shard_rows: int = SHARD_ROWS,
             desc: str = "encoding corpus") -> int:
        """Encode the rows no shard covers yet, `shard_rows` texts a shard, each stored as soon as it is done;
        returns the number of texts encoded. An interrupted fill keeps its finished shards: run it again."""
        self.shard_rows = shard_rows
        gaps = self.missing()
        done = 0
        with tqdm(total=sum(b - a for a, b in gaps), desc=desc, unit="text", disable=not gaps) as bar:
            for a, b in gaps:
                for start, texts in _chunks(read(rows=shard_rows, start=a), a, b, shard_rows, self.dir):
                    vectors = np.asarray(encode(texts))
                    if vectors.ndim != 2 or len(vectors) != len(texts):
                        raise XbenchError(f"{desc}: the encoder returned {vectors.shape} for {len(texts)} texts; the "
                                          "model is broken or incompatible.")
                    self.put(start, vectors)
                    done += len(texts)
                    bar.update(len(texts))
        return done

    def shards(self) -> list[tuple[int, np.ndarray]]:
        """(first row, memory-mapped (rows, dim) float32 vectors) in corpus order, covering [0, rows) exactly once
        (ranges that concurrent writers made overlap are cut). Call after `fill`: a gap is an error."""
        cover: list[tuple[int, Any]] = []
        covered = 0
        for start, stop, vectors in self._valid():
            if stop <= covered:
                continue
            if start > covered:
                break
            cover.append((covered, vectors[covered - start :]))
            covered = stop
        if covered < self.rows:
            raise XbenchError(f"{self.dir}: corpus rows {covered}.. have no vectors (never encoded, or a damaged "
                              "shard was removed); fill the store first.")
        return cover


def _chunks(batches: Iterator[tuple[int, list[str]]], a: int, b: int, size: int,
            where: Path) -> Iterator[tuple[int, list[str]]]:
    """Rows [a, b) regrouped into (start, texts) chunks of `size` (the last one shorter), whatever the reader's
    batch sizes; a reader that skips or repeats rows, or ends early, is an error (the vectors would be misplaced)."""
    pending: list[str] = []
    position = a
    for start, texts in batches:
        if start != position + len(pending):
            raise XbenchError(f"{where}: the corpus reader gave rows from {start}, expected {position + len(pending)}; "
                              "the corpus view is broken.")
        pending.extend(texts[: b - start])
        while len(pending) >= size or (pending and position + len(pending) >= b):
            yield position, pending[:size]
            position, pending = position + len(pending[:size]), pending[size:]
        if position >= b:
            return
    raise XbenchError(f"{where}: the corpus reader ended at row {position + len(pending)}, before row {b}; the corpus "
                      "is shorter than its view's `rows`.")
