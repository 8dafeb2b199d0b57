"""Encoding and searching beyond one machine through Ray (`pip install 'xbench[ray]'`); docs/ray.md has the setup.

Encoding runs on Ray Data actors: one per GPU (or per CPU slot), each loading the model once. For a task's texts
(`fill`) each actor writes its batches as content-addressed cache shards; for a streamed corpus (`fill_corpus`)
each actor reads its ranges of passages from the corpus itself and writes them as vector shards. Search
(`search_shards`) runs one Ray task per vector shard, each memory-mapping its file and returning the shard's own
top k, merged on the driver. The model folder, the corpus and the cache must sit at the same paths on every
node (a shared filesystem): workers read and write them directly, and only ranges, queries and top-k lists
travel through Ray. Shards are written atomically under names no other writer uses for other rows, so workers
never overwrite each other. Nothing here schedules or retries by hand: Ray does both.

Results equal a single-process run's: workers encode the same texts in the same chunks with the same model
(fingerprint checked), and search with the same `exact_search` per shard; the top k of every shard keeps its
ties at the cut, so the merged top k is the one `exact_search` gives over all shards.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from xbench.errors import XbenchError
from xbench.models.base import ModelInfo, Role
from xbench.models.cache import SHARD_TEXTS, EmbeddingStore
from xbench.models.st import SentenceTransformerEncoder, load_sentence_transformer
from xbench.models.vectors import VectorShards
from xbench.retrieval.stream import TopK, exact_search
from xbench.tasks.taskdata import CorpusSource


def _node() -> str:
    """The Ray node this worker runs on: what ran where."""
    import ray  # lazy: optional extra xbench[ray]

    return str(ray.get_runtime_context().get_node_id())


class _ModelActor:
    """A Ray actor holding the model, loaded once; a worker that loads other weights (a different folder behind
    the same path) is refused, so the cache never mixes two models."""

    def __init__(self, load: dict[str, Any], fingerprint: str) -> None:
        self.encoder = load_sentence_transformer(**load)
        if self.encoder.info.fingerprint != fingerprint:
            raise XbenchError(f"{load['name']}: a Ray worker loaded a different model (fingerprint "
                              f"{self.encoder.info.fingerprint}, expected {fingerprint}); share the model folder.")


class ShardWriter(_ModelActor):
    """Encodes each batch of (key, text) items it gets and stores it as one content-addressed cache shard."""

    def __init__(self, load: dict[str, Any], fingerprint: str, role: Role, cache_root: str) -> None:
        super().__init__(load, fingerprint)
        self.role = role
        self.store = EmbeddingStore(Path(cache_root), fingerprint, role)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys = batch["key"].tolist()
        self.store.put(keys, self.encoder.encode(batch["text"].tolist(), self.role))
        return {"encoded": np.array([len(keys)])}


class RangeWriter(_ModelActor):
    """Encodes corpus ranges [start, stop): reads the passages from the corpus, stores the vectors as one shard."""

    def __init__(self, load: dict[str, Any], fingerprint: str, corpus: CorpusSource, shards: VectorShards) -> None:
        super().__init__(load, fingerprint)
        self.corpus, self.shards = corpus, shards

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        encoded = []
        for start, stop in zip(batch["start"].tolist(), batch["stop"].tolist()):
            position, texts = next(iter(self.corpus.batches(stop - start, start)))
            if position != start or len(texts) != stop - start:  # the vectors would be stored against other rows
                raise XbenchError(f"{self.shards.dir}: the corpus gave {len(texts)} passages from row {position} "
                                  f"for rows {start}..{stop}; the corpus on this Ray node differs from the "
                                  "driver's: put it on a filesystem every node sees.")
            self.shards.put(start, self.encoder.encode(texts, "doc"))
            encoded.append(stop - start)
        return {"encoded": np.array(encoded), "node": np.array([_node()] * len(encoded))}


def _search_file(queries: np.ndarray, path: str, start: int, rows: int, k: int) -> tuple[TopK, str]:
    """One shard's exact top k (a Ray task): corpus rows [start, start + rows) are the last `rows` rows of the
    file (VectorShards.shards cuts overlapping shards at their front)."""
    matrix = np.load(path, mmap_mode="r")
    return exact_search(queries, [(start, matrix[len(matrix) - rows:])], k), _node()


class RayEncoder:
    """The same model (same fingerprint, same cache entries) with its encoding and corpus search spread over a
    Ray cluster.

    `address` is passed to `ray.init`: "auto" joins a running cluster, "local" starts one on this machine.
    `placement` records what the last `fill_corpus` or `search_shards` did where: corpus rows per Ray node id.
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
        self.placement: dict[str, int] = {}

    def encode(self, texts: list[str], role: Role) -> np.ndarray:
        """Small jobs (and anything outside the cache) stay local."""
        return self.inner.encode(texts, role)

    def _connect(self) -> None:
        import ray  # lazy: optional extra xbench[ray]

        if not ray.is_initialized():
            ray.init(address=None if self.address == "local" else self.address, ignore_reinit_error=True,
                     log_to_driver=False)

    def _actors(self, actor: type, **kwargs: Any) -> dict[str, Any]:
        """map_batches arguments for `self.actors` actors of `actor`, each with the model: one GPU each when the
        model runs on CUDA, one CPU slot otherwise."""
        gpus = 1 if self.inner.load.get("device", "cpu").startswith("cuda") else 0
        load = {**self.inner.load, "device": "cuda" if gpus else "cpu", "cache_root": None}
        return {"fn": actor, "batch_format": "numpy", "concurrency": self.actors, "num_gpus": gpus,
                "fn_constructor_kwargs": {"load": load, "fingerprint": self.info.fingerprint, **kwargs}}

    def fill(self, items: list[tuple[str, str]], role: Role) -> None:
        """Encode (key, text) pairs on the cluster, one shard per batch, straight into the cache."""
        import ray.data  # lazy: optional extra xbench[ray]

        self._connect()
        (ray.data.from_items([{"key": k, "text": t} for k, t in items])
         .map_batches(**self._actors(ShardWriter, role=role, cache_root=str(self.cache_root)), batch_size=SHARD_TEXTS)
         .materialize())

    def fill_corpus(self, corpus: CorpusSource, shards: VectorShards, desc: str) -> int:
        """Encode the corpus rows `shards` lacks on the cluster, in the chunks a local `VectorShards.fill` uses
        (each gap cut every `shards.shard_rows` rows), one range per actor call; returns the texts encoded."""
        import ray.data  # lazy: optional extra xbench[ray]

        size = shards.shard_rows
        ranges = [{"start": s, "stop": min(s + size, b)} for a, b in shards.missing() for s in range(a, b, size)]
        self.placement = {}
        if not ranges:
            return 0
        self._connect()
        done: Counter[str] = Counter()
        # one block per range, so that every actor gets work (a block goes to one actor)
        out = (ray.data.from_items(ranges, override_num_blocks=len(ranges))
               .map_batches(**self._actors(RangeWriter, corpus=corpus, shards=shards), batch_size=1))
        with tqdm(total=sum(r["stop"] - r["start"] for r in ranges), desc=desc, unit="text") as bar:
            for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
                for node, n in zip(batch["node"].tolist(), batch["encoded"].tolist()):
                    done[node] += n
                    bar.update(n)
        self.placement = dict(done)
        return sum(done.values())

    def search_shards(self, queries: np.ndarray, shards: VectorShards, k: int) -> TopK:
        """Exact top k of every query over the stored vectors: one Ray task per shard file (the queries shipped
        once through the object store), merged here as they finish; equals `exact_search` over `shards.shards()`."""
        import ray  # lazy: optional extra xbench[ray]

        self._connect()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        shared = ray.put(queries)
        search = ray.remote(_search_file).options(num_cpus=1, scheduling_strategy="SPREAD")
        pending = {}
        for start, matrix in shards.shards():
            if not isinstance(matrix, np.memmap) or matrix.filename is None:
                raise XbenchError(f"{shards.dir}: the shard of rows {start}.. is not memory-mapped from a file, so "
                                  "Ray workers cannot read it.")
            pending[search.remote(shared, str(matrix.filename), start, len(matrix), k)] = len(matrix)
        top, done = TopK(len(queries), k), Counter[str]()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            part, node = ray.get(ready[0])
            top.merge(part)
            done[node] += pending.pop(ready[0])
        self.placement = dict(done)
        return top
