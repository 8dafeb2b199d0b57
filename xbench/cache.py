"""Content-addressed embedding cache: every (encoder fingerprint, role, text) is encoded once, ever.

Layout: `<root>/embeddings/<fingerprint>/<role>/shard-*.npz`. A shard holds the sha256 keys of its texts and
their vectors. Shards are written whole to a temporary file and renamed, so a reader never sees half a
shard, and each writer uses fresh shard names, so concurrent runs sharing a cache never overwrite each other
(at worst they both store the same vector). A shard that fails to load (truncated, corrupt: the zip CRC
catches it) is reported, removed and its texts are encoded again. Shards are written while encoding goes on,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from xbench.errors import XbenchError

log = logging.getLogger(__name__)

SHARD_TEXTS = 2048


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingStore:
    """The vectors of one (encoder fingerprint, role)."""

    def __init__(self, root: Path, fingerprint: str, role: str) -> None:
        self.dir = root / "embeddings" / fingerprint / role
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise XbenchError(f"{self.dir}: cannot create the embedding cache ({exc}); pass a writable --cache-dir.")
        self._index: dict[str, np.ndarray] = {}
        self._loaded: set[str] = set()

    def refresh(self) -> None:
        """Read shards written since the last refresh (ours or a concurrent run's); drop damaged ones."""
        for path in sorted(self.dir.glob("shard-*.npz")):
            if path.name in self._loaded:
                continue
            try:
                with np.load(path) as shard:
                    keys, vectors = shard["keys"], shard["vectors"]
                if len(keys) != len(vectors) or vectors.ndim != 2 or not np.isfinite(vectors).all():
                    raise ValueError("keys and vectors disagree")
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                log.warning("embedding cache: damaged shard %s (%s); removing it, its texts will be re-encoded",
                            path, exc)
                path.unlink(missing_ok=True)
                continue
            self._index.update(zip(keys.tolist(), vectors))
            self._loaded.add(path.name)

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        return {k: self._index[k] for k in keys if k in self._index}

    def put(self, keys: list[str], vectors: np.ndarray) -> None:
        """Write one shard atomically (temp file in the same folder, then rename)."""
        name = f"shard-{uuid.uuid4().hex}.npz"
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, keys=np.array(keys), vectors=vectors.astype(np.float32))
            os.replace(tmp, self.dir / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._index.update(zip(keys, vectors))
        self._loaded.add(name)


def encode_cached(
    texts: list[str],
    encode: Callable[[list[str]], np.ndarray],
    store: EmbeddingStore,
    desc: str = "encoding",
) -> tuple[np.ndarray, int]:
    """Vectors for `texts` (in order), encoding only unique texts not yet in the store.

    Missing texts are encoded longest first in shards of SHARD_TEXTS (length-sorted batches waste no padding)
    and each shard is stored as soon as it is done. Returns the matrix and the number of texts encoded now.
    """
    keys = [text_key(t) for t in texts]
    store.refresh()
    found = store.get(keys)
    missing: dict[str, str] = {}
    for k, t in zip(keys, texts):
        if k not in found:
            missing.setdefault(k, t)
    todo = sorted(missing.items(), key=lambda kv: -len(kv[1]))
    with tqdm(total=len(todo), desc=desc, unit="text", disable=not todo) as bar:
        for start in range(0, len(todo), SHARD_TEXTS):
            chunk = todo[start : start + SHARD_TEXTS]
            vectors = np.asarray(encode([t for _, t in chunk]), dtype=np.float32)
            if vectors.shape[0] != len(chunk) or not np.isfinite(vectors).all():
                raise XbenchError(f"{desc}: the encoder returned {vectors.shape} or non-finite values for "
                                  f"{len(chunk)} texts; the model is broken or incompatible.")
            store.put([k for k, _ in chunk], vectors)
            found.update(zip((k for k, _ in chunk), vectors))
            bar.update(len(chunk))
    if not keys:
        return np.zeros((0, 0), dtype=np.float32), 0
    return np.stack([found[k] for k in keys]), len(todo)
