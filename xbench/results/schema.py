"""The results file: one JSON per (model, task), typed by pydantic, with a shipped JSON Schema.

Per-query data are the ranks and grades of each query's relevant candidates: every per-query metric (and so
every aggregate, significance test and bias figure) is a pure function of them, which lets `xbench submit`
recompute and check any file. Files are written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import math
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from xbench.paths import RESULTS_SCHEMA
from xbench.tasks.spec import Setting, TaskSpec

SCHEMA_VERSION: Final = "1.0"
NOT_RETRIEVED = 0  # stored rank of a relevant candidate below a run's depth (metrics: np.inf)
SCHEMA_PATH = RESULTS_SCHEMA


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
        """Ranks for the metrics: a candidate not retrieved (stored 0) has rank inf, as xbench.scoring.metrics
        expects."""
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
    data_parts: dict[str, str] | None = Field(
        None, description="a task run language by language (a streamed corpus, e.g. MIRACL): each language's data "
                          "identity (its corpus, topics and qrels); data_sha256 combines them (results.merge)"
    )
    model: ModelCard
    run: RunInfo
    settings: list[Setting]
    main_score: float | None = Field(
        None, allow_inf_nan=False,
        description="the main metric's macro average; absent when the run left out the main metric's setting"
    )
    summary: dict[str, dict[str, dict[str, float]]] = Field(
        description="setting -> query language (and 'macro') -> metric -> value; cross is first averaged over Y"
    )
    bias: dict[str, Any] = Field(description="rank distance, same-language share, first-hit language, mAP matrix")
    query_ids: list[str] = Field(description="every query id of the task, referenced by per_query.query_index")
    slices: list[SliceResult]


def json_schema() -> str:
    return json.dumps(ResultFile.model_json_schema(), indent=2, sort_keys=True) + "\n"
