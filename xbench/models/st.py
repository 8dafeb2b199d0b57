"""sentence-transformers encoders: a local ST directory, a plain transformers directory (with a pooling choice)
or, when online, a hub id. Prompts per role come from the model's own `prompts` (query / document).

Speed: one process per listed device (the sentence-transformers multi-process pool), float16 / bfloat16 when
asked, and a batch size that halves on out-of-memory and is remembered per model, device and dtype.
"""

from __future__ import annotations

import atexit
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from xbench.errors import XbenchError
from xbench.io import hub_reachable, write_atomic
from xbench.models.base import ModelInfo, Role

PROMPT_NAMES: dict[Role, tuple[str, ...]] = {"query": ("query",), "doc": ("document", "passage", "doc")}


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


class SentenceTransformerEncoder:
    """Wraps a loaded SentenceTransformer. `load` holds the arguments of `load_sentence_transformer` that made it,
    so worker processes elsewhere (Ray actors) can load the same model."""

    def __init__(self, model: Any, info: ModelInfo, batch_size: int = 64, *, load: dict[str, Any] | None = None,
                 devices: tuple[str, ...] = (), sizes: BatchSizes | None = None) -> None:
        self.model = model
        self.info = info
        self.load = load or {}
        self.devices = devices
        self.sizes = sizes
        self._size_key = f"{info.fingerprint}@{','.join(devices) or self.load.get('device', 'cpu')}"
        self.batch_size = sizes.get(self._size_key, batch_size) if sizes else batch_size
        self._pool: dict[str, Any] | None = None

    def _prompt(self, role: Role) -> str | None:
        prompts = getattr(self.model, "prompts", None) or {}
        return next((name for name in PROMPT_NAMES[role] if name in prompts), None)

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
                out = self.model.encode(texts, prompt_name=self._prompt(role), batch_size=self.batch_size,
                                        convert_to_numpy=True, show_progress_bar=False, pool=self._process_pool())
                return np.asarray(out, dtype=np.float32)
            except (RuntimeError, MemoryError) as exc:
                if not _is_oom(exc) or self.batch_size == 1:
                    raise
                self.batch_size //= 2
                if self.sizes:
                    self.sizes.shrunk(self._size_key, self.batch_size)


DTYPES = ("float32", "float16", "bfloat16")


def load_sentence_transformer(
    name: str, *, pooling: str | None, device: str, batch_size: int, card: dict[str, Any] | None = None,
    dtype: str = "float32", devices: tuple[str, ...] = (), cache_root: Path | None = None,
) -> SentenceTransformerEncoder:
    """Load a local directory (ST or plain transformers) or a hub id; offline hub ids fail with the fix.
    `devices` (two or more) encode with one process per device; `cache_root` keeps the batch sizes that fit."""
    import torch  # lazy: heavy; only when a model runs
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    if dtype not in DTYPES:
        raise XbenchError(f"--dtype {dtype}: use one of {', '.join(DTYPES)}.")
    if dtype == "float16" and not any(d.startswith("cuda") for d in (device, *devices)):
        raise XbenchError("--dtype float16: half precision runs on a GPU only; on the CPU use bfloat16 or float32.")
    path = Path(name).expanduser()
    settings = {"pooling": pooling, "dtype": dtype}
    if path.is_dir():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise XbenchError(
                f"--model {name}: the folder has neither modules.json (sentence-transformers) nor config.json "
                "(transformers). Point --model at a saved model folder."
            )
        try:
            if (path / "modules.json").is_file():
                model = SentenceTransformer(str(path), device=device, local_files_only=True)
                kind = "sentence-transformers"
            else:
                transformer = Transformer(str(path))
                pool = Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling or "mean")
                model = SentenceTransformer(modules=[transformer, pool, Normalize()], device=device)
                kind = "transformers"
        except Exception as exc:  # safetensors, torch, tokenizers raise their own types; all mean a damaged folder
            raise XbenchError(f"--model {name}: the model folder {path.resolve()} cannot be loaded "
                              f"({type(exc).__name__}: {str(exc)[:200]}); a "
                              "file in it (weights, config or tokenizer) is damaged or incomplete. Save or "
                              "download the model again.") from None
        fingerprint = dir_fingerprint(path, settings)
        source = str(path.resolve())
        trained = path / "xbench_card.json"  # written by `xbench train`: results carry how the model was trained
        if trained.is_file():
            card = {"training": json.loads(trained.read_text(encoding="utf-8")), **(card or {})}
    elif path.exists() or name.startswith((".", "/", "~")):
        raise XbenchError(f"--model {name}: no such model folder. Check the path, or use a built-in name "
                          "(`xbench models` lists them).")
    else:
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
        kind = "sentence-transformers (hub)"
        revision = getattr(model.model_card_data, "base_model_revision", None) or "unknown"
        fingerprint = hashlib.sha256(json.dumps([name, revision, settings]).encode()).hexdigest()[:32]
        source = f"{name}@{revision}"
    if dtype != "float32":
        model.to(getattr(torch, dtype))
    info = ModelInfo(
        name=name, kind=kind, fingerprint=fingerprint,
        card={"source": source, "prompts": dict(getattr(model, "prompts", {}) or {}),
              "max_seq_length": model.max_seq_length, **settings, **(card or {})},
    )
    load = {"name": name, "pooling": pooling, "device": device, "batch_size": batch_size, "dtype": dtype}
    sizes = BatchSizes(cache_root / "batch_sizes.json") if cache_root else None
    return SentenceTransformerEncoder(model, info, batch_size, load=load, devices=devices, sizes=sizes)
