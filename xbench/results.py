"""The results file: one JSON per (model, task), typed by pydantic, with a shipped JSON Schema.

Per-query data are the ranks and grades of each query's relevant candidates: every per-query metric (and so
every aggregate, significance test and bias figure) is a pure function of them, which lets `xbench submit`
recompute and check any file. Files are written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xbench.errors import XbenchError
from xbench.spec import Setting, TaskSpec

SCHEMA_VERSION = "1.0"
NOT_RETRIEVED = 0  # stored rank of a relevant candidate below a run's depth (metrics: np.inf)
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "results.schema.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PerQuery(_Strict):
    """Compact on purpose: a cross-lingual task has ~10^5 (query, pair) rows."""

    query_index: list[int] = Field(description="positions in ResultFile.query_ids")
    ranks: list[list[int]] = Field(description="1-based ranks of each relevant candidate, ascending; 0 = not "
                                               "retrieved within `depth` (listed last)")
    grades: list[list[int]] | None = Field(
        None, description="relevance grade of each ranked candidate, aligned with ranks; absent = all 1"
    )
    depth: int | None = Field(None, description="the run's depth (task option `depth`): only the top `depth` were "
                                                "ranked; absent = the whole pool was ranked")

    def grade_lists(self) -> list[list[int]]:
        return self.grades if self.grades is not None else [[1] * len(r) for r in self.ranks]

    def rank_lists(self) -> list[list[float]]:
        """Ranks for the metrics: a candidate not retrieved (stored 0) has rank inf, as xbench.metrics expects."""
        return [[r if r != NOT_RETRIEVED else math.inf for r in ranks] for ranks in self.ranks]
    top_langs: list[list[str]] | None = Field(None, description="languages of the top 10 (multi setting only)")
    rel_langs: list[list[str]] | None = Field(
        None, description="language of each ranked relevant candidate, aligned with ranks (multi setting only)"
    )


class SliceResult(_Strict):
    """One (setting, query language, candidate language) ranking; cand_lang is 'all' in multi."""

    setting: Setting
    query_lang: str
    cand_lang: str
    n_queries: int
    n_candidates: int
    scores: dict[str, float] = Field(description="means of the per-query metrics over this slice's queries")
    per_query: PerQuery


class ModelCard(_Strict):
    name: str
    kind: str
    fingerprint: str
    card: dict[str, Any]


class RunInfo(_Strict):
    command: str
    xbench_version: str
    libraries: dict[str, str]
    python: str
    platform: str
    device: str
    seed: int
    started: str
    finished: str
    timings: dict[str, float]
    counts: dict[str, int]
    notes: list[str] | None = Field(None, description="what the loader reported about the data (e.g. judged ids "
                                                      "missing from a corpus, passage sources)")


class ResultFile(_Strict):
    schema_version: Literal["1.0"] = SCHEMA_VERSION
    task: TaskSpec
    data_sha256: str
    model: ModelCard
    run: RunInfo
    settings: list[Setting]
    main_score: float
    summary: dict[str, dict[str, dict[str, float]]] = Field(
        description="setting -> query language (and 'macro') -> metric -> value; cross is first averaged over Y"
    )
    bias: dict[str, Any] = Field(description="rank distance, same-language share, first-hit language, mAP matrix")
    query_ids: list[str] = Field(description="every query id of the task, referenced by per_query.query_index")
    slices: list[SliceResult]


def model_slug(name: str) -> str:
    """A safe folder name for a model: no path separators or traversal, whatever the name says."""
    base = Path(name.rstrip("/\\")).name or name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "model"
    return slug[:80]


def result_path(out_dir: Path, model_name: str, task: str) -> Path:
    return out_dir / model_slug(model_name) / f"{model_slug(task)}.json"


def write_atomic(path: Path, text: str) -> None:
    """Temp file in the target folder, fsync, rename: readers see the old file or the new one, never half."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise XbenchError(f"{path.parent}: cannot write results there ({exc}); pass a writable --output.") from None
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def json_schema() -> str:
    return json.dumps(ResultFile.model_json_schema(), indent=2, sort_keys=True) + "\n"
