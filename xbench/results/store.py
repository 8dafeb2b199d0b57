"""Results files on disk: where a (model, task) result lives, atomic saves, validated loads, whole folders.

Every read goes through `read_json`, which refuses a file over `MAX_BYTES` or nested deeper than `MAX_DEPTH`
before parsing it (a hostile file must not exhaust memory or the interpreter's recursion limit), and refuses
NaN and infinities, which JSON does not have and no aggregate can be.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from pydantic import ValidationError

from xbench.errors import XbenchError
from xbench.io import write_atomic
from xbench.results.schema import SCHEMA_PATH, SCHEMA_VERSION, ResultFile

MAX_BYTES: Final = 64 << 20  # the largest shipped results file (XQuAD-R, bm25) is ~4 MB
MAX_DEPTH: Final = 64  # a results file nests 6 deep; model cards a little more
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_CHUNK = 1 << 22


def model_slug(name: str) -> str:
    """A safe folder name for a model: no path separators or traversal, whatever the name says."""
    base = Path(name.rstrip("/\\")).name or name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "model"
    return slug[:80]


def _lang_slug(lang: str) -> str:
    """A language code as a file-name part: no separator of the name (`.`, `+`) or of a path."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", lang).strip("_")[:20] or "lang"


def language_subset(languages: Sequence[str], full_languages: Sequence[str] | None) -> list[str] | None:
    """`languages` when they are fewer than the task's `full_languages` (a `--languages` run), else None: a full
    run. None for `full_languages` means the caller does not know them: the plain path, as before."""
    if full_languages is None or set(languages) >= set(full_languages):
        return None
    return list(languages)


def result_path(out_dir: Path, model_name: str, task: str, subset: Sequence[str] | None = None) -> Path:
    """OUT/<model>/<task>.json for a run on all of the task's languages; a run on a `subset` of them
    (`xbench run --languages`) is stored beside it, never over it: OUT/<model>/<task>.<lang>+<lang>.json, the
    languages in the task's order (`tiny.en+de.json`)."""
    langs = "".join(f"{'+' if i else '.'}{_lang_slug(lang)}" for i, lang in enumerate(subset or ()))
    return out_dir / model_slug(model_name) / f"{model_slug(task)}{langs}.json"


def dumps(result: ResultFile) -> str:
    """The file's text: absent optional fields are left out, never written as null."""
    return result.model_dump_json(exclude_none=True)


def save(result: ResultFile, path: Path) -> None:
    write_atomic(path, dumps(result))


def nesting_depth(data: bytes) -> int:
    """The deepest bracket nesting outside JSON strings, found with bytes operations and numpy (no recursion, no
    per-character Python loop): escaped backslashes, then escaped quotes are dropped, so that every remaining
    quote opens or closes a string, and only the brackets between strings count."""
    plain = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(plain.translate(None, _NOT_STRUCTURE).split(b'"')[::2])
    depth = deepest = 0
    for start in range(0, len(outside), _CHUNK):
        chunk = np.frombuffer(outside, np.uint8, count=min(_CHUNK, len(outside) - start), offset=start)
        walk = depth + np.cumsum(np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1), dtype=np.int64)
        deepest, depth = max(deepest, int(walk.max())), int(walk[-1])
    return deepest


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def read_json(path: Path) -> Any:
    """The parsed JSON of a results file, within the size and depth limits; every problem names the file."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise XbenchError(f"{path}: {size / 2**20:.1f} MiB, over the {MAX_BYTES >> 20} MiB limit of a results "
                              "file; a genuine file is far smaller: re-run the evaluation rather than edit it.")
        data = path.read_bytes()
    except OSError as exc:
        raise XbenchError(f"{path}: cannot read ({exc.strerror or exc}); pass a readable results file.") from None
    depth = nesting_depth(data)
    if depth > MAX_DEPTH:
        raise XbenchError(f"{path}: JSON nested {depth} levels deep, over the limit of {MAX_DEPTH}; a results file "
                          "nests about 6 deep: the file is not a results file, re-run the evaluation.")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN / Infinity
        raise XbenchError(f"{path}: not valid JSON ({exc}); the file is damaged or not a results file.") from None


def parse(path: Path, raw: Any) -> ResultFile:
    """Validate parsed JSON against the results model; every problem names the file and the field."""
    if isinstance(raw, dict) and raw.get("schema_version") not in (None, SCHEMA_VERSION):
        raise XbenchError(f"{path}: field `schema_version` is {raw.get('schema_version')!r}; this xbench reads "
                          f"{SCHEMA_VERSION!r}. Re-run the evaluation with this version.")
    try:
        return ResultFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise XbenchError(
            f"{path}: field `{where}`: {first['msg']} ({exc.error_count()} problem(s) in all). "
            f"The file does not follow the results schema ({SCHEMA_PATH.name})."
        ) from None


def load(path: Path) -> ResultFile:
    """Read and validate a results file; every problem names the file and the field."""
    return parse(path, read_json(path))


def collect(dirs: list[Path], on_error: Callable[[XbenchError], None] | None = None) -> list[ResultFile]:
    """Every results file under `dirs`. An unreadable one is an error, or, with `on_error`, is handed to it and
    left out (the report names it and goes on); no readable file at all is always an error."""
    missing = [d for d in dirs if not Path(d).is_dir()]
    if missing:
        raise XbenchError(f"{missing[0]}: results folder not found; pass a folder that `xbench run` wrote into.")
    files = sorted(p for d in dirs for p in Path(d).rglob("*.json"))
    results, errors = [], []
    for p in files:
        try:
            results.append(load(p))
        except XbenchError as exc:
            if on_error is None:
                raise
            errors.append(exc)
            on_error(exc)
    where = ", ".join(map(str, dirs))
    if not files:
        raise XbenchError(f"no results files under {where}; run `xbench run` first.")
    if not results:
        raise XbenchError(f"none of the {len(files)} results files under {where} can be read; the first: {errors[0]}")
    return results
