"""Helpers every loader needs: templates, checked `options`, gzip JSONL records, and the `domain` filter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from xbench.errors import XbenchError
from xbench.io import read_manifest
from xbench.tasks.partition import EVAL_FILE
from xbench.tasks.spec import TaskSpec


def fill_template(template: str, spec: TaskSpec, field: str, **values: str) -> str:
    """Apply `query_template` / `doc_template`; an unknown placeholder names the field and what is available."""
    try:
        return template.format(**values)
    except (KeyError, IndexError) as exc:
        raise XbenchError(
            f"task {spec.name}: field `{field}` uses unknown placeholder {exc}; available: {sorted(values)}."
        ) from None


def loader_options(spec: TaskSpec, known: dict[str, str]) -> dict[str, Any]:
    """The spec's `options`, refusing keys this loader does not read (`known`: key -> what it does)."""
    unknown = sorted(set(spec.options) - set(known))
    if unknown:
        described = "; ".join(f"{k}: {v}" for k, v in known.items()) or "none"
        raise XbenchError(f"task {spec.name}: field `options` has unknown key(s) {unknown}; loader "
                          f"{spec.loader!r} reads: {described}.")
    return dict(spec.options)


def text_option(spec: TaskSpec, options: dict[str, Any], key: str) -> str | None:
    """A string option (a file name, a label); YAML turns `3` or `yes` into other types, which must not reach a
    path join or a comparison as something else."""
    value = options.get(key)
    if value is not None and not isinstance(value, str):
        raise XbenchError(f"task {spec.name}: field `options.{key}` is {value!r} ({type(value).__name__}); "
                          f"give a string (quote it in the YAML: {key}: '{value}').")
    return value


def data_file(spec: TaskSpec, data_dir: Path, name: str, field: str) -> Path:
    """The path of a data file the loader reads, refusing one its manifest does not list: the registry verifies
    only listed files, so an unlisted one would be read unchecked. `field` is the spec field that chose `name`."""
    manifest = data_dir / spec.source.manifest
    path = data_dir / name
    if name not in read_manifest(manifest):
        if not path.is_file():
            raise XbenchError(f"{path}: data file not found (task {spec.name}, field `{field}`); check the "
                              "task's `source.dir` and that field.")
        raise XbenchError(f"{path}: task {spec.name} reads this file (field `{field}`), but {manifest} does not "
                          f"list it, so it cannot be verified. If the file is meant to be there, add it: "
                          f"`cd {data_dir} && sha256sum {name} >> {spec.source.manifest}`.")
    return path


def read_jsonl(path: Path) -> pd.DataFrame:
    """Gzip JSONL records (the format `tools.sources` writes) as a table, naming the file on failure."""
    try:
        table = pd.read_json(path, lines=True, dtype=False, compression="gzip")
    except FileNotFoundError:
        raise XbenchError(f"{path}: data file not found; check the task's `source.dir` and `options.file`.") from None
    except (OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
        raise XbenchError(f"{path}: cannot be read as gzip JSONL ({exc}); the file is damaged, restore it.") from None
    if table.empty:
        raise XbenchError(f"{path}: no records; the file is damaged, restore it from git.")
    return table


def keep_domain(table: pd.DataFrame, spec: TaskSpec, path: Path) -> pd.DataFrame:
    """The rows of the spec's `domain` (all rows when it has none); an unknown domain lists the known ones."""
    if "domain" not in table:
        raise XbenchError(f"{path}: records have no `domain` field; rebuild the file with tools.sources.")
    if spec.domain is None:
        return table
    kept = table[table["domain"] == spec.domain]
    if kept.empty:
        raise XbenchError(f"task {spec.name}: field `domain` is {spec.domain!r}, which no record of {path} has; "
                          f"known domains: {sorted(table['domain'].unique())}.")
    return kept


def read_records(spec: TaskSpec, data_dir: Path, options: dict[str, Any]) -> tuple[Path, pd.DataFrame]:
    """The verified records file a records loader reads (`options.file`, default the shipped eval file) and its
    rows of the spec's domain."""
    path = data_file(spec, data_dir, text_option(spec, options, "file") or EVAL_FILE, "options.file")
    return path, keep_domain(read_jsonl(path), spec, path)
