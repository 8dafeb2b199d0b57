"""Any model mteb can load as an xbench encoder (`--model mteb:NAME`), so xbench runs it exactly as mteb would.

NAME is a model of mteb's registry or a hub id (through `mteb.get_model`), or a local sentence-transformers folder
(wrapped by mteb's `SentenceTransformerEncoderWrapper`, which needs no hub). The model receives what mteb hands it:
a DataLoader of text batches, a retrieval task's metadata and the prompt type (query / document), so its own
prompts and instructions apply. xbench ranks by dot product; a model that mteb scores by cosine gets unit vectors
(the same ranking), and one scored otherwise (MaxSim, euclidean) is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from xbench.errors import XbenchError
from xbench.io import hub_reachable
from xbench.models.base import ModelInfo, Role
from xbench.models.st import dir_fingerprint

PREFIX = "mteb:"
SPLIT, SUBSET = "test", "default"


def _task_metadata() -> Any:
    """The one retrieval task every text is encoded under: an embedding must not depend on the xbench task, since
    the cache shares it across tasks (an instruction model gets its generic retrieval instruction)."""
    from mteb import TaskMetadata  # lazy: optional extra xbench[mteb]

    return TaskMetadata(name="XbenchRetrieval", dataset={"path": "xbench", "revision": "1"},
                        description="Cross-lingual retrieval through xbench.", type="Retrieval", category="t2t",
                        modalities=["text"], eval_splits=[SPLIT], eval_langs=["eng-Latn"], main_score="ndcg_at_10")


class MtebEncoder:
    """Feeds texts to an mteb model's `encode` as mteb batches them; roles map to mteb's prompt types."""

    def __init__(self, model: Any, info: ModelInfo, *, normalize: bool, batch_size: int) -> None:
        from mteb.types import PromptType  # lazy: optional extra xbench[mteb]

        self.model = model
        self.info = info
        self.normalize = normalize
        self.batch_size = batch_size
        self._metadata = _task_metadata()
        self._prompt_types = {"query": PromptType.query, "doc": PromptType.document}

    def encode(self, texts: list[str], role: Role) -> np.ndarray:
        from datasets import Dataset  # lazy: heavy; only for mteb and hub data
        from torch.utils.data import DataLoader

        batches = DataLoader(Dataset.from_dict({"text": texts}), batch_size=self.batch_size)
        out = self.model.encode(batches, task_metadata=self._metadata, hf_split=SPLIT, hf_subset=SUBSET,
                                prompt_type=self._prompt_types[role], batch_size=self.batch_size,
                                show_progress_bar=False)
        if hasattr(out, "detach"):  # a torch tensor
            out = out.detach().float().cpu().numpy()
        emb = np.asarray(out, dtype=np.float32)
        if self.normalize:
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), np.finfo(np.float32).tiny)
        return emb


def _load(name: str, device: str) -> tuple[Any, str | None]:
    """(mteb model, folder content hash or None) for a local folder or a registry / hub name; every failure is one
    paragraph naming the model and the fix."""
    import mteb  # lazy: optional extra xbench[mteb]

    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file():
            raise XbenchError(f"--model {PREFIX}{name}: the folder is not a sentence-transformers model (no "
                              "modules.json); mteb wraps local folders of that kind only.")
        from sentence_transformers import SentenceTransformer  # lazy: heavy (torch); only when a model runs

        st = SentenceTransformer(str(path), device=device, local_files_only=True)
        return mteb.SentenceTransformerEncoderWrapper(st), dir_fingerprint(path, {"via": "mteb"})
    if path.exists() or name.startswith((".", "/", "~")):
        raise XbenchError(f"--model {PREFIX}{name}: no such model folder. Check the path.")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if not offline and not hub_reachable():
        raise XbenchError(f"--model {PREFIX}{name}: the Hugging Face hub is unreachable from here, and mteb loads "
                          f"{name} from it. Set HF_HUB_OFFLINE=1 if its weights are already in the Hugging Face "
                          f"cache, or download it where you have network (`hf download {name} --local-dir DIR`) and "
                          f"pass --model {PREFIX}DIR.")
    try:
        return mteb.get_model(name, device=device), None
    except Exception as exc:  # mteb, the hub client and the model's loader raise many types: all mean "not here"
        detail = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        raise XbenchError(f"--model {PREFIX}{name}: mteb could not load it ({detail}). Check the name against "
                          f"mteb's registry (`mteb.get_model_metas()`); offline, only models whose weights are in the "
                          f"Hugging Face cache load (with HF_HUB_OFFLINE=1), or download it where you have network "
                          f"and pass --model {PREFIX}DIR.") from None


def load_mteb_model(name: str, *, device: str, batch_size: int) -> MtebEncoder:
    """Load NAME through mteb; the fingerprint holds mteb's model name and revision (and a folder's content)."""
    try:
        import mteb  # lazy: optional extra xbench[mteb]
    except ImportError:
        raise XbenchError(f"--model {PREFIX}{name} needs mteb, an optional dependency: "
                          "pip install 'xbench[mteb]'.") from None
    from mteb.models.model_meta import ScoringFunction  # lazy: optional extra xbench[mteb]

    model, content = _load(name, device)
    meta = model.mteb_model_meta  # a local folder has no mteb name or revision: its content hash stands for them
    similarity = ScoringFunction(meta.similarity_fn_name or "cosine")  # mteb's own fallback is cosine
    if similarity not in (ScoringFunction.COSINE, ScoringFunction.DOT_PRODUCT):
        raise XbenchError(f"--model {PREFIX}{name}: mteb scores it by {similarity.value}; xbench ranks by dot "
                          "product (cosine for unit vectors), so it cannot evaluate this model.")
    settings = {"mteb_model": meta.name, "revision": meta.revision, "similarity": similarity.value,
                "normalize": similarity == ScoringFunction.COSINE, "dtype": "float32"}
    # loader_kwargs carry the model's mteb-side prompts and options: they change the embeddings
    identity = json.dumps([PREFIX + name, settings, meta.loader_kwargs, content], sort_keys=True,
                          default=lambda obj: getattr(obj, "__qualname__", type(obj).__qualname__))  # no addresses
    info = ModelInfo(name=PREFIX + name, kind="mteb", fingerprint=hashlib.sha256(identity.encode()).hexdigest()[:32],
                     card={"source": f"{Path(name).expanduser().resolve()} (content {content})" if content
                           else f"{PREFIX}{meta.name}@{meta.revision}",
                           "mteb_version": mteb.__version__, **settings})
    return MtebEncoder(model, info, normalize=settings["normalize"], batch_size=batch_size)
