"""Results of one model on one task, run language by language, merged into one file with the macro average.

A task whose corpus is streamed (MIRACL) runs one language at a time and stores each language's results file
(`<task>.<lang>.json`); runs made separately (`--languages sw`, later `--languages yo`) merge the same way, by
`xbench merge` or automatically once an output folder holds every language. Merging needs no data: each file
carries its languages' data identities (`data_parts`), and the merged `data_sha256` is their combination, so a
merged file equals the file of one run over all languages, slices, per-query data and aggregates alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from xbench.errors import XbenchError
from xbench.results.schema import ResultFile, RunInfo, SliceResult
from xbench.scoring.aggregate import bias_figures, main_score, summarise


def combined_sha(parts: Mapping[str, str]) -> str:
    """The data identity of a run over these languages: one hash of every language's, in language order."""
    return hashlib.sha256(json.dumps(sorted(parts.items())).encode()).hexdigest()


def _check_compatible(first: ResultFile, other: ResultFile, where: str) -> None:
    if other.model.fingerprint != first.model.fingerprint:
        raise XbenchError(f"{where}: model {other.model.name!r} (fingerprint {other.model.fingerprint[:12]}) is "
                          f"not the model of the first file ({first.model.name!r}, {first.model.fingerprint[:12]}); "
                          "merge the files of one model only.")
    base = first.task.model_copy(update={"languages": []})
    if other.task.model_copy(update={"languages": []}) != base:
        raise XbenchError(f"{where}: field `task` differs from the first file's beyond its languages (another task "
                          "or task version); merge files of one task version only.")
    if other.settings != first.settings:
        raise XbenchError(f"{where}: field `settings` is {other.settings}, the first file's {first.settings}; "
                          "re-run with the same --settings.")
    if other.data_parts is None:
        raise XbenchError(f"{where}: field `data_parts` is missing: only files of a task run language by language "
                          "(a streamed corpus) merge.")


def merge(files: Sequence[tuple[str, ResultFile]], order: Sequence[str], command: str) -> ResultFile:
    """One file from (label, file) pairs of disjoint languages; `order` gives the languages' order (the task's own),
    `command` the reproduce command of the whole run. A language in two files must hold the same data and ranks
    (a file of an earlier run beside a merged one); anything else is an error naming the file and field."""
    if not files:
        raise XbenchError("merge: no results files given.")
    first = files[0][1]
    by_lang: dict[str, tuple[str, ResultFile]] = {}
    for where, result in files:
        _check_compatible(first, result, where)
        assert result.data_parts is not None  # checked above
        for lang in result.task.languages:
            seen = by_lang.get(lang)
            if seen is not None and (seen[1].data_parts or {}).get(lang) != result.data_parts.get(lang):
                raise XbenchError(f"{where}: language {lang} is also in {seen[0]} with other data (field "
                                  "`data_parts`); keep the file of the data you mean and drop the other.")
            by_lang.setdefault(lang, (where, result))
    unknown = sorted(set(by_lang) - set(order))
    if unknown:
        raise XbenchError(f"merge: languages {unknown} are no languages of task {first.task.name}.")
    langs = [lang for lang in order if lang in by_lang]
    query_ids: list[str] = []
    slices: list[SliceResult] = []
    notes: list[str] = []
    counts: dict[str, int] = {}
    timings: dict[str, float] = {}
    parts: dict[str, str] = {}
    for lang in langs:
        result = by_lang[lang][1]
        assert result.data_parts is not None
        parts[lang] = result.data_parts[lang]
        rows = [i for i, s in enumerate(result.slices) if s.query_lang == lang]
        used = sorted({q for i in rows for q in result.slices[i].per_query.query_index})
        new_index = {q: len(query_ids) + j for j, q in enumerate(used)}
        query_ids.extend(result.query_ids[q] for q in used)
        for i in rows:
            s = result.slices[i]
            pq = s.per_query.model_copy(update={"query_index": [new_index[q] for q in s.per_query.query_index]})
            slices.append(s.model_copy(update={"per_query": pq}))
        own = len(result.task.languages) == 1  # a language's own file: its notes, counts, timings are that language's
        notes.extend(n for n in result.run.notes or () if own or n.startswith(f"{lang}:"))
        if own:
            for key, value in result.run.counts.items():
                counts[key] = counts.get(key, 0) + value
            for key, sec in result.run.timings.items():
                timings[key] = round(timings.get(key, 0.0) + sec, 3)
    latest = max((r for _, r in by_lang.values()), key=lambda r: r.run.finished).run
    run = RunInfo(**{**latest.model_dump(), "command": command, "counts": counts or latest.counts,
                     "timings": timings or latest.timings, "notes": notes or None,
                     "started": min(r.run.started for _, r in by_lang.values())})
    summary = summarise(slices)
    return ResultFile(task=first.task.model_copy(update={"languages": langs}), data_sha256=combined_sha(parts),
                      data_parts=parts, model=first.model, run=run, settings=first.settings,
                      main_score=main_score(summary, first.task.main_metric), summary=summary,
                      bias=bias_figures(slices), query_ids=query_ids, slices=slices)
