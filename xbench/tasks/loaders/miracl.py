"""MIRACL (Zhang et al. 2023): monolingual passage retrieval in 18 languages, all in one task.

Topics and qrels ship in data/miracl (verified by SHA256SUMS). Passages do not (tens of GB of Wikipedia text):
each language's corpus lies in `<root>/<lang>/`, as Parquet (`corpus.parquet` + `corpus.json`, written by
`xbench data miracl` or `xbench data convert`) or as BEIR JSON lines (`corpus.jsonl[.gz]`, records with `_id` or
`docid`, `title`, `text`), which is converted to Parquet once into the xbench cache (xbench/tasks/corpus.py).
`root` is `options.local_dir` (`xbench run --data-dir TASK=PATH` sets it; relative to the task's data folder) or
else the xbench data cache that `xbench data miracl` fills. A user folder's own BEIR `queries.jsonl` and
`qrels/dev.tsv` are used when the language folder has them (then the numbers are the user's, and the results
file's data identity says so); otherwise the shipped topics and qrels.

The language is the unit of work (`load_part`): queries and qrels are held, the corpus is streamed, and its
content fingerprint is part of the language's data identity, so another corpus is never "up to date".

`options.variant`: `full` ranks the language's whole corpus (MIRACL's setting); `judged` ranks only the
passages the language's dev qrels name (its relevant and judged non-relevant passages, 942 to 25,881 per
language), read from a judged folder or filtered out of a full one.

Ids: MIRACL query ids and docids repeat across languages (Wikipedia article ids are per wiki), so both get the
language as prefix (`ar:0`, `ar:151236#1`). One pooled table then holds every language with unique ids, and
the mono slices of settings.py (queries in X against candidates in X) are exactly MIRACL's per-language runs.

No corpus here: the task is skipped (DataUnavailable) with the command that fetches one. Judged ids missing
from a corpus are dropped from the qrels and counted in the notes (printed, and stored in the results file).
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pandas as pd

from xbench.errors import DataUnavailable, XbenchError
from xbench.paths import default_cache_root
from xbench.tasks.corpus import MANIFEST, find_or_convert, source_file
from xbench.tasks.loaders.base import register, register_parts
from xbench.tasks.loaders.common import data_file, fill_template, loader_options, text_option
from xbench.tasks.spec import SEARCH_OPTIONS, TaskSpec
from xbench.tasks.taskdata import CorpusPart, CorpusSource, TaskData

LANGUAGES = ("ar", "bn", "de", "en", "es", "fa", "fi", "fr", "hi", "id", "ja", "ko", "ru", "sw", "te", "th", "yo",
             "zh")
VARIANTS = ("full", "judged")
SOURCE_FILE = "xbench-source.json"  # provenance written by `xbench data miracl` next to corpus.parquet
OPTIONS = {
    "variant": "full (whole corpus, default) | judged (the passages the dev qrels name)",
    "local_dir": "folder holding <lang>/corpus.parquet (xbench data convert) or <lang>/corpus.jsonl[.gz] (BEIR) "
                 "(default: the xbench data cache)",
}


def topics_path(data_dir: Path, lang: str) -> Path:
    return data_dir / f"topics.miracl-v1.0-{lang}-dev.tsv.gz"


def qrels_path(data_dir: Path, lang: str) -> Path:
    return data_dir / f"qrels.miracl-v1.0-{lang}-dev.tsv.gz"


def cache_dir(variant: str) -> Path:
    """Where `xbench data miracl` writes a variant's language folders by default."""
    return default_cache_root() / "data" / "miracl" / variant


def _tsv(path: Path, names: list[str]) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", header=None, names=names, dtype=str, quoting=csv.QUOTE_NONE,
                           keep_default_na=False, compression="gzip")
    except FileNotFoundError:
        raise XbenchError(f"{path}: data file not found; check the task's `source.dir` and `languages`.") from None
    except (OSError, EOFError, ValueError, pd.errors.ParserError) as exc:
        raise XbenchError(f"{path}: cannot be read as a tab-separated file ({exc}); restore it from git.") from None


def read_topics(path: Path) -> pd.DataFrame:
    """Topics TSV (`qid<TAB>query`) as columns qid, text."""
    return _tsv(path, ["qid", "text"])


def read_qrels(path: Path) -> pd.DataFrame:
    """TREC qrels (`qid Q0 docid grade`, tab-separated) as columns qid, docid, grade (int)."""
    table = _tsv(path, ["qid", "q0", "docid", "grade"])
    grades = pd.to_numeric(table["grade"], errors="coerce")
    if grades.isna().any() or (table["docid"] == "").any():
        line = int((grades.isna() | (table["docid"] == "")).to_numpy().argmax()) + 1
        raise XbenchError(f"{path}:{line}: expected 'qid<TAB>Q0<TAB>docid<TAB>grade' with an integer grade.")
    return table.assign(grade=grades.astype(int))[["qid", "docid", "grade"]]


def _roots(data_dir: Path, variant: str, local_dir: str | None) -> list[Path]:
    """Folders to look in, first match wins: the given one, else the cache (a full corpus also serves judged)."""
    if local_dir is not None:
        return [data_dir / Path(local_dir).expanduser()]
    return [cache_dir(v) for v in dict.fromkeys((variant, "full"))]


def _missing(spec: TaskSpec, variant: str, langs: list[str], roots: list[Path], local_dir: str | None) -> XbenchError:
    """No corpus for `langs`: a user error for a folder the user named, otherwise a skip with the fetch command."""
    looked = " or ".join(str(r / "<lang>" / "corpus.{parquet,jsonl}") for r in roots)
    if local_dir is not None:
        return XbenchError(f"task {spec.name}: no MIRACL passages for {', '.join(langs)} in {looked} (field "
                           f"`options.local_dir` or --data-dir {spec.name}=PATH); give a folder holding "
                           "<lang>/corpus.parquet or <lang>/corpus.jsonl (BEIR layout), e.g. one written by "
                           "`xbench data miracl --out`.")
    which = "all" if sorted(langs) == sorted(LANGUAGES) else ",".join(langs)
    return DataUnavailable(
        f"task {spec.name} needs the MIRACL passages for {', '.join(langs)}, which do not ship with xbench "
        f"(looked in {looked}). Fetch them (online, once) with `xbench data miracl --lang {which} --variant "
        f"{variant}`, or pass --data-dir {spec.name}=PATH with PATH/<lang>/corpus.jsonl in BEIR layout (or "
        "corpus.parquet from `xbench data convert`).")


def _provenance(folder: Path) -> str:
    try:
        info = json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8"))
        return f"{info['source']} ({info['variant']})"
    except (OSError, ValueError, KeyError, TypeError):
        return f"no {SOURCE_FILE}: not written by `xbench data`, origin unknown"


def _has_corpus(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() or source_file(folder) is not None


def _beir_topics(folder: Path) -> pd.DataFrame | None:
    """A user's BEIR `queries.jsonl` (`_id`, `text`) as columns qid, text, if the language folder has one."""
    path = folder / "queries.jsonl"
    if not path.is_file():
        return None
    try:
        table = pd.read_json(path, lines=True, dtype={"_id": str, "text": str})
        return pd.DataFrame({"qid": table["_id"].astype(str), "text": table["text"].fillna("").astype(str)})
    except (ValueError, KeyError) as exc:
        raise XbenchError(f"{path}: cannot be read as BEIR queries ({exc}); expected one JSON record per line "
                          '{"_id": "<qid>", "text": "..."}.') from None


def _beir_qrels(folder: Path) -> pd.DataFrame | None:
    """A user's BEIR `qrels/dev.tsv` (header `query-id corpus-id score`) as columns qid, docid, grade."""
    path = folder / "qrels" / "dev.tsv"
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
        grades = pd.to_numeric(table["score"], errors="raise").astype(int)
        return pd.DataFrame({"qid": table["query-id"], "docid": table["corpus-id"], "grade": grades})
    except (ValueError, KeyError, pd.errors.ParserError) as exc:
        raise XbenchError(f"{path}: cannot be read as BEIR qrels ({exc}); expected a header line "
                          "'query-id<TAB>corpus-id<TAB>score' and integer scores.") from None


def _identity(corpus: CorpusSource, topics: pd.DataFrame, qrels: pd.DataFrame) -> str:
    """What makes this language's numbers: the corpus as templated and filtered, the topics and the qrels."""
    digest = hashlib.sha256(corpus.fingerprint.encode())
    for table in (topics, qrels):
        digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _variant(spec: TaskSpec) -> tuple[str, str | None]:
    options = loader_options(spec, {**OPTIONS, **SEARCH_OPTIONS})
    variant = options.get("variant", "full")
    if variant not in VARIANTS:
        raise XbenchError(f"task {spec.name}: field `options.variant` is {variant!r}; use one of {list(VARIANTS)}.")
    unknown = [lang for lang in spec.languages if lang not in LANGUAGES]
    if unknown:
        raise XbenchError(f"task {spec.name}: field `languages` has {unknown}, which MIRACL lacks; its languages: "
                          f"{list(LANGUAGES)}.")
    return variant, text_option(spec, options, "local_dir")


@register_parts("miracl")
def load_part(spec: TaskSpec, data_dir: Path, lang: str) -> CorpusPart:
    """One language: topics and qrels (a user folder's BEIR queries.jsonl and qrels/dev.tsv when it has them,
    else the shipped ones) and its passages opened for streaming (converted to Parquet once if they are JSON
    lines). `judged` keeps the passages the qrels name."""
    variant, local_dir = _variant(spec)
    roots = _roots(data_dir, variant, local_dir)
    absent = [x for x in spec.languages if not any(_has_corpus(r / x) for r in roots)]
    if absent:  # all or nothing, named at once: a run that stops at its tenth language would waste the first nine
        raise _missing(spec, variant, absent, roots, local_dir)
    found = next(((r / lang, c) for r in roots if (c := find_or_convert(r / lang, default_cache_root()))), None)
    if found is None:
        raise _missing(spec, variant, [lang], roots, local_dir)
    folder, corpus = found
    user = local_dir is not None
    topics = (_beir_topics(folder) if user else None)
    topics = topics if topics is not None else read_topics(
        data_file(spec, data_dir, topics_path(data_dir, lang).name, "languages"))
    judgements = (_beir_qrels(folder) if user else None)
    judgements = judgements if judgements is not None else read_qrels(
        data_file(spec, data_dir, qrels_path(data_dir, lang).name, "languages"))
    view = corpus.view(spec.doc_template, keep=set(judgements["docid"]) if variant == "judged" else None,
                       prefix=f"{lang}:", task=spec.name)
    qrels: dict[str, dict[str, int]] = {}
    for qid, group in judgements.groupby("qid", sort=False):
        qrels[f"{lang}:{qid}"] = dict(zip(lang + ":" + group["docid"], group["grade"].tolist()))
    queries = pd.DataFrame({
        "id": lang + ":" + topics["qid"], "lang": lang, "group_id": None, "domain": None, "title": "",
        "text": [fill_template(spec.query_template, spec, "query_template", text=t) for t in topics["text"]]})
    notes = [f"{lang}: {view.rows:,} passages from {folder} [{_provenance(folder)}]", *view.notes]
    return CorpusPart(lang=lang, queries=queries, qrels=qrels, corpus=view,
                      identity=_identity(view, topics, judgements), notes=notes)


@register("miracl")
def load_miracl(spec: TaskSpec, data_dir: Path) -> TaskData:
    """Every language at once, passages held in memory: for small corpora (the judged pools) and the checks that
    need the whole table (`xbench validate`, the mteb export). `xbench run` streams instead (`load_part`)."""
    _variant(spec)
    queries, candidates, qrels, notes = [], [], {}, []
    for lang in spec.languages:
        part = load_part(spec, data_dir, lang)
        arrow_ids = part.corpus.ids()
        ids = arrow_ids.to_pylist()
        texts = [t for _, batch in part.corpus.batches(1 << 16) for t in batch]
        kept, _, note = part.judged(arrow_ids)
        qrels.update(kept)
        notes.extend([*part.notes, *([note] if note else [])])
        queries.append(part.queries)
        candidates.append(pd.DataFrame({"id": ids, "text": texts, "lang": lang, "group_id": None, "domain": None}))
    return TaskData(queries=pd.concat(queries, ignore_index=True), candidates=pd.concat(candidates, ignore_index=True),
                    qrels=qrels, notes=notes)
