"""Task specs: the typed, validated metadata of a task, read from YAML files in `tasks/`.

A spec says where the data is (a vendored folder pinned by a sha256 manifest and/or a pinned hub dataset),
which loader turns it into queries/candidates/qrels, in which languages and settings it runs and which
metrics it reports. Specs are validated when loaded; a bad one fails with the file, the field and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xbench.errors import XbenchError
from xbench.scoring.metrics import metric_forms, parse_metric

Setting = Literal["mono", "cross", "multi"]
SETTINGS: tuple[Setting, ...] = ("mono", "cross", "multi")

# Search options a task may set in `options` (its loader must accept them): read by xbench.retrieval.ann.
SEARCH_METHODS = ("auto", "exact", "faiss-flat", "faiss-ivf", "faiss-hnsw")
SEARCH_OPTIONS = {
    "depth": "rank at most this many candidates per query (a TREC run's depth); lower ranks are not retrieved",
    "search": f"{' | '.join(SEARCH_METHODS)}: how dense models find the top `depth` (default auto)",
    "nlist": "faiss-ivf: inverted lists (default 4 * sqrt(pool size))",
    "nprobe": "faiss-ivf: lists visited per query (default 32)",
    "ef_search": "faiss-hnsw: candidates kept while searching (default 128, at least depth)",
}


def _is_metric(name: str) -> bool:
    try:
        parse_metric(name)
    except ValueError:
        return False
    return True


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSource(_Strict):
    """A dataset on the Hugging Face hub, pinned to a revision (only used online)."""

    dataset: str
    revision: str
    config: str | None = None


class Source(_Strict):
    """Where the task's data comes from: a vendored folder (verified by its manifest) and/or a hub dataset."""

    dir: str | None = Field(None, description="folder relative to the project root, holding the data files")
    manifest: str = Field("SHA256SUMS", description="sha256sum-format file inside `dir` listing every data file")
    hub: HubSource | None = None

    @model_validator(mode="after")
    def _some_source(self) -> Source:
        if self.dir is None and self.hub is None:
            raise ValueError("give `dir` (a vendored data folder) or `hub` (dataset + revision), or both")
        return self


class TaskSpec(_Strict):
    """One task: data + loader + languages + settings + metrics."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str
    family: str
    description: str
    loader: str
    source: Source
    license: str
    languages: list[str] = Field(min_length=1)
    settings: list[Setting] = Field(default_factory=lambda: list(SETTINGS), min_length=1)
    query_template: str = "{text}"
    doc_template: str = "{text}"
    main_metric: str = "multi.map"
    metrics: list[str] = Field(default_factory=lambda: ["map", "mrr", "recall@1", "recall@10", "ndcg@10"])
    domain: str | None = None
    general: str | None = Field(None, description="the task whose score is this domain task's general-domain "
                                                  "reference in the robustness table (e.g. xquad-r for xquad-r.sports)")
    options: dict[str, Any] = Field(default_factory=dict, description="loader-specific settings, checked by it")
    split: str = "test"
    citation: str = ""

    @field_validator("languages")
    @classmethod
    def _unique_languages(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"languages must be unique, got {v}")
        return v

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if not _is_metric(m)]
        if bad:
            raise ValueError(f"unknown metrics {bad}: use {metric_forms()}")
        return v

    @model_validator(mode="after")
    def _main_metric_is_computed(self) -> TaskSpec:
        setting, _, metric = self.main_metric.partition(".")
        if setting not in self.settings or metric not in self.metrics:
            raise ValueError(
                f"main_metric {self.main_metric!r} must be '<setting>.<metric>' with setting in {self.settings} "
                f"and metric in {self.metrics}"
            )
        return self


def _describe(error: ValidationError) -> str:
    parts = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"field `{where}`: {e['msg']}")
    return "; ".join(parts)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, line: int) -> None:
        super().__init__(f"duplicate key {key!r} on line {line}")
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys in a mapping; a spec with one would silently lose a value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<` merges may override on purpose; complex keys are refused by the base class
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_spec_file(path: Path) -> list[TaskSpec]:
    """Read one YAML file (`tasks: [...]`, one file per task family) into validated specs."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader
    except UnicodeDecodeError as exc:
        raise XbenchError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 "
                          "(e.g. `iconv -f latin1 -t utf-8`).") from None
    except _DuplicateKey as exc:
        raise XbenchError(f"{path}:{exc.line}: key {exc.key!r} appears twice in the same mapping, and YAML would "
                          "silently keep the last value; delete one of them.") from None
    except yaml.YAMLError as exc:
        raise XbenchError(f"{path}: not valid YAML ({exc}). "
                          "Fix the syntax; see xbench/tasks/lareqa.yaml for the form.") from None
    except OSError as exc:
        raise XbenchError(f"{path}: cannot read the task file ({exc}).") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), list) or not raw["tasks"]:
        raise XbenchError(
            f"{path}: expected a mapping with a non-empty list under `tasks:` (one entry per task); "
            "see tasks/lareqa.yaml for the form."
        )
    specs = []
    for i, entry in enumerate(raw["tasks"]):
        label = entry.get("name", f"#{i}") if isinstance(entry, dict) else f"#{i}"
        try:
            specs.append(TaskSpec.model_validate(entry))
        except ValidationError as exc:
            raise XbenchError(f"{path}: task {label}: {_describe(exc)}. Fix that field and retry.") from None
    return specs
