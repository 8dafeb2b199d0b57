"""The training configuration: everything that decides a trained model, validated, with user-facing errors.

Kept free of heavy imports so the command line can read its defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from xbench.errors import XbenchError
from xbench.training.data import SOURCES

PROMPTS = {"query": "Query: ", "document": "Passage: "}
SAMPLING_ALPHA = {"mono": 1.0, "cross": 0.0, "hybrid": 0.5}
Sampling = Literal["mono", "cross", "hybrid"]


class TrainConfig(BaseModel):
    """Everything that decides a trained model; the card stores it, and a resumed run must match it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: str = Field("me5-small", description="me5-small | tiny | a local sentence-transformers/transformers folder")
    sampling: Sampling = "hybrid"
    alpha: float | None = Field(None, ge=0.0, le=1.0, description="share of monolingual batches (hybrid only)")
    general: list[str] = Field(default_factory=lambda: ["tatoeba", "arcd"], min_length=1)
    domain: dict[str, float] = Field(default_factory=dict, description="domain source -> share of each batch")
    languages: list[str] | None = None
    seed: int = 0
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(32, ge=2)
    mini_batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup: float = Field(0.1, ge=0, lt=1, description="warm-up share of the steps")
    max_seq_length: int = Field(128, ge=8)
    freeze_embeddings: bool = True
    freeze_layers: int = Field(0, ge=0)
    max_pairs_per_group: int = Field(24, ge=1)
    save_steps: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.alpha is not None and self.sampling != "hybrid" and self.alpha != SAMPLING_ALPHA[self.sampling]:
            raise ValueError(f"sampling {self.sampling} means alpha {SAMPLING_ALPHA[self.sampling]}; "
                             "use sampling hybrid for another alpha")
        unknown = [s for s in (*self.general, *self.domain) if s not in SOURCES]
        if unknown:
            raise ValueError(f"unknown source {unknown[0]!r}; known: {', '.join(SOURCES)}")
        beta = sum(self.domain.values())
        if any(share <= 0 for share in self.domain.values()) or beta >= 1:
            raise ValueError(f"domain shares {self.domain}: each must be > 0 and together < 1 (the rest of every "
                             "batch is general data)")
        both = set(self.general) & set(self.domain)
        if both:
            raise ValueError(f"source {sorted(both)[0]!r} is both general and domain data; pick one role")
        idle = idle_domain_sources(self.effective_alpha, self.domain)
        if idle:
            kind = "monolingual" if self.effective_alpha == 1 else "cross-lingual"
            raise ValueError(f"domain source {idle[0]!r} has no {kind} pairs, so {self.sampling} batches would never "
                             "draw from it; drop it, or use sampling hybrid")
        return self

    @property
    def effective_alpha(self) -> float:
        return self.alpha if self.alpha is not None else SAMPLING_ALPHA[self.sampling]

    @property
    def beta(self) -> float:
        return round(sum(self.domain.values()), 6)


def idle_domain_sources(alpha: float, domain: Iterable[str]) -> list[str]:
    """Domain sources no batch would draw from: translation-only ones when every batch is monolingual
    (alpha 1), monolingual-only ones when none is (alpha 0)."""
    return [s for s in domain if s in SOURCES
            and ((alpha == 1 and not SOURCES[s].mono) or (alpha == 0 and not SOURCES[s].cross))]


def parse_domain(values: tuple[str, ...] | list[str]) -> dict[str, float]:
    """`SOURCE[:SHARE]` items (comma-separated or repeated); a missing share is 0.5 split over the sources."""
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    shares: dict[str, float] = {}
    for item in items:
        name, _, share = item.partition(":")
        try:
            shares[name] = float(share) if share else 0.5 / len(items)
        except ValueError:
            raise XbenchError(f"--domain-data {item}: the share after ':' must be a number, e.g. tico19:0.25.") \
                from None
    return shares


def _config_error(exc: Exception, where: str) -> XbenchError:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        return XbenchError(f"{where}: field `{field}`: {first['msg']}.")
    return XbenchError(f"{where}: {exc}")


def make_config(where: str, **fields: Any) -> TrainConfig:
    """A TrainConfig whose validation errors read as one user-facing paragraph naming the field."""
    try:
        return TrainConfig(**fields)
    except ValueError as exc:
        raise _config_error(exc, where) from None
