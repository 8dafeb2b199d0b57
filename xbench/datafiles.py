"""Vendored data files: locate them and verify them against their sha256 manifest before anything reads them.

A damaged or missing file is an error that names the file; a wrong score from a damaged file is never possible.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from xbench.errors import XbenchError


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(manifest: Path) -> dict[str, str]:
    """Parse a `sha256sum` file into {file name: sha256}."""
    if not manifest.is_file():
        raise XbenchError(f"{manifest}: the data manifest is missing. Restore it from git (`git checkout -- {manifest}`).")
    entries = {}
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise XbenchError(f"{manifest}:{n}: expected '<sha256>  <file name>', got {line!r}.")
        entries[name.strip()] = digest
    return entries


@lru_cache(maxsize=None)
def verify_dir(directory: Path, manifest_name: str = "SHA256SUMS") -> str:
    """Check every file listed in the manifest; return the manifest's own sha256 (the data's identity)."""
    manifest = directory / manifest_name
    for name, expected in read_manifest(manifest).items():
        path = directory / name
        if not path.is_file():
            raise XbenchError(
                f"{path}: data file listed in {manifest} is missing. Restore it (`git checkout -- {path}`) "
                "or re-clone the project."
            )
        actual = sha256_file(path)
        if actual != expected:
            raise XbenchError(
                f"{path}: sha256 {actual[:12]}... does not match {expected[:12]}... in {manifest}: the file is "
                f"damaged or was edited. Restore it with `git checkout -- {path}`."
            )
    return sha256_file(manifest)


def load_json(path: Path) -> Any:
    """Read a (gzip-compressed) JSON data file, naming the file when it cannot be parsed."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise XbenchError(f"{path}: data file not found; check the task's `source.dir` and `languages`.") from None
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise XbenchError(f"{path}: cannot be read as JSON ({exc}); the file is damaged, restore it.") from None
