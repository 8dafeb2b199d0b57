"""`xbench data`: fetch, once and online, the task data that cannot ship with xbench, where loaders look for it.

MIRACL: for each language, stream `miracl-corpus-v1.0-<lang>/docs-*.jsonl.gz` from the `miracl/miracl-corpus`
revision pinned in the task spec through `datasets` (json builder, streaming: nothing is kept but the output),
keep every passage (`full`) or the passages the shipped dev qrels name (`judged`: what the `miracl/miracl`
loading script joins, which `datasets` >= 4 no longer runs), and write a folder: the passages as corpus.parquet
+ corpus.json (xbench.tasks.corpus; streamed in Arrow tables, never held whole), queries.jsonl and qrels/dev.tsv
in BEIR layout (for other BEIR tools; xbench reads its shipped topics and qrels) and xbench-source.json
(provenance). A folder appears whole or not at all: it is written aside, then renamed.
`source` may be a local folder laid out like the hub dataset (e.g. a git clone of it): the same
`load_dataset("json", ...)` call reads it, which is also how the tests exercise this path.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xbench.errors import XbenchError
from xbench.io import hub_reachable, scratch
from xbench.tasks.corpus import ROW_GROUP, convert_batches
from xbench.tasks.loaders.miracl import (
    LANGUAGES,
    SOURCE_FILE,
    VARIANTS,
    cache_dir,
    qrels_path,
    read_qrels,
    read_topics,
    topics_path,
)
from xbench.tasks.registry import Task, discover

if TYPE_CHECKING:
    import pyarrow as pa

HUB = "hf://datasets/"
MIRACL_TASK = "miracl"  # the built-in spec whose data and corpus revision `xbench data miracl` uses


@dataclass(frozen=True)
class Prepared:
    lang: str
    folder: Path
    passages: int
    judged_absent: int  # judged docids the corpus did not have


def miracl_languages(arg: str) -> list[str]:
    """`all` or a comma-separated list, each one of MIRACL's languages."""
    langs = list(LANGUAGES) if arg.strip() == "all" else [x.strip() for x in arg.split(",") if x.strip()]
    bad = [x for x in langs if x not in LANGUAGES]
    if bad or not langs:
        raise XbenchError(f"--lang {arg}: unknown {bad or 'nothing given'}; use all or a comma-separated subset of "
                          f"{','.join(LANGUAGES)}.")
    return langs


def hub_source(task: Task) -> str:
    """`hf://datasets/<dataset>@<revision>` of the corpus the task pins."""
    hub = task.spec.source.hub
    if hub is None:
        raise XbenchError(f"{task.spec_path}: task {task.name}: field `source.hub` is missing; it pins the "
                          "miracl/miracl-corpus revision.")
    return f"{HUB}{hub.dataset}@{hub.revision}"


def prepare_miracl(langs: list[str], variant: str, out_root: Path | None = None, source: str | None = None,
                   task: Task | None = None) -> Iterator[Prepared]:
    """Write `<out_root>/<lang>/` (default: the xbench data cache) for each language; yields as each is done.
    `task` (default: the built-in miracl) gives the topics, qrels and pinned corpus revision."""
    if variant not in VARIANTS:
        raise XbenchError(f"--variant {variant}: use one of {list(VARIANTS)}.")
    task = task or discover()[MIRACL_TASK]
    task.data_sha256()  # the shipped topics and qrels are verified before they select or accompany passages
    source = (source or hub_source(task)).rstrip("/")
    if source.startswith(HUB) and not hub_reachable():
        raise XbenchError(f"the Hugging Face hub is unreachable from here, so the MIRACL passages ({source}) cannot "
                          "be fetched. Run this command where the hub is reachable and copy the folder it writes, "
                          "or pass --source with a local copy of the dataset "
                          "(miracl-corpus-v1.0-<lang>/docs-*.jsonl.gz).")
    out_root = out_root or cache_dir(variant)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XbenchError(f"{out_root}: cannot create the output folder ({exc.strerror}); "
                          "pass a writable --out.") from None
    data_dir = task.data_dir
    assert data_dir is not None  # data_sha256 above raised if the task had no data folder
    for lang in langs:
        yield _write_language(data_dir, lang, variant, source, out_root)


def _stream(source: str, lang: str) -> Iterator[pa.Table]:
    """The language's corpus records, in file order, as Arrow tables of ROW_GROUP rows through the `datasets`
    json builder."""
    from datasets import load_dataset  # lazy: heavy; only for mteb and hub data

    files = f"{source}/miracl-corpus-v1.0-{lang}/docs-*.jsonl.gz"
    try:
        yield from load_dataset("json", data_files=files, split="train", streaming=True).with_format("arrow").iter(
            batch_size=ROW_GROUP)
    except Exception as exc:  # the hub client, fsspec and the json builder raise many types; all mean "no data"
        raise XbenchError(f"{files}: cannot read the MIRACL passages ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); check --source and the "
                          "connection, then retry.") from None


def _judged_tables(tables: Iterator[pa.Table], judged: set[str], variant: str, seen: set[str],
                   where: str) -> Iterator[pa.Table]:
    """The tables (only their judged rows for `judged`), adding the judged docids met to `seen`."""
    import pyarrow as pa  # lazy: heavy
    import pyarrow.compute as pc

    judged_ids = pa.array(sorted(judged), pa.string())
    for table in tables:
        try:
            found = pc.is_in(table.column("docid"), value_set=judged_ids)
        except (KeyError, pa.ArrowException):  # no docid field, or not strings
            fields = ", ".join(f"{f.name}: {f.type}" for f in table.schema)
            raise XbenchError(f"{where}: the records lack a string `docid` (fields: {fields}); --source must hold "
                              "MIRACL corpus files.") from None
        seen.update(table.column("docid").filter(found).to_pylist())
        yield table.filter(found) if variant == "judged" else table


def _write_language(data_dir: Path, lang: str, variant: str, source: str, out_root: Path) -> Prepared:
    topics, qrels = read_topics(topics_path(data_dir, lang)), read_qrels(qrels_path(data_dir, lang))
    judged = set(qrels["docid"])
    tmp = scratch(out_root, f".{lang}-")
    try:
        seen: set[str] = set()
        where = f"{source}/miracl-corpus-v1.0-{lang}"
        kept = convert_batches(_judged_tables(_stream(source, lang), judged, variant, seen, where), tmp,
                               f"{where} ({variant})", desc=f"miracl {lang}").rows
        with (tmp / "queries.jsonl").open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"_id": q, "text": t}, ensure_ascii=False) + "\n"
                          for q, t in zip(topics["qid"], topics["text"]))
        (tmp / "qrels").mkdir()
        qrels.rename(columns={"qid": "query-id", "docid": "corpus-id", "grade": "score"}).to_csv(
            tmp / "qrels" / "dev.tsv", sep="\t", index=False)
        absent = len(judged - seen)
        (tmp / SOURCE_FILE).write_text(json.dumps({"source": source, "variant": variant, "lang": lang,
                                                   "passages": kept, "judged_absent": absent}, indent=1) + "\n")
        target = out_root / lang
        old = out_root / f".{lang}-old-{uuid.uuid4().hex}"
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Prepared(lang, target, kept, absent)
