"""`xbench run`: spec -> loader -> retriever (through the cache) -> retrieval core -> metrics -> results JSON.

A task whose results file already matches (same model fingerprint, task spec, data sha256 and settings) is
skipped; anything else is recomputed, which after an interruption costs only the scoring, because every
embedding already computed is in the cache. A results file of another model with the same name (another
fingerprint) is never replaced silently: the run refuses unless `force`. A run on a subset of the task's languages
is stored beside the full run (`results.store.result_path`).
"""

from __future__ import annotations

import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from xbench.errors import DataUnavailable, XbenchError
from xbench.evaluation.corpus import rank_part, searcher
from xbench.evaluation.kernel import run_slices
from xbench.models.base import Retriever
from xbench.provenance import __version__, library_versions
from xbench.results.merge import combined_sha, merge
from xbench.results.schema import ModelCard, ResultFile, RunInfo, SliceResult
from xbench.results.store import language_subset, load, result_path, save
from xbench.retrieval.ann import search_plan
from xbench.scoring.aggregate import bias_figures, main_score, summarise
from xbench.tasks.leakage import guard
from xbench.tasks.registry import Task, with_languages
from xbench.tasks.settings import slices
from xbench.tasks.spec import Setting

TOP_K = 10


@dataclass
class Outcome:
    task: str
    status: str  # "done", "up to date", "skipped" (data not here), "failed"
    path: Path | None = None
    message: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _readable(path: Path) -> ResultFile | None:
    """The results file at `path`, or None when there is none or it cannot be read (it is recomputed over)."""
    if not path.is_file():
        return None
    try:
        return load(path)
    except XbenchError:
        return None


def _holds(old: ResultFile | None, task: Task, data_sha: str, settings: list[Setting]) -> bool:
    return (old is not None and old.task == task.spec and old.data_sha256 == data_sha
            and set(settings) <= set(old.settings))


def current(path: Path, task: Task, data_sha: str, settings: list[Setting]) -> ResultFile | None:
    """The results file at `path` if it holds this task spec, data and settings (whatever the model), else None."""
    old = _readable(path)
    return old if _holds(old, task, data_sha, settings) else None


def subset(task: Task, full_languages: Sequence[str] | None) -> list[str] | None:
    """The task's languages when they are fewer than `full_languages` (the spec's own, before `--languages`),
    else None: a full run."""
    return language_subset(task.spec.languages, full_languages)


def task_path(output: Path, retriever: Retriever, task: Task, full_languages: Sequence[str] | None = None) -> Path:
    """Where the run of `retriever` on `task` is stored (a language subset beside the full run)."""
    return result_path(output, retriever.info.name, task.name, subset(task, full_languages))


def _source(card: dict[str, object], fingerprint: str) -> str:
    return str(card.get("source") or f"fingerprint {fingerprint}")


def refuse_other_model(path: Path, retriever: Retriever) -> None:
    """Refuse to write over a results file of another model that has the same name (another fingerprint), e.g.
    `--model /a/static` then `--model /b/static`; an unreadable file is no model's and is recomputed as before."""
    _refuse_other(path, _readable(path), retriever)


def _refuse_other(path: Path, old: ResultFile | None, retriever: Retriever) -> None:
    info = retriever.info
    if old is None or old.model.fingerprint == info.fingerprint:
        return
    raise XbenchError(
        f"{path} holds the results of another model named {old.model.name!r} "
        f"({_source(old.model.card, old.model.fingerprint)}); this run is {info.name!r} "
        f"({_source(info.card, info.fingerprint)}). Not replacing them: pass --output elsewhere, or remove "
        f"{path}, or pass --force to replace it.")


def run_task(retriever: Retriever, task: Task, *, settings: list[Setting], output: Path, command: str,
             device: str, force: bool = False, allow_overlap: bool = False,
             full_languages: Sequence[str] | None = None) -> Outcome:
    """Evaluate one task; bad data fails this task only, missing data skips it with the command that fetches it.
    A model trained by xbench whose training texts overlap the task fails it unless `allow_overlap`. A results
    file of another model with the same name fails it unless `force`. `full_languages`: the task's languages
    before `--languages`; a run on fewer of them is stored beside the full run."""
    try:
        return _evaluate(retriever, task, settings=settings, output=output, command=command, device=device,
                         force=force, allow_overlap=allow_overlap, full_languages=full_languages)
    except DataUnavailable as exc:
        return Outcome(task.name, "skipped", message=str(exc))
    except XbenchError as exc:
        return Outcome(task.name, "failed", message=str(exc))


def _evaluate(retriever: Retriever, task: Task, *, settings: list[Setting], output: Path, command: str,
              device: str, force: bool, allow_overlap: bool = False,
              full_languages: Sequence[str] | None = None) -> Outcome:
    started = datetime.now(timezone.utc)
    wanted = [s for s in dict.fromkeys(settings) if s in task.spec.settings]  # `--settings mono,mono`: once
    if not wanted:
        raise XbenchError(f"task {task.name} defines settings {task.spec.settings}; none of {settings} was asked.")
    if task.streamed:
        return _evaluate_parts(retriever, task, settings=wanted, output=output, command=command, device=device,
                               force=force, full_languages=full_languages)
    search = search_plan(task.spec)
    data_sha = task.data_sha256()
    path = task_path(output, retriever, task, full_languages)
    if not force:
        old = _readable(path)  # read once: another model's file is refused, this model's may be up to date
        _refuse_other(path, old, retriever)
        if _holds(old, task, data_sha, wanted):
            return Outcome(task.name, "up to date", path)
    t0 = time.perf_counter()
    data = task.load()
    t_load = time.perf_counter()
    todo = list(slices(data, task.spec, wanted))
    if not todo:
        raise XbenchError(f"task {task.name}: no slice to rank for settings {','.join(wanted)} on languages "
                          f"{','.join(task.spec.languages)}: no query has a relevant candidate there. Add languages "
                          "(--languages) or settings (--settings); no results file was written.")
    # leakage guard (xbench/tasks/leakage.py): refuse, or record, evaluation on the model's own training texts
    overlap = guard(retriever.info.name, retriever.info.card, data, task.name, allow_overlap)
    counts = retriever.prepare(data)
    if overlap is not None:
        counts = {**counts, "train_overlap_texts": overlap}
    t_prep = time.perf_counter()
    results = run_slices(retriever, data, todo, task.spec.metrics, search, desc=f"scoring {task.name}")
    t_score = time.perf_counter()
    timings = {"load_s": t_load - t0, "encode_s": t_prep - t_load, "score_s": t_score - t_prep}
    result = _result_file(retriever, task, data_sha, None, wanted, results, data.queries["id"].tolist(),
                          _run_info(command, device, started, timings, counts, data.notes))
    if not force:
        refuse_other_model(path, retriever)  # written meanwhile by another run
    save(result, path)
    return Outcome(task.name, "done", path, message="\n".join(data.notes), counts=counts, timings=timings)


def _run_info(command: str, device: str, started: datetime, timings: dict[str, float], counts: dict[str, int],
              notes: list[str]) -> RunInfo:
    return RunInfo(
        command=command, xbench_version=__version__, libraries=library_versions(),
        python=sys.version.split()[0], platform=platform.platform(), device=device, seed=0,
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        timings={k: round(v, 3) for k, v in timings.items()}, counts=counts, notes=notes or None,
    )


def _result_file(retriever: Retriever, task: Task, data_sha: str, parts: dict[str, str] | None,
                 settings: list[Setting], results: list[SliceResult], query_ids: list[str], run: RunInfo) -> ResultFile:
    info = retriever.info
    summary = summarise(results)
    return ResultFile(
        task=task.spec, data_sha256=data_sha, data_parts=parts,
        model=ModelCard(name=info.name, kind=info.kind, fingerprint=info.fingerprint, card=info.card),
        run=run, settings=settings, main_score=main_score(summary, task.spec.main_metric), summary=summary,
        bias=bias_figures(results), query_ids=query_ids, slices=results,
    )


def _evaluate_parts(retriever: Retriever, task: Task, *, settings: list[Setting], output: Path, command: str,
                    device: str, force: bool, full_languages: Sequence[str] | None) -> Outcome:
    """A streamed task, one language at a time: each language's file (`<task>.<lang>.json`, up to date when its
    model, spec and data identity match) is written before the next language starts; then the languages asked
    are merged, and the whole task too once the output folder holds every language of it."""
    if settings != ["mono"]:
        raise XbenchError(f"task {task.name} streams its corpus language by language, which serves the mono "
                          f"setting only; field `settings` is {task.spec.settings}.")
    plan = search_plan(task.spec)
    if plan.depth is None:
        raise XbenchError(f"task {task.name}: a streamed corpus is searched to a depth; set field `options.depth` "
                          "(e.g. 100).")
    full = list(full_languages or task.spec.languages)
    files: list[tuple[str, ResultFile]] = []
    counts: dict[str, int] = {}
    timings: dict[str, float] = {}
    notes: list[str] = []
    for lang in task.spec.languages:
        one = with_languages(task, [lang])
        path = result_path(output, retriever.info.name, task.name, language_subset([lang], full))
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        part = task.part(lang)
        data_sha = combined_sha({lang: part.identity})
        old = None if force else _readable(path)
        if not force:
            _refuse_other(path, old, retriever)
        if old is not None and _holds(old, one, data_sha, settings):
            files.append((str(path), old))
            continue
        t1 = time.perf_counter()
        result, hits, data_notes = rank_part(searcher(retriever, task.name), part, plan, task.spec.metrics)
        lang_timings = {"load_s": t1 - t0, **hits.timings}
        lang_counts = {**hits.counts, "queries": result.n_queries}
        file = _result_file(retriever, one, data_sha, {lang: part.identity}, settings, [result],
                            part.queries["id"].tolist(),
                            _run_info(command, device, started, lang_timings, lang_counts, [*data_notes, *hits.notes]))
        save(file, path)
        files.append((str(path), file))
        for key, value in lang_counts.items():
            counts[key] = counts.get(key, 0) + value
        for key, sec in lang_timings.items():
            timings[key] = timings.get(key, 0.0) + sec
        notes.extend([*data_notes, *hits.notes])
        del part, result, hits, file
    status = "done" if counts else "up to date"
    written = Path(files[0][0]) if len(files) == 1 else _merge_into(output, retriever, task, files, full, command)
    _merge_whole(output, retriever, task, full, command)
    return Outcome(task.name, status, written, message="\n".join(notes), counts=counts, timings=timings)


def _merge_into(output: Path, retriever: Retriever, task: Task, files: list[tuple[str, ResultFile]],
                full: list[str], command: str) -> Path:
    path = task_path(output, retriever, task, full)
    merged = merge(files, full, command)
    old = _readable(path)
    if old is None or old.model_dump(exclude={"run"}) != merged.model_dump(exclude={"run"}):
        save(merged, path)
    return path


def _merge_whole(output: Path, retriever: Retriever, task: Task, full: list[str], command: str) -> None:
    """Once the output folder holds every language of the task for this model (runs made separately, e.g.
    `--languages sw` then `--languages yo`), write the whole task's file from them."""
    if len(full) < 2 or list(task.spec.languages) == full:
        return
    found = []
    for lang in full:
        old = _readable(result_path(output, retriever.info.name, task.name, [lang]))
        if old is None or old.model.fingerprint != retriever.info.fingerprint or old.data_parts is None:
            return
        found.append((str(result_path(output, retriever.info.name, task.name, [lang])), old))
    whole = replace(task, spec=task.spec.model_copy(update={"languages": full}))
    _merge_into(output, retriever, whole, found, full, _all_languages(command))


def _all_languages(command: str) -> str:
    """The reproduce command of the whole task: the run's command without its `--languages`."""
    words = shlex.split(command)
    kept = [w for i, w in enumerate(words) if not (w == "--languages" or w.startswith("--languages=")
                                                   or (i and words[i - 1] == "--languages"))]
    return shlex.join(kept)
