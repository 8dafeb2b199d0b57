"""Helpers every loader needs: templates, checked `options`, gzip JSONL records, and the `domain` filter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from xbench.errors import XbenchError
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
