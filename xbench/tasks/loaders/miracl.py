"""MIRACL (Zhang et al. 2023): monolingual passage retrieval in 18 languages, all in one task.

Topics and qrels ship in data/miracl (verified by SHA256SUMS). Passages do not (tens of GB of Wikipedia text):
they are read per language from a BEIR-layout folder `<root>/<lang>/corpus.jsonl` (or `.jsonl.gz`; records
with `_id` or `docid`, `title`, `text`). `root` is `options.local_dir` (`xbench run --data-dir TASK=PATH` sets
it; relative to the task's data folder) or else the xbench data cache that `xbench data miracl` fills. Only
passages come from that folder: queries and qrels always come from the shipped files, so a folder cannot
change what the task measures.

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
import json
from pathlib import Path

import pandas as pd

from xbench.errors import DataUnavailable, XbenchError
from xbench.paths import default_cache_root
from xbench.tasks.loaders.base import register
from xbench.tasks.loaders.common import data_file, fill_template, loader_options
from xbench.tasks.spec import SEARCH_OPTIONS, TaskSpec
from xbench.tasks.taskdata import TaskData

LANGUAGES = ("ar", "bn", "de", "en", "es", "fa", "fi", "fr", "hi", "id", "ja", "ko", "ru", "sw", "te", "th", "yo",
             "zh")
VARIANTS = ("full", "judged")
SOURCE_FILE = "xbench-source.json"  # provenance written by `xbench data miracl` next to corpus.jsonl
OPTIONS = {
    "variant": "full (whole corpus, default) | judged (the passages the dev qrels name)",
    "local_dir": "folder holding <lang>/corpus.jsonl in BEIR layout (default: the xbench data cache)",
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


def find_corpus(folder: Path) -> Path | None:
    """A language folder's corpus file, plain or gzip-compressed, if there is one."""
    return next((p for p in (folder / "corpus.jsonl", folder / "corpus.jsonl.gz") if p.is_file()), None)


def read_corpus(path: Path) -> pd.DataFrame:
    """BEIR (`_id`) or MIRACL (`docid`) JSON lines as columns docid, title, text; pyarrow parses in parallel."""
    import pyarrow as pa  # lazy: only for MIRACL's large files
    from pyarrow import json as pa_json

    schema = pa.schema([pa.field(name, pa.string()) for name in ("_id", "docid", "title", "text")])
    try:
        table = pa_json.read_json(path, read_options=pa_json.ReadOptions(block_size=1 << 24),
                                  parse_options=pa_json.ParseOptions(explicit_schema=schema,
                                                                     unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        raise XbenchError(f"{path}: cannot be read as JSON lines of passages ({exc}); expected records "
                          '{"_id": "<docid>", "title": "...", "text": "..."} with string values.') from None
    frame = table.to_pandas()
    ids = frame["_id"].fillna(frame["docid"])
    if ids.isna().any():
        raise XbenchError(f"{path}: {int(ids.isna().sum())} records have neither `_id` nor `docid`; every passage "
                          "needs its MIRACL docid.")
    return pd.DataFrame({"docid": ids, "title": frame["title"].fillna(""), "text": frame["text"].fillna("")})


def _roots(data_dir: Path, variant: str, local_dir: str | None) -> list[Path]:
    """Folders to look in, first match wins: the given one, else the cache (a full corpus also serves judged)."""
    if local_dir is not None:
        return [data_dir / Path(local_dir).expanduser()]
    return [cache_dir(v) for v in dict.fromkeys((variant, "full"))]


def _missing(spec: TaskSpec, variant: str, langs: list[str], roots: list[Path], local_dir: str | None) -> XbenchError:
    """No corpus for `langs`: a user error for a folder the user named, otherwise a skip with the fetch command."""
    looked = " or ".join(str(r / "<lang>" / "corpus.jsonl") for r in roots)
    if local_dir is not None:
        return XbenchError(f"task {spec.name}: no MIRACL passages for {', '.join(langs)} in {looked} (field "
                           f"`options.local_dir` or --data-dir {spec.name}=PATH); give a folder holding "
                           "<lang>/corpus.jsonl (BEIR layout), e.g. one written by `xbench data miracl --out`.")
    which = "all" if sorted(langs) == sorted(LANGUAGES) else ",".join(langs)
    return DataUnavailable(
        f"task {spec.name} needs the MIRACL passages for {', '.join(langs)}, which do not ship with xbench "
        f"(looked in {looked}). Fetch them (online, once) with `xbench data miracl --lang {which} --variant "
        f"{variant}`, or pass --data-dir {spec.name}=PATH with PATH/<lang>/corpus.jsonl in BEIR layout.")


def _provenance(folder: Path) -> str:
    try:
        info = json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8"))
        return f"{info['source']} ({info['variant']})"
    except (OSError, ValueError, KeyError, TypeError):
        return f"no {SOURCE_FILE}: not written by `xbench data`, origin unknown"


def _passages(spec: TaskSpec, path: Path, lang: str, judged: set[str] | None, notes: list[str]) -> pd.DataFrame:
    """One language's candidates (prefixed ids, templated texts); duplicates and empty passages dropped, noted."""
    corpus = read_corpus(path)
    if judged is not None:
        corpus = corpus[corpus["docid"].isin(judged)]
    texts = pd.Series([fill_template(spec.doc_template, spec, "doc_template", title=t, text=x)
                       for t, x in zip(corpus["title"], corpus["text"])], index=corpus.index, dtype=str)
    dup, empty = corpus["docid"].duplicated(), texts.str.strip() == ""
    if dup.any() or empty.any():
        notes.append(f"{lang}: {path} has {int(dup.sum())} repeated docids (first kept) and "
                     f"{int((empty & ~dup).sum())} empty passages (left out).")
    keep = ~dup & ~empty
    return pd.DataFrame({"id": lang + ":" + corpus["docid"][keep], "text": texts[keep], "lang": lang,
                         "group_id": None, "domain": None, "title": corpus["title"][keep]}).reset_index(drop=True)


@register("miracl")
def load_miracl(spec: TaskSpec, data_dir: Path) -> TaskData:
    options = loader_options(spec, {**OPTIONS, **SEARCH_OPTIONS})
    variant = options.get("variant", "full")
    if variant not in VARIANTS:
        raise XbenchError(f"task {spec.name}: field `options.variant` is {variant!r}; use one of {list(VARIANTS)}.")
    unknown = [lang for lang in spec.languages if lang not in LANGUAGES]
    if unknown:
        raise XbenchError(f"task {spec.name}: field `languages` has {unknown}, which MIRACL lacks; its languages: "
                          f"{list(LANGUAGES)}.")
    roots = _roots(data_dir, variant, options.get("local_dir"))
    found = {lang: next((p for p in (find_corpus(r / lang) for r in roots) if p), None) for lang in spec.languages}
    missing = [lang for lang, path in found.items() if path is None]
    if missing:
        raise _missing(spec, variant, missing, roots, options.get("local_dir"))
    queries, candidates, qrels = [], [], {}
    notes: list[str] = []
    for lang, path in found.items():
        assert path is not None  # languages without a corpus raised above
        topics = read_topics(data_file(spec, data_dir, topics_path(data_dir, lang).name, "languages"))
        judgements = read_qrels(data_file(spec, data_dir, qrels_path(data_dir, lang).name, "languages"))
        judged = set(judgements["docid"])
        pool = _passages(spec, path, lang, judged if variant == "judged" else None, notes)
        notes.append(f"{lang}: {len(pool):,} passages from {path} [{_provenance(path.parent)}]")
        known = set(pool["id"])
        judgements = judgements.assign(qid=lang + ":" + judgements["qid"], docid=lang + ":" + judgements["docid"])
        absent = judgements[~judgements["docid"].isin(known)]
        if not absent.empty:
            relevant = judgements[judgements["grade"] > 0]
            lost = set(relevant["qid"]) - set(relevant.loc[relevant["docid"].isin(known), "qid"])
            notes.append(f"{lang}: {absent['docid'].nunique():,} of {len(judged):,} judged passages "
                         f"({absent.loc[absent['grade'] > 0, 'docid'].nunique():,} relevant) are not in the corpus; "
                         f"they are left out of the qrels and {len(lost):,} queries lose every relevant passage, "
                         "so scores cover the passages present only.")
        for qid, group in judgements[judgements["docid"].isin(known)].groupby("qid", sort=False):
            qrels[qid] = dict(zip(group["docid"], group["grade"].tolist()))
        queries.append(pd.DataFrame({
            "id": lang + ":" + topics["qid"], "lang": lang, "group_id": None, "domain": None, "title": "",
            "text": [fill_template(spec.query_template, spec, "query_template", text=t) for t in topics["text"]]}))
        candidates.append(pool)
    return TaskData(queries=pd.concat(queries, ignore_index=True), candidates=pd.concat(candidates, ignore_index=True),
                    qrels=qrels, notes=notes)
