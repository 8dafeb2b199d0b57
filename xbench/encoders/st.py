"""sentence-transformers encoders: a local ST directory, a plain transformers directory (with a pooling choice)
or, when online, a hub id. Prompts per role come from the model's own `prompts` (query / document)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from xbench.encoders import ModelInfo, Role
from xbench.errors import XbenchError

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


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub endpoint, so an offline run fails in milliseconds, not after retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


class SentenceTransformerEncoder:
    """Wraps a loaded SentenceTransformer; halves the batch size on out-of-memory and goes on."""

    def __init__(self, model: Any, info: ModelInfo, batch_size: int = 64) -> None:
        self.model = model
        self.info = info
        self.batch_size = batch_size

    def _prompt(self, role: Role) -> str | None:
        prompts = getattr(self.model, "prompts", None) or {}
        return next((name for name in PROMPT_NAMES[role] if name in prompts), None)

    def encode(self, texts: list[str], role: Role) -> np.ndarray:
        while True:
            try:
                out = self.model.encode(texts, prompt_name=self._prompt(role), batch_size=self.batch_size,
                                        convert_to_numpy=True, show_progress_bar=False)
                return np.asarray(out, dtype=np.float32)
            except (RuntimeError, MemoryError) as exc:
                if not _is_oom(exc) or self.batch_size == 1:
                    raise
                self.batch_size //= 2


def load_sentence_transformer(
    name: str, *, pooling: str | None, device: str, batch_size: int, card: dict[str, Any] | None = None,
) -> SentenceTransformerEncoder:
    """Load a local directory (ST or plain transformers) or a hub id; offline hub ids fail with the fix."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    path = Path(name).expanduser()
    settings = {"pooling": pooling, "dtype": "float32"}
    if path.is_dir():
        if (path / "modules.json").is_file():
            model = SentenceTransformer(str(path), device=device, local_files_only=True)
            kind = "sentence-transformers"
        elif (path / "config.json").is_file():
            transformer = Transformer(str(path))
            pool = Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling or "mean")
            model = SentenceTransformer(modules=[transformer, pool, Normalize()], device=device)
            kind = "transformers"
        else:
            raise XbenchError(
                f"--model {name}: the folder has neither modules.json (sentence-transformers) nor config.json "
                "(transformers). Point --model at a saved model folder."
            )
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
    info = ModelInfo(
        name=name, kind=kind, fingerprint=fingerprint,
        card={"source": source, "prompts": dict(getattr(model, "prompts", {}) or {}),
              "max_seq_length": model.max_seq_length, **settings, **(card or {})},
    )
    return SentenceTransformerEncoder(model, info, batch_size)
