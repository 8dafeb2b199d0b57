"""Model folders that xbench builds once into the model cache (me5-small from its 4-bit weights, its int8 export).

A build is written in a temporary sibling folder and renamed onto its destination at the end, so an interrupted
build never leaves half a model where a later run would load it; a finished build is recognised by its provenance
file, written last."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xbench.errors import XbenchError
from xbench.io import scratch

BUILD_FILE = "xbench_build.json"


def is_built(dest: Path) -> bool:
    return (dest / BUILD_FILE).is_file()


def read_build(dest: Path) -> dict[str, Any]:
    """The provenance a build wrote into `dest` (what it was made from, with which versions)."""
    build: dict[str, Any] = json.loads((dest / BUILD_FILE).read_text(encoding="utf-8"))
    return build


def already_built(dest: Path, name: str) -> bool:
    """True when `dest` holds a complete build of `name`; a folder there without one is refused, naming the fix."""
    if is_built(dest):
        return True
    if dest.exists():
        raise XbenchError(f"{dest} exists but is not a complete {name} build (no {BUILD_FILE}). "
                          "Fix: delete that folder and run again; xbench rebuilds it.")
    return False


@contextmanager
def building(dest: Path) -> Iterator[Path]:
    """A scratch folder beside `dest`; what the block writes to `<scratch>/model` (its provenance file last) is
    renamed onto `dest` when the block ends without error. A concurrent build that finished first wins."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = scratch(dest.parent, f".{dest.name}.building-")
    try:
        yield work
        try:
            os.rename(work / "model", dest)
        except OSError:
            if not is_built(dest):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
