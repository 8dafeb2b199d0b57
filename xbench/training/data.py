"""Training pairs from the shipped sources: (query, passage, query_lang, passage_lang, group_id, domain, source).

Each builder reads one source from `data/train/<source>/` and returns *items*: texts of one parallel group (the
translations of one sentence or question) with a query side and a passage side. `expand` turns items into
pairs: monolingual pairs (question -> its answer, same language) for QA sources, and cross-lingual pairs
(the query side in X, the passage side of the same group in Y != X) for every multi-language group:
translation pairs for Tatoeba, TICO-19, NTREX-128 and Mintaka, true parallel QA pairs for EXAMS (a question in
X, the correct option of its parallel question in Y).

Tatoeba and ARCD ship in their upstream format. TICO-19, NTREX-128, Mintaka and EXAMS also serve evaluation:
`data/train/<source>/train.jsonl.gz` holds only their training part (built by `tools.ship` with the
partition rule of `xbench.tasks.partition`, in the record format of the eval files in `data/<source>/`), and
`partition.trainable` filters the pairs once more against the shipped eval data when they are loaded.
Every folder is verified against its SHA256SUMS before it is read.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xbench.errors import XbenchError
from xbench.io import load_json, read_manifest, verify_dir
from xbench.paths import TRAIN_DATA
from xbench.tasks.partition import check_trainable, trainable

PAIR_COLUMNS = ("query", "passage", "query_lang", "passage_lang", "group_id", "domain", "source")
ITEM_COLUMNS = ("group_id", "lang", "query", "passage", "domain")

TRAIN_FILE = "train.jsonl.gz"

# Tatoeba's ISO 639-3 file labels -> ISO 639-1, the codes the evaluation tasks use.
TATOEBA_LANG = {"ara": "ar", "cmn": "zh", "deu": "de", "ell": "el", "fra": "fr", "hin": "hi", "ind": "id",
                "ita": "it", "jpn": "ja", "kor": "ko", "por": "pt", "rus": "ru", "spa": "es", "tha": "th",
                "tur": "tr", "vie": "vi"}
# ARCD articles whose titles also occur in MLQA-R ar (data/README.md 2.5): dropped for strict zero-shot.
ARCD_DROPPED_TITLES = frozenset({"الحرب العالمية الثانية", "أسد"})
SENTENCE_END = re.compile(r"(?<=[.!?؟])\s+|\n+")


def _listed(folder: Path, pattern: str) -> list[Path]:
    """The manifest's files matching a pattern: only verified files are ever read."""
    names = sorted(n for n in read_manifest(folder / "SHA256SUMS") if fnmatch.fnmatch(n, pattern))
    if not names:
        raise XbenchError(f"{folder}/SHA256SUMS lists no file matching {pattern!r}; the folder is incomplete.")
    return [folder / n for n in names]


def _read_lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()


def _items(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(ITEM_COLUMNS))


def build_tatoeba(folder: Path) -> pd.DataFrame:
    """Line-aligned X-English pairs; every English sentence is one parallel group across all X files."""
    files = {p.name: p for p in _listed(folder, "tatoeba.*-eng.*.gz")}
    rows = []
    for name in sorted(n for n in files if n.endswith(".eng.gz")):
        pair = name.split(".")[1]  # "deu-eng"
        foreign = files.get(f"tatoeba.{pair}.{pair[:3]}.gz")
        if foreign is None:
            raise XbenchError(f"{folder}/SHA256SUMS lists {name} but not its other side tatoeba.{pair}.{pair[:3]}.gz.")
        english, other = _read_lines(files[name]), _read_lines(foreign)
        if len(english) != len(other):
            raise XbenchError(f"{foreign}: {len(other)} lines, but {name} has {len(english)}; the two sides of a "
                              "Tatoeba pair must be line-aligned. Restore them from git.")
        lang = TATOEBA_LANG.get(pair[:3])
        if lang is None:
            raise XbenchError(f"{foreign}: unknown Tatoeba language {pair[:3]!r}; add it to TATOEBA_LANG.")
        for en, xx in zip(english, other):
            group = hashlib.sha256(en.strip().encode()).hexdigest()[:16]
            rows += [(group, "en", en, en, "everyday"), (group, lang, xx, xx, "everyday")]
    return _items(rows).drop_duplicates(["group_id", "lang", "query"])


def _records(folder: Path) -> list[dict]:
    (path,) = _listed(folder, TRAIN_FILE)
    return [json.loads(line) for line in _read_lines(path)]


def build_parallel(folder: Path) -> pd.DataFrame:
    """TICO-19, NTREX-128, Mintaka records `{id, domain, text: {lang: text}}`: one group per record."""
    return _items([(r["id"], lang, text, text, r["domain"]) for r in _records(folder)
                   for lang, text in r["text"].items() if text.strip()])


def build_exams(folder: Path) -> pd.DataFrame:
    """EXAMS train records: question stem -> text of the correct option; parallel questions share a group."""
    return _items([(r["group"], r["lang"], r["question"], r["choices"][r["answer"]], r["domain"])
                   for r in _records(folder)])


def build_arcd(folder: Path) -> pd.DataFrame:
    """Arabic QA: question -> the context sentence holding the answer start (ARCD has no sentence breaks)."""
    rows = []
    for path in _listed(folder, "arcd.json.gz"):
        for article in load_json(path)["data"]:
            if article["title"].strip() in ARCD_DROPPED_TITLES:
                continue
            for para in article["paragraphs"]:
                context, starts = para["context"], [0]
                starts += [m.end() for m in SENTENCE_END.finditer(context)]
                for qa in para["qas"]:
                    start = qa["answers"][0]["answer_start"]
                    i = int(np.searchsorted(starts, start, side="right")) - 1
                    sentence = context[starts[i]:starts[i + 1] if i + 1 < len(starts) else None].strip()
                    question = qa["question"].strip().lstrip("-– ").strip()  # some start with " - "
                    if sentence and question:
                        rows.append((qa["id"], "ar", question, sentence, "wikipedia"))
    return _items(rows)


@dataclass(frozen=True)
class Source:
    """A training source: its builder and which pair kinds it gives."""

    name: str
    build: Callable[[Path], pd.DataFrame]
    mono: bool  # question -> answer pairs in one language
    cross: bool  # pairs across the languages of a parallel group
    domain: str
    license: str


SOURCES = {s.name: s for s in (
    Source("tatoeba", build_tatoeba, False, True, "everyday sentences", "CC BY 2.0 FR"),
    Source("arcd", build_arcd, True, False, "Arabic Wikipedia QA", "MIT"),
    Source("tico19", build_parallel, False, True,
           "COVID-19: biomedical, dialogue, travel, news, official, Wikipedia", "CC0 1.0"),
    Source("ntrex128", build_parallel, False, True, "news", "CC BY-SA 4.0"),
    Source("mintaka", build_parallel, False, True, "knowledge questions in 8 topics", "CC BY 4.0"),
    Source("exams", build_exams, True, True, "school exams, 25 subjects", "CC BY-SA 4.0"),
)}


def expand(items: pd.DataFrame, source: Source, rng: np.random.Generator, max_pairs_per_group: int) -> pd.DataFrame:
    """Items -> pairs: monolingual (query and passage of one item) and cross-lingual (query of one language,
    passage of another language of the same group). A group with more ordered language pairs than
    `max_pairs_per_group` keeps a random sample of them, so 12-way TICO-19 does not swamp the table.
    Group ids become `<source>:<id>`, the form `xbench.tasks.partition.trainable` reads."""
    parts = []
    if source.mono:
        mono = items.assign(query_lang=items["lang"], passage_lang=items["lang"])
        parts.append(mono[["query", "passage", "query_lang", "passage_lang", "group_id", "domain"]])
    if source.cross:
        left = items[["group_id", "lang", "query", "domain"]].rename(columns={"lang": "query_lang"})
        right = items[["group_id", "lang", "passage"]].rename(columns={"lang": "passage_lang"})
        cross = left.merge(right, on="group_id")
        cross = cross[cross["query_lang"] != cross["passage_lang"]]
        cross = cross.iloc[rng.permutation(len(cross))]
        cross = cross[cross.groupby("group_id").cumcount() < max_pairs_per_group]
        parts.append(cross)
    pairs = pd.concat(parts, ignore_index=True)
    keep = (pairs["query"].str.strip() != "") & (pairs["passage"].str.strip() != "") \
        & (pairs["query"] != pairs["passage"])
    pairs = pairs[keep].assign(source=source.name, group_id=source.name + ":" + pairs["group_id"].astype(str))
    return pairs[list(PAIR_COLUMNS)].reset_index(drop=True)


def load_pairs(names: list[str], *, seed: int, max_pairs_per_group: int, languages: list[str] | None = None,
               root: Path = TRAIN_DATA) -> tuple[pd.DataFrame, dict[str, dict]]:
    """All trainable pairs of the named sources (restricted to `languages` if given) and their provenance.

    `xbench.tasks.partition` refuses sources that may never train (SQuAD dev, XQuAD, MLQA, MIRACL) and keeps, of a
    source that is also evaluated, only pairs outside its eval part."""
    check_trainable(names)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise XbenchError(f"training source {unknown[0]!r} has no builder; known: {', '.join(SOURCES)}.")
    rng = np.random.default_rng(seed)
    tables, provenance = [], {}
    for name in names:
        folder = root / name
        if not (folder / "SHA256SUMS").is_file():
            raise XbenchError(f"training source {name!r}: {folder}/SHA256SUMS is missing. Restore the shipped "
                              f"training data (`git checkout -- {folder}`).")
        manifest_sha = verify_dir(folder)
        pairs = expand(SOURCES[name].build(folder), SOURCES[name], rng, max_pairs_per_group)
        pairs = pairs[np.asarray(trainable(name, pairs), dtype=bool)]
        if languages is not None:
            pairs = pairs[pairs["query_lang"].isin(languages) & pairs["passage_lang"].isin(languages)]
        if pairs.empty:
            raise XbenchError(f"training source {name!r} ({folder}) gives no pairs"
                              + (f" in languages {languages}" if languages else "") + "; drop it or widen --languages.")
        tables.append(pairs)
        provenance[name] = {
            "dir": str(folder), "manifest_sha256": manifest_sha, "files": read_manifest(folder / "SHA256SUMS"),
            "license": SOURCES[name].license, "domain": SOURCES[name].domain,
            "pairs": len(pairs), "mono_pairs": int((pairs["query_lang"] == pairs["passage_lang"]).sum()),
            "languages": sorted(set(pairs["query_lang"]) | set(pairs["passage_lang"])),
        }
    return pd.concat(tables, ignore_index=True), provenance
