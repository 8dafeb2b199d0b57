"""Content-addressed embedding cache: every (encoder fingerprint, role, text) is encoded once, ever.

Layout: `<root>/embeddings/<fingerprint>/<role>/shard-*.npz` and `meta.json`. A shard holds the sha256 digests
of its texts (32 bytes each; shards of the first format held 64-character hex strings and still read) and their
vectors. Shards are written whole to a temporary file and renamed, so a reader never sees half a shard, and each
writer uses fresh shard names, so concurrent runs sharing a cache never overwrite each other (at worst they both
store the same vector). `meta.json` records the model's dimension, written before the first shard: a shard that
fails to load (truncated, corrupt: the zip CRC catches it) or holds vectors of another dimension is reported,
removed and its texts are encoded again, and a fully cached run never calls the encoder. Only a store written
before meta.json existed costs one probe (one short text encoded, not stored) to learn the dimension, which is
then recorded. Shards are written while encoding goes on, so an interrupted run resumes where it stopped; a
temporary file left by a writer that died is removed after STALE_TMP_SECONDS. A cache that cannot be read or
written (permissions, a full disk) is an error naming the path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Container, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm.auto import tqdm

from xbench.errors import XbenchError
from xbench.io import write_atomic

log = logging.getLogger(__name__)

SHARD_TEXTS = 2048
STALE_TMP_SECONDS = 3600  # a shard is written in seconds: a temp file this old lost its writer


META = "meta.json"


def text_key(text: str) -> bytes:
    """The sha256 digest: 32 bytes a key, half the hex string's size on disk and in the lookup tables."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def _stored_keys(keys: np.ndarray) -> list[bytes]:
    """Digests from a shard's key array: fixed 32-byte strings (read as void, since numpy drops the trailing zero
    bytes of an 'S' item), or the first format's hex strings."""
    if keys.dtype.kind == "U":
        return np.frombuffer(bytes.fromhex("".join(keys.tolist())), dtype="V32").tolist()
    return keys.view("V32").tolist()


def remove_stale(folder: Path) -> None:
    """Temp files of writers that died (kill -9, a full disk) would pile up; a live writer's is recent."""
    cutoff = time.time() - STALE_TMP_SECONDS
    for tmp in folder.glob("*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
        except OSError:
            continue  # gone already (another run cleaned it up), or not ours to remove


def save_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """`write` into a temp file in the target's folder, then rename: readers see the whole file or none, and two
    writers of the same name leave one whole file. Raises OSError (the caller names the fix)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class EmbeddingStore:
    """The vectors of one (encoder fingerprint, role), as shard files; nothing is held in memory, so a store over
    millions of texts costs what the caller asks of it and no more."""

    def __init__(self, root: Path, fingerprint: str, role: str) -> None:
        self.dir = root / "embeddings" / fingerprint / role
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise XbenchError(f"{self.dir}: cannot create the embedding cache ({exc}); "
                              "pass a writable --cache-dir.") from None
        self._dim: int | None = None
        remove_stale(self.dir)

    def has_shards(self) -> bool:
        return next(self.dir.glob("shard-*.npz"), None) is not None

    def dim(self) -> int | None:
        """The vector dimension recorded at the store's first write; None for a new store or one written before
        meta.json existed (a damaged meta.json counts as absent: the probe and the shard checks recover)."""
        if self._dim is None:
            path = self.dir / META
            try:
                self._dim = int(json.loads(path.read_text(encoding="utf-8"))["dim"])
            except FileNotFoundError:
                return None
            except PermissionError as exc:
                raise XbenchError(f"{path}: cannot read the embedding cache ({exc.strerror}); fix its permissions "
                                  "or pass another --cache-dir.") from None
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("embedding cache: damaged %s (%s); the model's dimension is learnt again", path, exc)
                return None
        return self._dim

    def record_dim(self, dim: int) -> None:
        """Write meta.json (atomically; concurrent writers write the same text) unless it holds `dim` already; a
        dimension other than the recorded one is an error, as it would make every shard look damaged."""
        known = self.dim()
        if known == dim:
            return
        if known is not None:
            raise XbenchError(f"{self.dir / META}: the cache records vectors of dimension {known}, the encoder "
                              f"gives {dim}; another model has this fingerprint, or the file was edited: delete "
                              f"{self.dir} to encode again.")
        write_atomic(self.dir / META, json.dumps({"dim": dim}) + "\n")
        self._dim = dim

    def read(self, wanted: Container[bytes], seen: set[str], dim: int | None = None,
             ) -> Iterator[tuple[list[bytes], np.ndarray]]:
        """(keys, vectors) of the wanted rows of every shard not in `seen` (ours or a concurrent run's; the names
        read are added to it). A shard's vectors load only when it holds a wanted key; a damaged shard (or, with
        `dim`, one of another dimension) is reported and removed, and its texts are encoded again."""
        for path in sorted(self.dir.glob("shard-*.npz")):
            if path.name in seen:
                continue
            try:
                with np.load(path) as shard:
                    keys = _stored_keys(shard["keys"])
                    take = [j for j, k in enumerate(keys) if k in wanted]
                    vectors = shard["vectors"] if take else None
                if vectors is not None and (len(keys) != len(vectors) or vectors.ndim != 2
                                            or not np.isfinite(vectors).all()):
                    raise ValueError("keys and vectors disagree")
                if vectors is not None and dim is not None and vectors.shape[1] != dim:
                    raise ValueError(f"vectors of dimension {vectors.shape[1]}, the model's have {dim}")
            except FileNotFoundError:
                continue
            except PermissionError as exc:
                raise XbenchError(f"{path}: cannot read the embedding cache ({exc.strerror}); fix its permissions "
                                  "or pass another --cache-dir.") from None
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                log.warning("embedding cache: damaged shard %s (%s); removing it, its texts will be re-encoded",
                            path, exc)
                self._remove(path)
                continue
            seen.add(path.name)
            if vectors is not None:
                yield [keys[j] for j in take], vectors if len(take) == len(keys) else vectors[take]

    def _remove(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise XbenchError(f"{path}: cannot remove a damaged embedding shard ({exc.strerror}); delete it by "
                              "hand or pass another --cache-dir.") from None

    def put(self, keys: list[bytes], vectors: np.ndarray) -> str:
        """Write one shard atomically (temp file in the same folder, then rename), after meta.json; returns its
        name. Keys go in as 32-byte strings ('S32' pads a digest whose trailing zero bytes a caller lost)."""
        self.record_dim(int(vectors.shape[1]))
        name = f"shard-{uuid.uuid4().hex}.npz"
        key_array, matrix = np.array(keys, dtype="S32"), vectors.astype(np.float32)
        try:
            save_atomic(self.dir / name, lambda fh: np.savez(fh, keys=key_array, vectors=matrix))
        except OSError as exc:
            raise self._unwritable(exc) from None
        return name

    def _unwritable(self, exc: OSError) -> XbenchError:
        return XbenchError(f"{self.dir}: cannot write an embedding shard ({exc.strerror or exc}); free disk space "
                           "or pass a writable --cache-dir.")


class _Rows:
    """The output matrix, allocated once when the dimension is known and filled in place (never a list of rows
    stacked at the end: that would hold the vectors twice)."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = keys
        self.row: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            self.row.setdefault(k, i)  # the first occurrence; duplicates are copied at the end
        self.placed = np.zeros(len(keys), dtype=bool)
        self.matrix: np.ndarray | None = None

    def place(self, keys: list[bytes], vectors: np.ndarray) -> None:
        if self.matrix is None:
            self.matrix = np.empty((len(self.keys), vectors.shape[1]), dtype=np.float32)
        idx = np.fromiter((self.row[k] for k in keys), dtype=np.int64, count=len(keys))
        self.matrix[idx], self.placed[idx] = vectors, True

    def missing(self) -> list[bytes]:
        return [k for k, i in self.row.items() if not self.placed[i]]

    def result(self) -> np.ndarray:
        if self.matrix is None:
            return np.zeros((0, 0), dtype=np.float32)
        first = np.fromiter((self.row[k] for k in self.keys), dtype=np.int64, count=len(self.keys))
        dup = np.flatnonzero(first != np.arange(len(self.keys)))
        self.matrix[dup] = self.matrix[first[dup]]
        return self.matrix


def encode_cached(
    texts: list[str],
    encode: Callable[[list[str]], np.ndarray],
    store: EmbeddingStore,
    desc: str = "encoding",
    fill: Callable[[list[tuple[bytes, str]]], None] | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors for `texts` (in order), encoding only unique texts not yet in the store.

    Missing texts are encoded longest first in shards of SHARD_TEXTS (length-sorted batches waste no padding)
    and each shard is stored as soon as it is done. `fill`, when given, replaces that loop: it gets the missing
    (key, text) pairs and writes their shards into the store itself (workers of a cluster), and the store is
    read back. Peak memory is the output matrix plus one shard. Returns the matrix and the number of texts
    encoded now. Cached vectors are trusted only at the store's recorded dimension (see `_trusted_dim`).
    """
    keys = [text_key(t) for t in texts]
    rows = _Rows(keys)
    seen: set[str] = set()
    dim = _trusted_dim(store, encode, texts, desc)
    for found, vectors in store.read(rows.row, seen, dim):
        rows.place(found, vectors)
    todo = sorted(((k, texts[rows.row[k]]) for k in rows.missing()), key=lambda kv: -len(kv[1]))
    if fill is not None and todo:
        fill(todo)
        for found, vectors in store.read(rows.row, seen, dim or _trusted_dim(store, encode, texts, desc)):
            rows.place(found, vectors)
        lost = len(rows.missing())
        if lost:
            raise XbenchError(f"{desc}: the workers wrote no vectors for {lost} of {len(todo)} texts into "
                              f"{store.dir}; put --cache-dir on a filesystem that every worker shares.")
        return rows.result(), len(todo)
    with tqdm(total=len(todo), desc=desc, unit="text", disable=not todo) as bar:
        for start in range(0, len(todo), SHARD_TEXTS):
            chunk = todo[start : start + SHARD_TEXTS]
            vectors = np.asarray(encode([t for _, t in chunk]), dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[0] != len(chunk) or not np.isfinite(vectors).all():
                raise XbenchError(f"{desc}: the encoder returned {vectors.shape} or non-finite values for "
                                  f"{len(chunk)} texts; the model is broken or incompatible.")
            seen.add(store.put([k for k, _ in chunk], vectors))  # a dimension other than the recorded one: an error
            rows.place([k for k, _ in chunk], vectors)
            bar.update(len(chunk))
    return rows.result(), len(todo)


def _trusted_dim(store: EmbeddingStore, encode: Callable[[list[str]], np.ndarray], texts: list[str],
                 desc: str) -> int | None:
    """The dimension that tells a shard of another model's or a damaged dimension apart: the recorded one, or,
    for shards written before meta.json existed, the model's vector for the shortest text (one probe, not stored;
    its dimension is recorded so that the next run needs none). None while the store has no shard."""
    dim = store.dim()
    if dim is not None or not texts or not store.has_shards():
        return dim
    vector = np.asarray(encode([min(texts, key=len)]), dtype=np.float32)
    if vector.ndim != 2 or len(vector) != 1:
        raise XbenchError(f"{desc}: the encoder returned {vector.shape} for one text; the model is broken or "
                          "incompatible.")
    store.record_dim(int(vector.shape[1]))
    return int(vector.shape[1])
