"""Encoding beyond one machine through Ray Data (`pip install 'xbench[ray]'`): one actor per GPU (or per CPU
slot), each loading the model once and writing its vectors as cache shards, which the run then reads back.

The cache folder must be on a filesystem every worker sees (a shared mount); shards are written atomically
under fresh names, so workers never overwrite each other. Nothing here schedules or retries by hand: Ray Data
does both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xbench.errors import XbenchError
from xbench.models.base import ModelInfo, Role
from xbench.models.cache import SHARD_TEXTS, EmbeddingStore
from xbench.models.st import SentenceTransformerEncoder, load_sentence_transformer


class ShardWriter:
    """A Ray actor: loads the model once, then encodes each batch it gets and stores it as one cache shard."""

    def __init__(self, load: dict[str, Any], fingerprint: str, role: Role, cache_root: str) -> None:
        self.encoder = load_sentence_transformer(**load)
        if self.encoder.info.fingerprint != fingerprint:  # another model behind the same name: never mix caches
            raise XbenchError(f"{load['name']}: a Ray worker loaded a different model (fingerprint "
                              f"{self.encoder.info.fingerprint}, expected {fingerprint}); share the model folder.")
        self.role = role
        self.store = EmbeddingStore(Path(cache_root), fingerprint, role)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys = batch["key"].tolist()
        self.store.put(keys, self.encoder.encode(batch["text"].tolist(), self.role))
        return {"encoded": np.array([len(keys)])}


class RayEncoder:
    """The same model (same fingerprint, same cache entries) with its encoding spread over a Ray cluster.

    `address` is passed to `ray.init`: "auto" joins a running cluster, "local" starts one on this machine.
    """

    def __init__(self, inner: SentenceTransformerEncoder, address: str, actors: int, cache_root: Path) -> None:
        if not inner.load:
            raise XbenchError(f"--ray: {inner.info.name} cannot be loaded by a worker; use a model folder.")
        try:
            import ray  # noqa: F401
        except ImportError:
            raise XbenchError("--ray needs Ray Data: pip install 'xbench[ray]' (or 'ray[data]').") from None
        self.inner = inner
        self.info: ModelInfo = inner.info
        self.address = address
        self.actors = actors
        self.cache_root = cache_root

    def encode(self, texts: list[str], role: Role) -> np.ndarray:
        """Small jobs (and anything outside the cache) stay local."""
        return self.inner.encode(texts, role)

    def fill(self, items: list[tuple[str, str]], role: Role) -> None:
        """Encode (key, text) pairs on the cluster, one shard per batch, straight into the cache."""
        import ray  # lazy: optional extra xbench[ray]
        import ray.data

        if not ray.is_initialized():
            ray.init(address=None if self.address == "local" else self.address, ignore_reinit_error=True,
                     log_to_driver=False)
        gpus = 1 if self.inner.load.get("device", "cpu").startswith("cuda") else 0
        load = {**self.inner.load, "device": "cuda" if gpus else "cpu", "cache_root": None}
        (ray.data.from_items([{"key": k, "text": t} for k, t in items])
         .map_batches(ShardWriter, batch_size=SHARD_TEXTS, batch_format="numpy", concurrency=self.actors,
                      num_gpus=gpus, fn_constructor_kwargs={"load": load, "fingerprint": self.info.fingerprint,
                                                             "role": role, "cache_root": str(self.cache_root)})
         .materialize())
