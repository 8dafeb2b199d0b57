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
    n_langs = len(spec.languages)
    codes = {lang: i for i, lang in enumerate(spec.languages)}  # languages as numbers, n_langs = unlisted

    def code(langs: np.ndarray) -> np.ndarray:
        return np.fromiter((codes.get(lang, n_langs) for lang in langs), dtype=np.int64, count=len(langs))

    code_of_row = code(cands["lang"].to_numpy())  # once per candidate, not once per judgement
    cand_code = code_of_row[order]
    q_code = code(data.queries["lang"].to_numpy())
    judged = data.judgements
    relevant_in = np.zeros((len(data.queries), n_langs + 1), dtype=bool)  # query x language of a relevant one
    relevant_in[judged[:, 0], code_of_row[judged[:, 1]]] = True

    for x in spec.languages:  # language-major: a dense retriever scores each query language once for all slices
        for setting in settings:
            if setting == "mono":
                targets = [(x, [x])]
            elif setting == "cross":
                targets = [(y, [y]) for y in spec.languages if y != x]
            else:
                targets = [(ALL_LANGUAGES, list(spec.languages))]
            for label, langs in targets:
                wanted = np.zeros(n_langs + 1, dtype=bool)
                wanted[[codes[lang] for lang in langs]] = True
                rows = np.flatnonzero((q_code == codes[x]) & relevant_in[:, wanted].any(axis=1))
                if len(rows):
                    yield Slice(setting, x, label, rows, order[wanted[cand_code]])
