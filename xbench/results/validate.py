"""Check a results file, first against itself, then against the task it names.

Against itself (`check_file`): the shipped JSON Schema, the pydantic model, the shape of the per-query data (one
rank per relevant candidate, distinct, ascending, within the pool; the top-10 languages agreeing with the ranks),
then every aggregate recomputed from those ranks with the functions `xbench run` used. Against its task
(`check_task`): the local spec and data sha256, then coverage: exactly the task's slices for the declared settings
and languages, each query once, with the relevant set and grades the task's qrels give, the task's pool sizes and
depth. A streamed task (MIRACL) is checked language by language from its corpus's ids, never its texts. Ranks cannot
be checked without the model, but a file that passes both holds one genuine-looking ranking of the whole task, and
every number in it follows from that ranking.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema

from xbench.errors import DataUnavailable, XbenchError
from xbench.results.merge import combined_sha
from xbench.results.schema import NOT_RETRIEVED, SCHEMA_PATH, ResultFile, SliceResult
from xbench.results.store import parse, read_json
from xbench.retrieval.ann import APPROXIMATE, search_plan
from xbench.scoring.aggregate import SAME_LANG, bias_figures, macro, per_query_scores, slice_means, summarise
from xbench.tasks.registry import Task, discover, with_data_dirs, with_languages
from xbench.tasks.settings import ALL_LANGUAGES, Slice, slices
from xbench.tasks.taskdata import CorpusPart, TaskData

TOLERANCE = 1e-9
TOP = int(SAME_LANG.partition("@")[2])  # top_langs holds the top 10: the same-language share reads them
MAX_PADDED = 10_000_000  # queries x longest rank list of one slice: the arrays the metrics pad (a real slice: ~10^5)
RERUN = "re-run the evaluation (`run.command` holds the command) rather than edit the file"


def _fail(path: Path, where: str, problem: str, fix: str = RERUN) -> XbenchError:
    return XbenchError(f"{path}: field `{where}`: {problem}; {fix}.")


def _close(a: float, b: float) -> bool:
    """NaN equals nothing: no aggregate xbench computes is NaN, so a NaN in a file is always wrong."""
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def _compare(path: Path, where: str, stored: Any, recomputed: dict) -> None:
    """`stored` holds exactly the keys of `recomputed`, with the same numbers (nested dicts alike)."""
    if not isinstance(stored, dict):
        raise _fail(path, where, f"is {stored!r}, not a mapping", "it follows from the per-query ranks: " + RERUN)
    extra = sorted(set(stored) - set(recomputed))
    if extra:
        raise _fail(path, f"{where}.{extra[0]}", "does not follow from the per-query ranks (no slice gives it)",
                    "remove it, or " + RERUN)
    for key, value in recomputed.items():
        if key not in stored:
            raise _fail(path, f"{where}.{key}", "is missing; it follows from the per-query ranks", RERUN)
        if isinstance(value, dict):
            _compare(path, f"{where}.{key}", stored[key], value)
        elif not isinstance(stored[key], (int, float)) or not _close(float(stored[key]), float(value)):
            raise XbenchError(f"{path}: field `{where}.{key}` is {stored[key]!r} but the per-query ranks give "
                              f"{value!r}; the aggregates do not match the per-query data: {RERUN}.")


def _check_ranks(path: Path, where: str, ranks: list[int], deepest: int, depth: int | None) -> None:
    """One query's ranks: distinct, ascending, within 1..deepest; 0 (not retrieved) only with a depth, last."""
    if any(not (0 if depth else 1) <= r <= deepest for r in ranks):
        raise _fail(path, where, f"{ranks}: ranks must lie in {0 if depth else 1}..{deepest} (n_candidates, or "
                                 "`depth` where the run has one; 0 = not retrieved)")
    found = [r for r in ranks if r != NOT_RETRIEVED]
    if ranks[len(found):] != [NOT_RETRIEVED] * (len(ranks) - len(found)):
        raise _fail(path, where, f"{ranks}: rank 0 (not retrieved) is listed after every rank")
    for a, b in zip(found, found[1:]):
        if a >= b:
            problem = (f"rank {a} appears twice; every candidate has its own rank (ties are broken by candidate id)"
                       if a == b else f"{ranks} is not ascending")
            raise _fail(path, where, problem)


def _check_top(path: Path, where: str, top: list[str], ranks: list[int], langs: list[str]) -> None:
    """The top languages agree with the ranks: a relevant candidate ranked r <= 10 is top entry r."""
    if len(top) > TOP:
        raise _fail(path, where, f"holds {len(top)} languages; it lists the top {TOP} at most")
    clash = next(((r, lang) for r, lang in zip(ranks, langs) if 0 < r <= len(top) and top[r - 1] != lang), None)
    if clash is not None:
        r, lang = clash
        raise _fail(path, where, f"entry {r} is {top[r - 1]!r} but the relevant candidate ranked {r} is in "
                                 f"{lang!r} (rel_langs)")


def _check_per_query(path: Path, i: int, s: SliceResult, n_query_ids: int) -> None:
    """The per-query data of one slice, before anything is computed from it."""
    pq, where = s.per_query, f"slices.{i}.per_query"
    grades = pq.grade_lists()
    if len({len(pq.query_index), len(pq.ranks), len(grades), s.n_queries}) != 1 \
            or any(len(r) != len(g) for r, g in zip(pq.ranks, grades)):
        raise _fail(path, where, "query_index, ranks, grades and n_queries disagree in length")
    if s.n_queries < 1 or not all(pq.ranks):
        raise _fail(path, where, "a slice holds the queries with a relevant candidate in its pool, and every such "
                                 "candidate is ranked: no slice or query is empty")
    if s.n_queries * max(map(len, pq.ranks)) > MAX_PADDED:
        raise _fail(path, f"{where}.ranks", f"{s.n_queries} queries with up to {max(map(len, pq.ranks))} ranks each "
                                            "are beyond any task's slice")
    multi = s.setting == "multi"
    for name, rows in (("top_langs", pq.top_langs), ("rel_langs", pq.rel_langs)):
        if (rows is not None) != multi:
            raise _fail(path, f"{where}.{name}", "is " + ("missing: a multi slice records it" if multi else
                                                         "only recorded for multi slices"))
    if (pq.rel_langs is not None and any(len(r) != len(g) for r, g in zip(pq.ranks, pq.rel_langs))) \
            or (pq.top_langs is not None and len(pq.top_langs) != s.n_queries):
        raise _fail(path, where, "rel_langs must align with ranks, and top_langs hold one row per query")
    if any(not 0 <= q < n_query_ids for q in pq.query_index):
        raise _fail(path, f"{where}.query_index", "points outside `query_ids`")
    deepest = min(pq.depth or s.n_candidates, s.n_candidates)
    for q, ranks in enumerate(pq.ranks):
        _check_ranks(path, f"{where}.ranks.{q}", ranks, deepest, pq.depth)
        if any(g < 1 for g in grades[q]):
            raise _fail(path, f"{where}.grades.{q}", f"{grades[q]}: a results file lists relevant candidates only "
                                                      "(grade >= 1)")
        if pq.top_langs is not None and pq.rel_langs is not None:
            _check_top(path, f"{where}.top_langs.{q}", pq.top_langs[q], ranks, pq.rel_langs[q])


def _check_slice_labels(path: Path, result: ResultFile) -> None:
    """Settings and slice labels agree with the file's own spec: mono X->X, cross X->Y, multi X->all."""
    settings = result.settings
    if len(set(settings)) != len(settings) or not set(settings) <= set(result.task.settings):
        raise _fail(path, "settings", f"{settings}: each setting once, among the task's {result.task.settings}")
    langs = result.task.languages
    for i, s in enumerate(result.slices):
        cand_ok = {"mono": s.cand_lang == s.query_lang, "multi": s.cand_lang == ALL_LANGUAGES,
                   "cross": s.cand_lang in langs and s.cand_lang != s.query_lang}[s.setting]
        if s.setting not in settings or s.query_lang not in langs or not cand_ok:
            raise _fail(path, f"slices.{i}", f"slice {s.setting}/{s.query_lang}/{s.cand_lang} is none of the file's "
                                             f"settings {settings} on its languages {langs}")


def check_aggregates(path: Path, result: ResultFile) -> None:
    """Every stored number equals what xbench's own functions compute from the per-query data (checked first by
    `_check_per_query`, so that nothing is computed from malformed rows)."""
    for i, s in enumerate(result.slices):
        _compare(path, f"slices.{i}.scores", s.scores,
                 slice_means(per_query_scores(s.per_query, result.task.metrics, s.query_lang)))
    _compare(path, "summary", result.summary, summarise(result.slices))
    _compare(path, "bias", result.bias, bias_figures(result.slices))
    setting, _, metric = result.task.main_metric.partition(".")
    main = macro(result.summary, setting, metric)
    if math.isnan(main) and result.main_score is not None:
        raise _fail(path, "main_score", f"is {result.main_score!r} but the file has no {result.task.main_metric} "
                                        "(its setting did not run)", "remove it, or " + RERUN)
    if not math.isnan(main) and (result.main_score is None or not _close(result.main_score, main)):
        stored = "absent" if result.main_score is None else repr(result.main_score)
        raise _fail(path, "main_score", f"is {stored} but the per-query ranks give {main!r}")


def _read(path: Path) -> ResultFile:
    """The file, through the JSON Schema and the pydantic model, with well-formed slices and per-query rows."""
    raw = read_json(path)
    schema = read_json(SCHEMA_PATH)
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(raw))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise XbenchError(f"{path}: field `{where}`: {error.message} (results schema {SCHEMA_PATH.name}).")
    result = parse(path, raw)
    _check_slice_labels(path, result)
    for i, s in enumerate(result.slices):
        _check_per_query(path, i, s, len(result.query_ids))
    return result


def check_file(path: Path, tasks: LocalTasks | None = None) -> ResultFile:
    """The file against itself (schema, per-query data, aggregates); with `tasks`, also against the task it names,
    which must be one of them, with its data on this machine (checked before any aggregate is computed)."""
    result = _read(path)
    if tasks is not None:
        check_task(path, result, tasks)
    check_aggregates(path, result)
    return result


class LocalTasks:
    """The tasks of this machine that results are checked against; each task's data is hashed and loaded once."""

    def __init__(self, tasks: Mapping[str, Task]) -> None:
        self.tasks = tasks
        self._shas: dict[str, str] = {}
        self._data: dict[tuple[str, tuple[str, ...]], TaskData] = {}
        self._parts: dict[tuple[str, str], CorpusPart] = {}

    def find(self, path: Path, name: str) -> Task:
        if name not in self.tasks:
            close = difflib.get_close_matches(name, self.tasks, n=3)
            raise XbenchError(f"{path}: field `task.name`: unknown task {name!r}"
                              + (f" (did you mean {', '.join(close)}?)" if close else "")
                              + "; add its spec with --tasks-dir, or submit to a checkout that has it.")
        return self.tasks[name]

    def sha(self, task: Task) -> str:
        """The data identity a results file of `task` (on its languages) must carry: the shipped data's sha256, or
        for a streamed task the combination of its languages' identities (corpus content, topics, qrels)."""
        key = f"{task.name}/{','.join(task.spec.languages)}"
        if key not in self._shas:
            self._shas[key] = (combined_sha({lang: self.part(task, lang).identity for lang in task.spec.languages})
                               if task.streamed else task.data_sha256())
        return self._shas[key]

    def part(self, task: Task, lang: str) -> CorpusPart:
        """One language of a streamed task, opened once for its identity and its check (queries, qrels and an
        open corpus: small, whatever the corpus's size)."""
        key = (task.name, lang)
        if key not in self._parts:
            self._parts[key] = task.part(lang)
        return self._parts[key]

    def data(self, task: Task) -> TaskData:
        key = (task.name, tuple(task.spec.languages))
        if key not in self._data:
            self._data[key] = task.load()
        return self._data[key]


def local_tasks(tasks_dirs: tuple[Path, ...] = (), data_dirs: Mapping[str, Path] | None = None) -> LocalTasks:
    """The built-in tasks and those of `tasks_dirs`, with the data a task cannot ship (`--data-dir TASK=PATH`)."""
    tasks = with_data_dirs(list(discover(tasks_dirs).values()), data_dirs or {})
    return LocalTasks({task.name: task for task in tasks})


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _declared(path: Path, result: ResultFile, task: Task) -> Task:
    """The local task on the file's languages (all of them, or the subset a `--languages` run records), whose spec
    must equal the file's."""
    unknown = [lang for lang in result.task.languages if lang not in task.spec.languages]
    if unknown:
        raise _fail(path, "task.languages", f"{', '.join(unknown)} is no language of task {task.name} "
                                            f"({', '.join(task.spec.languages)})",
                    "a language subset names some of the task's languages; re-run with such a --languages")
    local = with_languages(task, result.task.languages)
    if result.task != local.spec:
        key = next(k for k in type(local.spec).model_fields if getattr(result.task, k) != getattr(local.spec, k))
        raise XbenchError(f"{path}: field `task.{key}` is {_short(getattr(result.task, key))} but the local spec "
                          f"({task.spec_path}) says {_short(getattr(local.spec, key))}; re-run the evaluation "
                          "with this task version.")
    return local


def check_task(path: Path, result: ResultFile, tasks: LocalTasks) -> None:
    """The file's task exists here with the same spec (on the declared languages) and data, and the file covers
    exactly that task: its slices, queries, pools, relevant sets, grades and depth."""
    task = _declared(path, result, tasks.find(path, result.task.name))
    sha = tasks.sha(task)
    if result.data_sha256 != sha:
        raise XbenchError(f"{path}: field `data_sha256` is {result.data_sha256[:16]}... but the local data of task "
                          f"{task.name} hashes to {sha[:16]}...; the file was computed on other data. Re-run "
                          "the evaluation on the shipped data.")
    plan = search_plan(task.spec)
    if task.streamed:
        keys = [f"mono/{lang}/{lang}" for lang in task.spec.languages] if "mono" in result.settings else []
        _check_streamed(path, result, task, tasks, _slice_positions(path, result, task, keys), plan.depth,
                        plan.method in APPROXIMATE)
        return
    data = tasks.data(task)
    if result.query_ids != data.queries["id"].tolist():
        raise _fail(path, "query_ids", f"differ from the {len(data.queries)} query ids of task {task.name} on "
                                       f"languages {', '.join(task.spec.languages)}")
    expected = {sl.key: sl for sl in slices(data, task.spec, list(result.settings))}
    view = _TaskView(data)
    for key, i in _slice_positions(path, result, task, list(expected)).items():
        _check_coverage(path, i, result.slices[i], expected[key], view, plan.depth, plan.method in APPROXIMATE)


def _slice_positions(path: Path, result: ResultFile, task: Task, expected: list[str]) -> dict[str, int]:
    """Where each of the task's slices (`setting/query language/candidate language`) sits in the file: each once,
    none missing, no other."""
    where_is: dict[str, int] = {}
    for i, s in enumerate(result.slices):
        key = f"{s.setting}/{s.query_lang}/{s.cand_lang}"
        if key in where_is:
            raise _fail(path, f"slices.{i}", f"slice {key} repeats slices.{where_is[key]}; each slice appears once")
        if key not in expected:
            raise _fail(path, f"slices.{i}", f"task {task.name} has no slice {key} (no query of {s.query_lang} has "
                                             "a relevant candidate there)")
        where_is[key] = i
    missing = [key for key in expected if key not in where_is]
    if missing:
        raise _fail(path, "slices", f"{len(missing)} slice(s) of task {task.name} are missing, e.g. {missing[0]}; "
                                    f"settings {','.join(result.settings)} on languages "
                                    f"{','.join(task.spec.languages)} give {len(expected)}")
    return where_is


def _check_streamed(path: Path, result: ResultFile, task: Task, tasks: LocalTasks, where_is: dict[str, int],
                    depth: int | None, approximate: bool) -> None:
    """A streamed task's file, one language at a time from its corpus's ids: the texts (33M passages for
    MIRACL-en) are never read, so checking a file takes less memory than the run that made it. The file lists
    either every query of its languages (one language's own file) or those with a relevant passage (a merge)."""
    every: list[str] = []
    scored: list[str] = []
    for lang in task.spec.languages:
        part = tasks.part(task, lang)
        qrels, rows, _ = part.judged(part.corpus.ids())
        query_ids = part.queries["id"].tolist()
        wanted = [query_ids[r] for r in rows.tolist()]
        every.extend(query_ids)
        scored.extend(wanted)
        i = where_is.get(f"mono/{lang}/{lang}")
        if i is None:  # no mono setting in the file: nothing of this language to check
            continue
        s = result.slices[i]
        if s.n_candidates != part.corpus.rows:
            raise _fail(path, f"slices.{i}.n_candidates", f"is {s.n_candidates} but the corpus of {lang} holds "
                                                          f"{part.corpus.rows:,} passages")
        if [result.query_ids[q] for q in s.per_query.query_index] != wanted:
            raise _fail(path, f"slices.{i}.per_query.query_index", f"does not list the {len(wanted)} queries of {lang} "
                                                                   "with a relevant passage in the corpus, in order")
        _check_depth(path, i, s, depth)
        _check_queries(path, i, s, wanted, partial(_relevant_in_one_language, qrels, lang), lambda qid: [],
                       Counter({lang: part.corpus.rows}), depth, approximate)
    if result.query_ids not in (every, scored):
        raise _fail(path, "query_ids", f"are neither the {len(every)} queries of task {task.name} on languages "
                                       f"{', '.join(task.spec.languages)} nor the {len(scored)} of them with a "
                                       "relevant passage in the corpus")


class _TaskView:
    """The lookups the coverage check needs, built once per task."""

    def __init__(self, data: TaskData) -> None:
        self.data = data
        self.query_ids = data.queries["id"].tolist()
        self.cand_ids = data.candidates["id"].to_numpy()
        self.cand_langs = data.candidates["lang"].to_numpy()
        self.lang_of = dict(zip(self.cand_ids.tolist(), self.cand_langs.tolist()))

    def judged(self, qid: str, pool: set[str]) -> list[tuple[int, str]]:
        """(grade, language) of each relevant candidate of `qid` in the pool, sorted: what its ranks must cover."""
        return sorted((g, self.lang_of[d]) for d, g in self.data.qrels.get(qid, {}).items() if g > 0 and d in pool)

    def hidden(self, qid: str, pool: set[str]) -> list[str]:
        """Languages of the candidates withheld from `qid` (a bitext query's own text) that are in the pool."""
        return [self.lang_of[d] for d in self.data.exclude.get(qid, ()) if d in pool]


def _relevant_in_one_language(qrels: dict[str, dict[str, int]], lang: str, qid: str) -> list[tuple[int, str]]:
    return sorted((g, lang) for g in qrels.get(qid, {}).values() if g > 0)


def _check_coverage(path: Path, i: int, s: SliceResult, sl: Slice, view: _TaskView, depth: int | None,
                    approximate: bool) -> None:
    """One slice against the task's: pool size, queries in order, relevant sets and grades, depth, top width."""
    if s.n_candidates != len(sl.cand_rows):
        raise _fail(path, f"slices.{i}.n_candidates", f"is {s.n_candidates} but the task's pool for {sl.key} holds "
                                                      f"{len(sl.cand_rows)}")
    if s.per_query.query_index != sl.query_rows.tolist():
        raise _fail(path, f"slices.{i}.per_query.query_index", f"does not list the {len(sl.query_rows)} queries of "
                                                               f"{sl.key} once each, in the task's order")
    _check_depth(path, i, s, depth)
    pool = set(view.cand_ids[sl.cand_rows].tolist())
    _check_queries(path, i, s, [view.query_ids[row] for row in sl.query_rows.tolist()],
                   lambda qid: view.judged(qid, pool), lambda qid: view.hidden(qid, pool),
                   Counter(view.cand_langs[sl.cand_rows].tolist()), depth, approximate)


def _check_depth(path: Path, i: int, s: SliceResult, depth: int | None) -> None:
    if s.per_query.depth != depth:
        raise _fail(path, f"slices.{i}.per_query.depth", f"is {s.per_query.depth} but the task's search depth is "
                                                         f"{depth} (absent = the whole pool is ranked)")


def _check_queries(path: Path, i: int, s: SliceResult, query_ids: list[str],
                   judged: Callable[[str], list[tuple[int, str]]], hidden: Callable[[str], list[str]],
                   pool_langs: Counter, depth: int | None, approximate: bool) -> None:
    """Each query's ranks, grades and languages against the task's: `judged` gives (grade, language) of a query's
    relevant candidates in the pool, sorted; `hidden` the languages of those withheld from it."""
    pq, field, key = s.per_query, f"slices.{i}.per_query", f"{s.setting}/{s.query_lang}/{s.cand_lang}"
    grades = pq.grade_lists()
    for q, qid in enumerate(query_ids):
        relevant = judged(qid)
        wanted = [g for g, _ in relevant]
        if len(pq.ranks[q]) != len(relevant):
            raise _fail(path, f"{field}.ranks.{q}", f"ranks {len(pq.ranks[q])} candidates but query {qid!r} has "
                                                    f"{len(relevant)} relevant in the pool of {key}")
        if sorted(grades[q]) != wanted:
            raise _fail(path, f"{field}.grades.{q}", f"{grades[q]} are not the grades {wanted} the task's qrels "
                                                     f"give query {qid!r}")
        if pq.rel_langs is not None and sorted(zip(grades[q], pq.rel_langs[q])) != relevant:
            raise _fail(path, f"{field}.rel_langs.{q}", f"{pq.rel_langs[q]} are not the languages of query {qid!r}'s "
                                                        "relevant candidates")
        if pq.top_langs is not None:
            _check_top_width(path, f"{field}.top_langs.{q}", pq.top_langs[q], pool_langs, hidden(qid), depth,
                             approximate)


def _check_top_width(path: Path, where: str, top: Sequence[str], pool_langs: Counter, hidden: list[str],
                     depth: int | None, approximate: bool) -> None:
    """The top list is as long as the ranking allows and holds no more of a language than the pool has."""
    left = pool_langs - Counter(hidden)
    width = min(TOP, sum(left.values()), depth or TOP)
    if len(top) > width or (len(top) < width and not approximate):
        raise _fail(path, where, f"holds {len(top)} languages; the pool gives a top list of {width}")
    over = next((lang for lang, n in Counter(top).items() if n > left[lang]), None)
    if over is not None:
        raise _fail(path, where, f"holds {Counter(top)[over]} candidates in {over!r}; the pool has {left[over]}")


def validate(path: Path, tasks: LocalTasks) -> str:
    """`xbench validate`: the file against itself, and against its task where the task and its data are here; says
    which (a file whose task is unknown here is still checked against itself)."""
    result = _read(path)
    name = result.task.name
    outcome = f"valid (against itself and task {name!r})"
    if name not in tasks.tasks:
        outcome = (f"valid against itself only: task {name!r} is not known here; pass --tasks-dir with its spec to "
                   "check the file against the task")
    else:
        try:
            check_task(path, result, tasks)
        except DataUnavailable as exc:
            outcome = f"valid against itself only: the data of task {name!r} is not here ({exc})"
    check_aggregates(path, result)
    return outcome
