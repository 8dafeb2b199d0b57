"""Results files on disk: where a (model, task) result lives, atomic saves, validated loads, whole folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import ValidationError

from xbench.errors import XbenchError
from xbench.io import write_atomic
from xbench.results.schema import SCHEMA_PATH, SCHEMA_VERSION, ResultFile


def model_slug(name: str) -> str:
    """A safe folder name for a model: no path separators or traversal, whatever the name says."""
    base = Path(name.rstrip("/\\")).name or name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "model"
    return slug[:80]


def result_path(out_dir: Path, model_name: str, task: str) -> Path:
    return out_dir / model_slug(model_name) / f"{model_slug(task)}.json"


def save(result: ResultFile, path: Path) -> None:
    write_atomic(path, result.model_dump_json(exclude_none=True))


def load(path: Path) -> ResultFile:
    """Read and validate a results file; every problem names the file and the field."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise XbenchError(f"{path}: cannot read ({exc}).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise XbenchError(f"{path}: not valid JSON ({exc}); the file is damaged or not a results file.") from None
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


def collect(dirs: list[Path]) -> list[ResultFile]:
    missing = [d for d in dirs if not Path(d).is_dir()]
    if missing:
        raise XbenchError(f"{missing[0]}: results folder not found; pass a folder that `xbench run` wrote into.")
    files = sorted(p for d in dirs for p in Path(d).rglob("*.json"))
    if not files:
        raise XbenchError(f"no results files under {', '.join(map(str, dirs))}; run `xbench run` first.")
    return [load(p) for p in files]
