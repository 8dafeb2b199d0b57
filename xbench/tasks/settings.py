"""The three evaluation settings as slices of one pooled task: which queries meet which candidates.

- mono: queries in X against candidates in X;
- cross: queries in X against candidates in Y != X (every ordered pair);
- multi: queries in X against the pool of all languages, every translation relevant.
A query is kept in a slice only if it has a relevant candidate there (in MLQA-R cross, only the questions that
exist in both X and Y). Candidates are ordered by id so that the tie policy (score desc, then id) is positional.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from xbench.tasks.spec import Setting, TaskSpec
from xbench.tasks.taskdata import TaskData

ALL_LANGUAGES = "all"


@dataclass(frozen=True)
class Slice:
    setting: Setting
    query_lang: str
    cand_lang: str  # ALL_LANGUAGES for multi
    query_rows: np.ndarray  # rows of TaskData.queries
    cand_rows: np.ndarray  # rows of TaskData.candidates, sorted by candidate id

    @property
    def key(self) -> str:
        return f"{self.setting}/{self.query_lang}/{self.cand_lang}"


def slices(data: TaskData, spec: TaskSpec, settings: list[Setting]) -> Iterator[Slice]:
    """Yield the slices of the requested settings, in a stable order (query lang, setting, candidate lang)."""
    cands = data.candidates
    order = np.argsort(cands["id"].to_numpy(), kind="stable")
    cand_lang = cands["lang"].to_numpy()[order]
    cand_ids = cands["id"].to_numpy()[order]
    q_lang = data.queries["lang"].to_numpy()
    q_ids = data.queries["id"].to_numpy()
    lang_of = dict(zip(cand_ids, cand_lang))
    rel_langs = [{lang_of[d] for d, g in data.qrels.get(q, {}).items() if g > 0} for q in q_ids]

    def pool(langs: set[str]) -> np.ndarray:
        return order[np.isin(cand_lang, list(langs))]

    def queries(x: str, langs: set[str]) -> np.ndarray:
        return np.array([i for i in np.flatnonzero(q_lang == x) if rel_langs[i] & langs], dtype=np.int64)

    for x in spec.languages:  # language-major: a dense retriever scores each query language once for all slices
        for setting in settings:
            if setting == "mono":
                targets = [(x, {x})]
            elif setting == "cross":
                targets = [(y, {y}) for y in spec.languages if y != x]
            else:
                targets = [(ALL_LANGUAGES, set(spec.languages))]
            for label, langs in targets:
                rows = queries(x, langs)
                if len(rows):
                    yield Slice(setting, x, label, rows, pool(langs))
