"""Readers for the staged raw domain sources, and the builder of the eval data that ships in `data/`.

The readers turn each raw format (TICO-19 TMX zips, NTREX-128 line files, Mintaka JSON, EXAMS tarballs) into one
tidy table, so the partition (`xbench.tasks.partition`) and the training code see one shape. `build` keeps the eval
part, drops eval units that would make gold ambiguous (a text shared by two units in one language), and writes
compact gzip JSONL plus a sha256 manifest:

    python -m tools.sources /path/to/shared/data    # rewrites data/{tico19,ntrex128,mintaka,exams}/eval.jsonl.gz

Languages: TICO-19 and NTREX-128 use the 12 TICO-19 languages (so the two compare), Mintaka its 9, EXAMS its 16.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import sys
import tarfile
import zipfile
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from xbench.errors import XbenchError
from xbench.paths import DATA_ROOT
from xbench.tasks.partition import EVAL_FILE, NTREX_DOCS, assign, normalise

PROJECT_DATA = DATA_ROOT
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
TICO_LANGS = {"ar": "ar", "bn": "bn", "es-LA": "es", "fa": "fa", "fr": "fr", "hi": "hi", "id": "id",
              "pt-BR": "pt", "ru": "ru", "sw": "sw", "zh": "zh"}
TICO_DOMAINS = {"PubMed": "biomedical", "CMU": "dialogue", "Wikivoyage": "travel", "Wikinews": "news",
                "Wikisource": "official", "Wikipedia_handpicked": "wikipedia", "wiki": "wikipedia"}
NTREX_LANGS = {"src.eng": "en", "ref.arb": "ar", "ref.ben": "bn", "ref.spa": "es", "ref.fas": "fa",
               "ref.fra": "fr", "ref.hin": "hi", "ref.ind": "id", "ref.por": "pt", "ref.rus": "ru",
               "ref.swa": "sw", "ref.zho-CN": "zh"}
EXAMS_LANGS = {"Albanian": "sq", "Arabic": "ar", "Bulgarian": "bg", "Croatian": "hr", "French": "fr",
               "German": "de", "Hungarian": "hu", "Italian": "it", "Lithuanian": "lt", "North Macedonian": "mk",
               "Polish": "pl", "Portuguese": "pt", "Serbian": "sr", "Spanish": "es", "Turkish": "tr",
               "Vietnamese": "vi"}
LICENSES = {"tico19": "LICENSE.md", "ntrex128": "LICENSE.md", "mintaka": "LICENSE.md"}  # exams ships none


def slug(label: str) -> str:
    """A task-name-safe domain label: 'Economics Basics (Theoretical)' -> 'economics-basics-theoretical'."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def read_tico19(raw: Path) -> pd.DataFrame:
    """One row per (tuid, language): unit = item = tuid, lang, text, domain. English is the most common
    version across the 11 English-X files (they carry small per-file English fixes)."""
    rows, english = [], {}
    for code, lang in TICO_LANGS.items():
        with zipfile.ZipFile(raw / "tico19" / f"all.en-{code}.tmx.zip") as zf:
            root = ElementTree.fromstring(zf.read(f"all.en-{code}.tmx"))
        for tu in root.iter("tu"):
            segs = {tuv.get(XML_LANG): "".join(tuv.find("seg").itertext()).strip() for tuv in tu.iter("tuv")}
            tuid = tu.get("tuid")
            english.setdefault(tuid, []).append(segs["en"])
            rows.append((tuid, lang, segs[code]))
    rows += [(tuid, "en", Counter(texts).most_common(1)[0][0]) for tuid, texts in english.items()]
    table = pd.DataFrame(rows, columns=["unit", "lang", "text"])
    table["domain"] = table["unit"].map(lambda t: TICO_DOMAINS[t.split(":")[0].rsplit("_", 1)[0]])
    return table.assign(item=table["unit"])


def read_ntrex128(raw: Path) -> pd.DataFrame:
    """One row per (line, language): unit = doc (document id), item (line number), lang, text, domain 'news'."""
    docs = (raw / "ntrex128" / "DOCUMENT_IDS.tsv").read_text(encoding="utf-8").splitlines()
    frames = []
    for stem, lang in NTREX_LANGS.items():
        with gzip.open(raw / "ntrex128" / f"newstest2019-{stem}.txt.gz", "rt", encoding="utf-8") as fh:
            lines = fh.read().split("\n")[: len(docs)]
        frames.append(pd.DataFrame({"unit": docs, "doc": docs, "item": [f"{n:04d}" for n in range(len(docs))],
                                    "lang": lang, "text": [t.strip() for t in lines]}))
    return pd.concat(frames, ignore_index=True).assign(domain="news")


def read_mintaka(raw: Path) -> pd.DataFrame:
    """One row per (question, language): unit = item = question id, lang, text, domain (category)."""
    with gzip.open(raw / "mintaka" / "mintaka_dev.v1.0.json.gz", "rt", encoding="utf-8") as fh:
        items = json.load(fh)
    rows = [(q["id"], lang, text.strip(), q["category"])
            for q in items for lang, text in {"en": q["question"], **q["translations"]}.items()]
    table = pd.DataFrame(rows, columns=["unit", "lang", "text", "domain"])
    return table.assign(item=table["unit"])


def read_exams(raw: Path) -> pd.DataFrame:
    """One row per question: unit (parallel group, named by its smallest question id), id, split, lang, domain
    (subject slug), text (the stem), choices, answer (index of the correct choice).

    Links to Hungarian questions are dropped: in the upstream map they mostly join different questions (of the
    links whose questions hold numbers, 59-91% of those with a Hungarian side disagree on them, against 3-21%
    for the other language pairs, where the rest is number formatting; sampled ones are unrelated questions).
    """
    rows = []
    for split in ("train", "dev", "test"):
        with tarfile.open(raw / "exams" / f"multilingual_{split}.jsonl.tar.gz") as tar:
            member = next(m for m in tar.getmembers() if m.isfile())
            for line in io.TextIOWrapper(tar.extractfile(member), encoding="utf-8"):
                q = json.loads(line)
                labels = [c["label"] for c in q["question"]["choices"]]
                rows.append({"id": q["id"], "split": split,
                             "lang": EXAMS_LANGS[q["info"]["language"]], "domain": slug(q["info"]["subject"]),
                             "text": q["question"]["stem"].strip(),
                             "choices": [c["text"].strip() for c in q["question"]["choices"]],
                             "answer": labels.index(q["answerKey"]) if q["answerKey"] in labels else -1})
    table = pd.DataFrame(rows)
    index = {q: i for i, q in enumerate(table["id"])}
    trusted = set(table.loc[table["lang"] != "hu", "id"])
    with gzip.open(raw / "exams" / "parallel_questions.jsonl.gz", "rt", encoding="utf-8") as fh:
        links = [(index[a], index[b]) for line in fh for a, others in json.loads(line).items() for b in others
                 if a in trusted and b in trusted]
    edges = np.array(links, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(table), len(table)))
    _, component = connected_components(graph, directed=False)
    return table.assign(unit=table["id"].groupby(component).transform("min"))


def _drop_ambiguous(table: pd.DataFrame) -> pd.DataFrame:
    """Drop items that are incomplete (a language missing or empty) or that share a normalised text with an
    earlier item in the same language: such a text would be a second, unjudged copy of the gold."""
    langs = table["lang"].nunique()
    table = table[table["text"] != ""]
    complete = table.groupby("item")["lang"].nunique() == langs
    table = table[table["item"].isin(complete[complete].index)]
    first_owner = table.assign(norm=table["text"].map(normalise)).groupby(["lang", "norm"])["item"].transform("min")
    return table[~table["item"].isin(set(table.loc[first_owner != table["item"], "item"]))]


def parallel_records(table: pd.DataFrame) -> list[dict]:
    """Tidy parallel rows -> one record per item: {id, domain, [doc], text: {lang: text}}."""
    records = []
    for item, rows in table.sort_values(["item", "lang"]).groupby("item", sort=True):
        record = {"id": item, "domain": rows["domain"].iloc[0]}
        if "doc" in rows:
            record["doc"] = rows["doc"].iloc[0]
        records.append({**record, "text": dict(zip(rows["lang"], rows["text"]))})
    return records


def exams_records(table: pd.DataFrame) -> list[dict]:
    """EXAMS eval questions with a usable gold option (non-empty stem and correct choice)."""
    ok = table[(table["text"] != "") & (table["answer"] >= 0)]
    ok = ok[[c[a] != "" for c, a in zip(ok["choices"], ok["answer"])]]
    return [{"id": r.id, "group": r.unit, "lang": r.lang, "domain": r.domain, "question": r.text,
             "choices": list(r.choices), "answer": int(r.answer)} for r in ok.sort_values("id").itertuples()]


def _write_gzip(path: Path, text: str) -> None:
    """Deterministic gzip (no timestamp), so a rebuild from the same sources is byte-identical."""
    path.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))


def build(raw: Path, out: Path = PROJECT_DATA) -> dict[str, int]:
    """Write the eval part of each source under `out/<source>/` with its manifest; returns records per file."""
    made = {}
    for source, reader in (("tico19", read_tico19), ("ntrex128", read_ntrex128), ("mintaka", read_mintaka),
                           ("exams", read_exams)):
        try:
            table = reader(raw)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, tarfile.TarError) as exc:
            raise XbenchError(f"{raw / source}: cannot read the raw source ({exc}); pass the folder that holds "
                              f"the staged {source} files (see its SOURCE.md).") from None
        evaluated = table[assign(source, table) == "eval"]
        records = exams_records(evaluated) if source == "exams" else parallel_records(_drop_ambiguous(evaluated))
        folder = out / source
        folder.mkdir(parents=True, exist_ok=True)
        _write_gzip(folder / EVAL_FILE, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n"
                                                for r in records))
        files = [EVAL_FILE]
        if source == "ntrex128":  # lets `partition.trainable` place a training line in its document
            _write_gzip(folder / NTREX_DOCS, (raw / source / "DOCUMENT_IDS.tsv").read_text(encoding="utf-8"))
            files.append(NTREX_DOCS)
        if source in LICENSES:
            (folder / "LICENSE").write_bytes((raw / source / LICENSES[source]).read_bytes())
        (folder / "SHA256SUMS").write_text("".join(f"{hashlib.sha256((folder / f).read_bytes()).hexdigest()}  {f}\n"
                                                   for f in sorted(files)), encoding="utf-8")
        made[f"{source}/{EVAL_FILE}"] = len(records)
    return made


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tools.sources RAW_DATA_DIR   (the staged shared/data folder)")
    for file, n in build(Path(sys.argv[1])).items():
        print(f"{file}: {n} records")
