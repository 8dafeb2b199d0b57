"""The internal data model every loader produces and every later stage consumes.

Queries and candidates are tables with columns `id, text, lang, group_id, domain` (group_id is the parallel id
shared by translations; domain the topic label where known). Qrels map query id -> {candidate id: grade}.
Candidate ids are unique across languages, so one pooled table serves mono, cross and multi settings alike and
every text is encoded once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from xbench.errors import XbenchError

if TYPE_CHECKING:
    import pyarrow as pa

COLUMNS = ("id", "text", "lang", "group_id", "domain")


@dataclass(frozen=True)
class TaskData:
    """Queries, the candidate pool of all languages, and graded relevance judgements."""

    queries: pd.DataFrame
    candidates: pd.DataFrame
    qrels: dict[str, dict[str, int]]
    notes: list[str] = field(default_factory=list)
    # query id -> candidate ids withheld from that query's ranking: in a bitext task, the query's own text sits
    # in the pool (it is another query's gold) but must not compete with its own translations.
    exclude: dict[str, set[str]] = field(default_factory=dict)

    @cached_property
    def judgements(self) -> np.ndarray:
        """(n, 3) rows of (query row, candidate row, grade) for every grade > 0 judgement, sorted by query row and
        built once per task: each slice selects its queries' rows (`judgement_starts`) with array operations
        instead of walking the qrels per query."""
        query_row = dict(zip(self.queries["id"], range(len(self.queries))))
        cand_row = dict(zip(self.candidates["id"], range(len(self.candidates))))
        rows = [(query_row[q], cand_row[d], g) for q, rel in self.qrels.items() if q in query_row
                for d, g in rel.items() if g > 0 and d in cand_row]
        table = np.array(rows, dtype=np.int64).reshape(len(rows), 3)
        return table[np.lexsort((table[:, 1], table[:, 0]))]

    @cached_property
    def judgement_starts(self) -> np.ndarray:
        """(queries + 1,): query row i's judgements are `judgements[starts[i]:starts[i + 1]]`."""
        return np.searchsorted(self.judgements[:, 0], np.arange(len(self.queries) + 1))

    def validate(self, where: str) -> TaskData:
        """Fail loudly on data that would give silently wrong scores: empty texts, duplicate or dangling ids."""
        for role, table in (("queries", self.queries), ("candidates", self.candidates)):
            missing = [c for c in COLUMNS if c not in table.columns]
            if missing:
                raise XbenchError(f"{where}: {role} lack columns {missing}; a loader must provide {COLUMNS}.")
            if table.empty:
                raise XbenchError(f"{where}: no {role} were loaded; check the data files and the task languages.")
            dup = table["id"][table["id"].duplicated()]
            if not dup.empty:
                raise XbenchError(f"{where}: duplicate {role} ids, e.g. {dup.iloc[0]!r}; ids must be unique.")
            empty = table["id"][table["text"].fillna("").str.strip() == ""]
            if not empty.empty:
                raise XbenchError(
                    f"{where}: {len(empty)} {role} have empty text (first id {empty.iloc[0]!r}); "
                    "the data file is damaged or the template produces nothing."
                )
        known = set(self.candidates["id"])
        dangling = sorted({d for rel in self.qrels.values() for d in rel} - known)
        if dangling:
            raise XbenchError(
                f"{where}: qrels name {len(dangling)} candidate ids that are not in the pool, e.g. {dangling[0]!r}."
            )
        unknown = sorted({d for hidden in self.exclude.values() for d in hidden} - known)
        if unknown:
            raise XbenchError(f"{where}: `exclude` names candidate ids not in the pool, e.g. {unknown[0]!r}.")
        clash = sorted(q for q, hidden in self.exclude.items() if hidden & set(self.qrels.get(q, {})))
        if clash:
            raise XbenchError(f"{where}: query {clash[0]!r} withholds one of its own relevant candidates (`exclude`).")
        return self


class CorpusSource(Protocol):
    """A candidate pool too large to hold: streamed in corpus order (xbench/tasks/corpus.py `CorpusView`)."""

    fingerprint: str  # content identity: corpus, template, filter
    rows: int
    notes: list[str]

    def ids(self) -> Any:
        """The candidate ids in corpus order (a pyarrow string array: ids only, never texts)."""

    def batches(self, rows: int, start: int = 0, desc: str | None = None) -> Iterator[tuple[int, list[str]]]:
        """(position of the first text, texts) in corpus order, `rows` texts at a time, from position `start`."""


@dataclass(frozen=True)
class CorpusPart:
    """One language of a task whose pool is a streamed corpus (MIRACL): the unit of work of such a task.

    Queries and qrels are small and held; the corpus is a `CorpusSource`. `identity` hashes everything that makes
    the language's numbers (topics, qrels, corpus content and template), so a changed corpus is never reported
    up to date."""

    lang: str
    queries: pd.DataFrame
    qrels: dict[str, dict[str, int]]
    corpus: CorpusSource
    identity: str
    notes: list[str] = field(default_factory=list)

    def judged(self, ids: pa.Array) -> tuple[dict[str, dict[str, int]], np.ndarray, str | None]:
        """Given the corpus's ids: the qrels restricted to the passages it holds, the rows of the queries that keep
        a relevant one (those a run scores), and the note counting what was left out. One definition for the run
        and for `xbench validate`, which checks a file from the ids alone."""
        import pyarrow as pa  # lazy: heavy
        import pyarrow.compute as pc

        qrels, note = absent_note(self.lang, self.qrels,
                                  lambda docs: pc.is_in(pa.array(docs, pa.string()), value_set=ids).to_numpy(False))
        rows = [i for i, q in enumerate(self.queries["id"].tolist()) if any(g > 0 for g in qrels.get(q, {}).values())]
        return qrels, np.array(rows, dtype=np.int64), note


def absent_note(lang: str, qrels: dict[str, dict[str, int]], known: Callable[[list[str]], np.ndarray]) -> tuple[
        dict[str, dict[str, int]], str | None]:
    """The qrels restricted to the passages the corpus has (`known` says which of a list of ids it holds), and
    the note that counts what was left out (None when nothing was)."""
    pairs = [(q, d, g) for q, rel in qrels.items() for d, g in rel.items()]
    present = known([d for _, d, _ in pairs]) if pairs else np.zeros(0, dtype=bool)
    if present.all():
        return qrels, None
    kept: dict[str, dict[str, int]] = {}
    for (q, d, g), ok in zip(pairs, present.tolist()):
        if ok:
            kept.setdefault(q, {})[d] = g
    absent = {d for (_, d, _), ok in zip(pairs, present.tolist()) if not ok}
    absent_relevant = {d for (_, d, g), ok in zip(pairs, present.tolist()) if not ok and g > 0}
    lost = {q for q, rel in qrels.items() if any(g > 0 for g in rel.values())} - {
        q for q, rel in kept.items() if any(g > 0 for g in rel.values())}
    judged = len({d for _, d, _ in pairs})
    return kept, (f"{lang}: {len(absent):,} of {judged:,} judged passages ({len(absent_relevant):,} relevant) are not "
                  f"in the corpus; they are left out of the qrels and {len(lost):,} queries lose every relevant "
                  "passage, so scores cover the passages present only.")
