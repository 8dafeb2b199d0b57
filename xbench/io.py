"""Vendored data files: locate them and verify them against their sha256 manifest before anything reads them.

A damaged or missing file is an error that names the file; a wrong score from a damaged file is never possible.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import shutil
import socket
import tempfile
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from xbench.errors import XbenchError


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(manifest: Path) -> dict[str, str]:
    """Parse a `sha256sum` file into {file name: sha256}; an empty one would verify nothing, so it is refused."""
    if not manifest.is_file():
        raise XbenchError(f"{manifest}: the data manifest is missing. "
                          f"Restore it from git (`git checkout -- {manifest}`).")
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise XbenchError(f"{manifest}: cannot read the data manifest ({exc}); restore it from git.") from None
    entries = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise XbenchError(f"{manifest}:{n}: expected '<sha256>  <file name>', got {line!r}.")
        entries[name.strip()] = digest
    if not entries:
        raise XbenchError(f"{manifest}: the data manifest lists no file, so nothing could be verified. List every "
                          f"data file: `cd {manifest.parent} && sha256sum FILE... > {manifest.name}`.")
    return entries


@cache
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


def write_atomic(path: Path, text: str) -> None:
    """Temp file in the target folder, fsync, rename: readers see the old file or the new one, never half. A full
    disk, a read-only folder or a target that is a folder is an error naming the path, and leaves no temp file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise XbenchError(f"{path.parent}: cannot write there ({exc.strerror or exc}); choose a writable "
                          "folder (e.g. --output, --out).") from None
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        what = "it is a folder" if path.is_dir() else exc.strerror or str(exc)
        raise XbenchError(f"{path}: cannot write the file ({what}); free disk space, or choose a writable path "
                          "that is not a folder.") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def scratch(parent: Path, prefix: str, suffix: str = "", *, folder: bool = True) -> Path:
    """A new temporary folder (or empty file) in `parent` for a build that is renamed into place once complete.

    A killed build (SIGKILL, a lost node) cannot clean up, and what it leaves can be large: a BM25 build's spill
    holds 12 bytes per (passage, term) pair, a half-converted corpus up to a whole Parquet file, gigabytes for a
    MIRACL language. So the name records its builder (`<prefix><pid>+<host>+<random><suffix>`), and the leftovers
    of earlier builds with the same prefix whose process is gone from this host are removed before a new one
    starts. Another host's (a shared cache) are left alone: their builder may be alive."""
    host = socket.gethostname()
    for old in parent.glob(f"{glob.escape(prefix)}*+*+*{glob.escape(suffix)}"):
        pid, _, rest = old.name[len(prefix):].partition("+")
        if rest.partition("+")[0] == host and pid.isdigit() and not _alive(int(pid)):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    mine = f"{prefix}{os.getpid()}+{host}+"
    if folder:
        return Path(tempfile.mkdtemp(dir=parent, prefix=mine, suffix=suffix))
    fd, path = tempfile.mkstemp(dir=parent, prefix=mine, suffix=suffix)
    os.close(fd)
    return Path(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub endpoint, so an offline run fails in milliseconds, not after retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    from huggingface_hub import constants  # lazy: only when the hub is probed

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True
