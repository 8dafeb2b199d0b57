"""Hybrid batches: monolingual with probability alpha, a share beta from domain sources, no false negatives.

A batch is *monolingual* (every pair has query language == passage language, one language per batch) with
probability alpha, else *cross-lingual* (every pair has query language != passage language; the pairs mix
language pairs freely). alpha=1 is the X-X-mono baseline, alpha=0 X-Y, alpha=0.5 the paper's hybrid.

Pools: the general pool gets share 1 - beta of each batch and every domain source its own share (beta is their
sum). A pool's slots in a batch are its share times the batch size, rounded up or down at random so that the
expected count is exact. A monolingual batch's language is drawn from the pools' language mixes weighted by
their shares. A pool with no pair of the batch's kind (e.g. a translation source in a monolingual batch, or no
pair in the batch's language) gives its slots to the other pools, general first; `composition` measures what
each pool really contributed, and the model card records it.

No two pairs of one parallel group, and no text twice, in one batch: in-batch negatives would otherwise contain
a translation of the positive (a false negative). Inside a pool, pairs are drawn in a shuffled order and
reshuffled when used up; everything is drawn from numpy generators seeded by (seed, epoch), so the same seed
gives the same batches, and a resumed run sees the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sentence_transformers.base.sampler import DefaultBatchSampler

from xbench.errors import XbenchError

GENERAL = "general"


@dataclass
class _Queue:
    """One pool's rows of one kind (and language): a shuffled order, reshuffled when used up."""

    rows: np.ndarray
    rng: np.random.Generator
    order: np.ndarray = field(init=False)
    cursor: int = 0

    def __post_init__(self) -> None:
        self.order = self.rng.permutation(self.rows)

    def take(self, n: int, groups: set[int], texts: set[int], group_of: np.ndarray, texts_of: np.ndarray) -> list[int]:
        """Up to n rows that clash with nothing already in the batch; gives up after one full pass."""
        picked: list[int] = []
        for _ in range(len(self.rows)):
            if len(picked) == n:
                break
            if self.cursor == len(self.order):
                self.order, self.cursor = self.rng.permutation(self.rows), 0
            row = int(self.order[self.cursor])
            self.cursor += 1
            q, p = texts_of[row]
            if group_of[row] in groups or q in texts or p in texts:
                continue
            groups.add(int(group_of[row]))
            texts.update((int(q), int(p)))
            picked.append(row)
        return picked


@dataclass(frozen=True)
class Batch:
    rows: list[int]
    kind: str  # "mono" or "cross"
    lang: str | None  # the language of a monolingual batch
    per_pool: dict[str, int]


class BatchPlan:
    """What the sampler needs of the pairs table: pools, kinds, languages, groups and texts as integer codes."""

    def __init__(self, pairs: pd.DataFrame, alpha: float, domain_shares: dict[str, float]) -> None:
        self.alpha = alpha  # alpha in [0, 1] and shares > 0 summing below 1: checked by TrainConfig
        self.shares = {GENERAL: 1.0 - sum(domain_shares.values()), **domain_shares}
        pool = pairs["source"].where(pairs["source"].isin(list(domain_shares)), GENERAL).to_numpy()
        mono = (pairs["query_lang"] == pairs["passage_lang"]).to_numpy()
        self.group_of = pd.factorize(pairs["group_id"])[0]
        codes = pd.factorize(pd.concat([pairs["query"], pairs["passage"]], ignore_index=True))[0]
        self.texts_of = codes.reshape(2, -1).T
        self.n_pairs = len(pairs)
        langs = pairs["query_lang"].to_numpy()
        self.mono_rows: dict[str, dict[str, np.ndarray]] = {}
        self.cross_rows: dict[str, np.ndarray] = {}
        for name in self.shares:
            in_pool = pool == name
            if not in_pool.any() and self.shares[name] > 0:
                raise XbenchError(f"training pool {name!r} has no pairs; check --domain-data and the sources.")
            rows = np.flatnonzero(in_pool & mono)
            self.mono_rows[name] = {lang: rows[langs[rows] == lang] for lang in sorted(set(langs[rows]))}
            self.cross_rows[name] = np.flatnonzero(in_pool & ~mono)
        self.mono_langs = sorted({lang for by_lang in self.mono_rows.values() for lang in by_lang})
        self.lang_p = self._language_mix()
        if alpha > 0 and not self.mono_langs:
            raise XbenchError("monolingual batches (alpha > 0) need question-answer pairs in one language; none of "
                              "the chosen sources has any. Add arcd or exams, or use --sampling cross.")
        if alpha < 1 and not any(len(r) for r in self.cross_rows.values()):
            raise XbenchError("cross-lingual batches (alpha < 1) need pairs across languages; none of the chosen "
                              "sources has any. Add tatoeba (or another parallel source), or use --sampling mono.")

    def _language_mix(self) -> np.ndarray:
        """P(language of a monolingual batch): each pool's language distribution, weighted by its share."""
        p = np.zeros(len(self.mono_langs))
        for name, by_lang in self.mono_rows.items():
            total = sum(len(r) for r in by_lang.values())
            for lang, rows in by_lang.items():
                p[self.mono_langs.index(lang)] += self.shares[name] * len(rows) / total
        return p / p.sum() if p.sum() > 0 else p

    def batches(self, rng: np.random.Generator, n_batches: int, batch_size: int) -> Iterator[Batch]:
        """The batch sequence of one epoch; a pure function of the generator's state."""
        queues: dict[tuple[str, str | None], _Queue] = {}

        def queue(name: str, lang: str | None) -> _Queue | None:
            rows = self.mono_rows[name].get(lang) if lang is not None else self.cross_rows[name]
            if rows is None or len(rows) == 0:
                return None
            if (name, lang) not in queues:  # shuffled once, when first needed
                queues[name, lang] = _Queue(rows, rng)
            return queues[name, lang]

        domain = [n for n in self.shares if n != GENERAL]
        for _ in range(n_batches):
            mono = rng.random() < self.alpha
            lang = self.mono_langs[rng.choice(len(self.mono_langs), p=self.lang_p)] if mono else None
            wanted = {n: int(np.floor(batch_size * self.shares[n] + rng.random())) for n in domain}
            wanted[GENERAL] = max(0, batch_size - sum(wanted.values()))
            groups: set[int] = set()
            texts: set[int] = set()
            rows: list[int] = []
            per_pool = dict.fromkeys(self.shares, 0)
            for name in (*domain, GENERAL):
                q = queue(name, lang)
                got = q.take(min(wanted[name], batch_size - len(rows)), groups, texts, self.group_of,
                             self.texts_of) if q else []
                rows += got
                per_pool[name] += len(got)
            for name in (GENERAL, *domain):  # slots a pool could not fill go to the others, general first
                q = queue(name, lang)
                if q and len(rows) < batch_size:
                    got = q.take(batch_size - len(rows), groups, texts, self.group_of, self.texts_of)
                    rows += got
                    per_pool[name] += len(got)
            yield Batch(rows, "mono" if mono else "cross", lang, per_pool)


def composition(plan: BatchPlan, seed: int, n_batches: int, batch_size: int) -> dict[str, Any]:
    """What the batches of a run are made of: share of monolingual batches, each pool's share of the pairs,
    monolingual batch languages and the mean batch size (measured by drawing the batches, not assumed)."""
    batches = list(plan.batches(np.random.default_rng([seed, 0]), n_batches, batch_size))
    pairs = sum(len(b.rows) for b in batches)
    langs = pd.Series([b.lang for b in batches if b.lang is not None], dtype=object).value_counts()
    return {
        "batches": len(batches),
        "mono_batch_share": round(sum(b.kind == "mono" for b in batches) / len(batches), 4),
        "pool_share": {n: round(sum(b.per_pool[n] for b in batches) / pairs, 4) for n in plan.shares},
        "mono_languages": {str(k): int(v) for k, v in langs.items()},
        "mean_batch_size": round(pairs / len(batches), 2),
    }


class HybridBatchSampler(DefaultBatchSampler):
    """The sentence-transformers batch sampler: pass `sampler_factory(plan)` as `batch_sampler` to
    SentenceTransformerTrainingArguments; the trainer builds it and calls `set_epoch` every epoch."""

    def __init__(self, dataset: Any, batch_size: int, drop_last: bool, valid_label_columns: list[str] | None = None,
                 generator: Any = None, seed: int = 0, *, plan: BatchPlan) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)
        if len(dataset) != plan.n_pairs:
            raise ValueError(f"the dataset has {len(dataset)} rows but the batch plan {plan.n_pairs} pairs")
        self.plan = plan

    def __len__(self) -> int:
        return max(1, self.plan.n_pairs // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for batch in self.plan.batches(rng, len(self), self.batch_size):
            yield batch.rows


def sampler_factory(plan: BatchPlan) -> Callable[..., HybridBatchSampler]:
    """`batch_sampler=` value: the trainer calls it with (dataset, batch_size=..., drop_last=..., seed=...)."""
    return partial(HybridBatchSampler, plan=plan)
