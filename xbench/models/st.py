"""sentence-transformers encoders: a local ST directory, a plain transformers directory (with a pooling choice)
or, when online, a hub id. Prompts per role come from the model's own `prompts` (query / document).

Speed: texts are tokenised once, sorted by token count and batched by a token budget (`plan_batches`), so a batch
holds texts of near-equal length and padding stays within a few percent of the real tokens (batches of a fixed
number of texts sorted by characters held 1.54 slots per real token on XQuAD-R's mixed scripts). One process per
listed device (the sentence-transformers multi-process pool), float16 / bfloat16 when asked, and a batch size
that halves on out-of-memory and is remembered per model, device and dtype.

A model folder is loaded on its first encode, not before: its fingerprint hashes the files, and what the loaded
model says about itself (prompts, max_seq_length) is kept per fingerprint in the cache, so a run whose vectors
are all cached never loads the weights.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xbench.errors import XbenchError
from xbench.io import hub_reachable, write_atomic
from xbench.models.base import ModelInfo, Role

PROMPT_NAMES: dict[Role, tuple[str, ...]] = {"query": ("query",), "doc": ("document", "passage", "doc")}


def prompt_name(prompts: dict[str, str], role: Role) -> str | None:
    """The name of the model's prompt for `role` among its `prompts` (None: the model has none for it)."""
    return next((name for name in PROMPT_NAMES[role] if name in prompts), None)


def dir_fingerprint(path: Path, extra: dict[str, Any]) -> str:
    """Content hash of every file of a model directory plus the settings that change its embeddings."""
    digest = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(str(f.relative_to(path)).encode())
        with f.open("rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()[:32]


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


class BatchSizes:
    """Batch sizes that had to shrink, per (model fingerprint, device, dtype), kept in a JSON file of the cache:
    a model that ran out of memory once starts the next run at the size that worked."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, int]:
        try:
            return {k: int(v) for k, v in json.loads(self.path.read_text(encoding="utf-8")).items()}
        except (OSError, ValueError, AttributeError):
            return {}  # missing or damaged: start from the asked size, nothing is lost

    def get(self, key: str, asked: int) -> int:
        return min(asked, self._read().get(key, asked))

    def shrunk(self, key: str, size: int) -> None:
        write_atomic(self.path, json.dumps({**self._read(), key: size}, indent=2, sort_keys=True) + "\n")


def plan_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Text indices in batches by a token budget: sorted by token count (longest first), each batch takes as many
    texts as fit batch_size x (mean count) token slots padded to its longest text, at least one.

    So a batch holds near-equal lengths (little padding), `batch_size` texts on average as before (short texts
    more, long ones fewer), and never more slots than batch_size texts of the longest length: the peak memory of
    the old batching at the same batch size, which is what the out-of-memory halving adjusts."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if not len(lengths):
        return []
    order = np.argsort(-lengths, kind="stable")
    budget = batch_size * float(lengths.mean())
    batches, start = [], 0
    while start < len(order):
        take = max(1, int(budget // max(int(lengths[order[start]]), 1)))
        batches.append(order[start : start + take])
        start += take
    return batches


class ModelCards:
    """What a loaded model says about itself (prompts, max_seq_length), one JSON file per fingerprint in the cache.
    Read back, it lets a later run describe the model in its results without loading the weights. It is recorded
    from the loaded model rather than parsed from the folder, because sentence-transformers resolves max_seq_length
    through several config files and the tokenizer's own limit; a parse that disagreed would put a wrong card into
    results. The fingerprint hashes every file of the folder, so a record never outlives the files it describes."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "model-cards"

    def get(self, fingerprint: str) -> dict[str, Any] | None:
        try:
            card = json.loads((self.dir / f"{fingerprint}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing or damaged: the model is loaded once more and the card recorded again
        return card if isinstance(card, dict) and {"prompts", "max_seq_length"} <= set(card) else None

    def put(self, fingerprint: str, card: dict[str, Any]) -> None:
        write_atomic(self.dir / f"{fingerprint}.json", json.dumps(card, indent=2, sort_keys=True) + "\n")


def _described(model: Any) -> dict[str, Any]:
    return {"prompts": dict(getattr(model, "prompts", {}) or {}), "max_seq_length": model.max_seq_length}


def _rows(features: dict[str, Any], idx: np.ndarray, cols: slice, n: int, width: int) -> dict[str, Any]:
    """One batch of features tokenised for all `n` texts: per-text tensors keep the rows `idx`, and the columns
    `cols` where they span the padded width; anything else (a prompt length) is shared as is."""
    import torch  # lazy: heavy; only when a model runs

    out = {}
    for key, value in features.items():
        if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == n:
            value = value[torch.from_numpy(idx)]
            if value.ndim >= 2 and value.shape[1] == width:
                value = value[:, cols]
        out[key] = value
    return out


class SentenceTransformerEncoder:
    """Wraps a SentenceTransformer, given loaded (`model`) or as the function that loads it (`loader`, called on the
    first encode). `load` holds the arguments of `load_sentence_transformer` that made it, so worker processes
    elsewhere (Ray actors) can load the same model."""

    def __init__(self, model: Any, info: ModelInfo, batch_size: int = 64, *, loader: Callable[[], Any] | None = None,
                 load: dict[str, Any] | None = None, devices: tuple[str, ...] = (),
                 sizes: BatchSizes | None = None) -> None:
        if model is None and loader is None:
            raise ValueError("SentenceTransformerEncoder needs a model or a loader")
        self._model = model
        self._loader = loader
        self.info = info
        self.load = load or {}
        self.devices = devices
        self.sizes = sizes
        self._size_key = f"{info.fingerprint}@{','.join(devices) or self.load.get('device', 'cpu')}"
        self.batch_size = sizes.get(self._size_key, batch_size) if sizes else batch_size
        self._pool: dict[str, Any] | None = None
        self._token_rows: bool | None = None  # does the model's preprocess give padded token rows? (probed once)

    @property
    def model(self) -> Any:
        """The SentenceTransformer, loaded on first use."""
        if self._model is None:
            assert self._loader is not None  # __init__ requires one of the two
            self._model = self._loader()
        return self._model

    def _prompt(self, role: Role) -> str | None:
        return prompt_name(getattr(self.model, "prompts", None) or {}, role)

    def _process_pool(self) -> dict[str, Any] | None:
        """One worker process per device, started on first use and stopped at exit."""
        if len(self.devices) < 2:
            return None
        if self._pool is None:
            self._pool = self.model.start_multi_process_pool(list(self.devices))
            atexit.register(self.close)
        return self._pool

    def close(self) -> None:
        """Stop the worker processes, if any were started (at exit at the latest)."""
        if self._pool is not None:
            atexit.unregister(self.close)
            self.model.stop_multi_process_pool(self._pool)
            self._pool = None

    def encode(self, texts: list[str], role: Role) -> np.ndarray:
        while True:
            try:
                return self._encode(texts, self._prompt(role))
            except (RuntimeError, MemoryError) as exc:
                if not _is_oom(exc) or self.batch_size == 1:
                    raise
                self.batch_size //= 2
                if self.sizes:
                    self.sizes.shrunk(self._size_key, self.batch_size)

    def _encode(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        """Token-budget batches (`plan_batches`) through the model's own preprocess and forward, tokenised once.
        The multi-process pool, and models whose features are not padded token rows (static embeddings), get
        sentence-transformers' own batching."""
        import torch  # lazy: heavy; only when a model runs
        from sentence_transformers.util import batch_to_device

        model, pool = self.model, self._process_pool()
        prompt = model.prompts.get(prompt_name) if prompt_name is not None else None
        if self._token_rows is None and texts:  # one text tells, so a static model is not tokenised twice
            mask = model.preprocess(texts[:1], prompt=prompt).get("attention_mask")
            self._token_rows = isinstance(mask, torch.Tensor) and mask.ndim == 2 and len(mask) == 1
        if pool is not None or not texts or not self._token_rows:
            chunk = pool_chunk(len(texts), len(self.devices), self.batch_size) if pool is not None else None
            return np.asarray(model.encode(texts, prompt_name=prompt_name, batch_size=self.batch_size,
                                           convert_to_numpy=True, show_progress_bar=False, pool=pool,
                                           chunk_size=chunk), dtype=np.float32)
        features = model.preprocess(texts, prompt=prompt)
        mask = features["attention_mask"]
        present = mask.bool()
        out: np.ndarray | None = None
        model.eval()
        with torch.inference_mode():
            for idx in plan_batches(present.sum(dim=1).numpy(), self.batch_size):
                used = torch.nonzero(present[torch.from_numpy(idx)].any(dim=0)).flatten().tolist()
                cols = slice(used[0], used[-1] + 1) if used else slice(0, 0)  # right or left padding alike
                batch = batch_to_device(_rows(features, idx, cols, len(texts), mask.shape[1]), model.device)
                vectors = model(batch)["sentence_embedding"]
                if model.truncate_dim is not None:
                    vectors = vectors[:, : model.truncate_dim]
                if out is None:
                    out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
                out[idx] = vectors.float().cpu().numpy()
        assert out is not None  # texts is not empty here: the mask has a row per text
        return out


POOL_CHUNK_BATCHES = 8


def pool_chunk(texts: int, devices: int, batch_size: int) -> int:
    """Texts per chunk the multi-process pool hands a device: whole batches, enough to keep it busy (its share of
    the call, up to POOL_CHUNK_BATCHES batches), yet several chunks per device on a big call so that a fast device
    takes more of them. sentence-transformers' default (a tenth of a device's share) cuts a 2,048-text call over
    8 GPUs into 26-text chunks: batches of 26, and a queue round trip each."""
    share = math.ceil(texts / max(devices, 1))
    return batch_size * max(1, min(POOL_CHUNK_BATCHES, math.ceil(share / batch_size)))


DTYPES = ("float32", "float16", "bfloat16")


def _open_folder(path: Path, name: str, pooling: str | None, device: str, dtype: str) -> Any:
    """Load a local ST or plain transformers folder; any failure is a damaged folder, named with the fix."""
    import torch  # lazy: heavy; only when a model runs
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    try:
        if (path / "modules.json").is_file():
            model = SentenceTransformer(str(path), device=device, local_files_only=True)
        else:
            transformer = Transformer(str(path))
            pool = Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling or "mean")
            model = SentenceTransformer(modules=[transformer, pool, Normalize()], device=device)
    except Exception as exc:  # safetensors, torch, tokenizers raise their own types; all mean a damaged folder
        raise XbenchError(f"--model {name}: the model folder {path.resolve()} cannot be loaded "
                          f"({type(exc).__name__}: {str(exc)[:200]}); a "
                          "file in it (weights, config or tokenizer) is damaged or incomplete. Save or "
                          "download the model again.") from None
    if dtype != "float32":
        model.to(getattr(torch, dtype))
    return model


def _open_hub(name: str, device: str, dtype: str) -> Any:
    """A hub id, where the hub is reachable; offline it fails with the fix."""
    import torch  # lazy: heavy; only when a model runs
    from sentence_transformers import SentenceTransformer

    fix = (f"Offline, download it where you have network (`hf download {name} --local-dir DIR`) and pass "
           "--model DIR; `xbench models` lists the built-in models that need no download.")
    if not hub_reachable():
        raise XbenchError(f"--model {name}: not a local folder or a built-in model, and the Hugging Face hub "
                          f"is unreachable from here. {fix}")
    try:
        model = SentenceTransformer(name, device=device)
    except Exception as exc:  # the hub client raises many types; all mean "could not get it"
        raise XbenchError(f"--model {name}: could not be loaded from the Hugging Face hub "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). {fix}") from None
    if dtype != "float32":
        model.to(getattr(torch, dtype))
    return model


def load_sentence_transformer(
    name: str, *, pooling: str | None, device: str, batch_size: int, card: dict[str, Any] | None = None,
    dtype: str = "float32", devices: tuple[str, ...] = (), cache_root: Path | None = None,
) -> SentenceTransformerEncoder:
    """A local directory (ST or plain transformers) or a hub id; offline hub ids fail with the fix.
    `devices` (two or more) encode with one process per device; `cache_root` keeps the batch sizes that fit and
    the cards of loaded models: a folder whose card is recorded there is loaded on its first encode only."""
    if dtype not in DTYPES:
        raise XbenchError(f"--dtype {dtype}: use one of {', '.join(DTYPES)}.")
    if dtype == "float16" and not any(d.startswith("cuda") for d in (device, *devices)):
        raise XbenchError("--dtype float16: half precision runs on a GPU only; on the CPU use bfloat16 or float32.")
    path = Path(name).expanduser()
    settings = {"pooling": pooling, "dtype": dtype}
    cards = ModelCards(cache_root) if cache_root else None
    model: Any = None
    loader: Callable[[], Any] | None = None
    if path.is_dir():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise XbenchError(
                f"--model {name}: the folder has neither modules.json (sentence-transformers) nor config.json "
                "(transformers). Point --model at a saved model folder."
            )
        kind = "sentence-transformers" if (path / "modules.json").is_file() else "transformers"
        fingerprint = dir_fingerprint(path, settings)
        source = str(path.resolve())
        trained = path / "xbench_card.json"  # written by `xbench train`: results carry how the model was trained
        if trained.is_file():
            card = {"training": json.loads(trained.read_text(encoding="utf-8")), **(card or {})}
        described = cards.get(fingerprint) if cards else None
        if described is None:
            model = _open_folder(path, name, pooling, device, dtype)
            described = _described(model)
            if cards:
                cards.put(fingerprint, described)
        else:
            loader = functools.partial(_open_folder, path, name, pooling, device, dtype)
    elif path.exists() or name.startswith((".", "/", "~")):
        raise XbenchError(f"--model {name}: no such model folder. Check the path, or use a built-in name "
                          "(`xbench models` lists them).")
    else:
        model = _open_hub(name, device, dtype)  # the fingerprint needs the revision the hub served
        kind = "sentence-transformers (hub)"
        revision = getattr(model.model_card_data, "base_model_revision", None) or "unknown"
        fingerprint = hashlib.sha256(json.dumps([name, revision, settings]).encode()).hexdigest()[:32]
        source = f"{name}@{revision}"
        described = _described(model)
    info = ModelInfo(name=name, kind=kind, fingerprint=fingerprint,
                     card={"source": source, "prompts": described["prompts"],
                           "max_seq_length": described["max_seq_length"], **settings, **(card or {})})
    load = {"name": name, "pooling": pooling, "device": device, "batch_size": batch_size, "dtype": dtype}
    sizes = BatchSizes(cache_root / "batch_sizes.json") if cache_root else None
    return SentenceTransformerEncoder(model, info, batch_size, loader=loader, load=load, devices=devices, sizes=sizes)
