"""The training / evaluation partition of every source that may train a model, so that no model is ever trained
on text it is evaluated on.

Each source has one rule, applied to a *unit* that is assigned as a whole: a TICO-19 segment (all its
translations), an NTREX-128 document, a Mintaka question (all its translations), an EXAMS parallel-question
group. So no translation of an evaluated item can train. After the rule, a training unit that shares any
(normalised) text with an evaluated unit is dropped ("excluded"), so the two parts are disjoint in text too.
The domain tasks' shipped data (`data/<source>/eval.jsonl.gz` for tico19, ntrex128, mintaka, exams) is the eval
part: `tools.sources` builds it with `assign`; training code filters its pairs with `trainable`, which applies
the same rule and refuses every text of the shipped eval data. The tests check both.

Nothing derived from SQuAD dev, XQuAD, MLQA or MIRACL may ever train: `NEVER_TRAIN` names them and
`check_trainable` refuses them (XQuAD is SQuAD v1.1 dev; MLQA-R is MLQA dev; MIRACL dev is evaluated).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import pandas as pd

from xbench.errors import XbenchError
from xbench.io import verify_dir
from xbench.paths import DATA_ROOT

Part = Literal["train", "validation", "eval", "excluded"]

EVAL_FILE = "eval.jsonl.gz"  # data/<source>/EVAL_FILE: the evaluated part, built by tools.sources
NTREX_DOCS = "DOCUMENT_IDS.tsv.gz"  # data/ntrex128/: the document of every NTREX line, train lines included

NEVER_TRAIN: Mapping[str, str] = {
    "squad-dev": "SQuAD v1.1 dev holds the XQuAD paragraphs",
    "xquad": "evaluated (XQuAD-R and its domain splits)",
    "mlqa": "evaluated (MLQA-R and its domain splits)",
    "miracl": "evaluated (MIRACL dev)",
}


def _share(source: str, unit: str) -> float:
    """A stable pseudo-random number in [0, 1) per unit: the same on every machine and Python version."""
    digest = hashlib.sha256(f"{source}/{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Rule:
    """How one source is split: by a hashed share of units, or by the source's own named splits."""

    source: str
    unit: str  # what is assigned as a whole
    how: str  # the rule in words, for model cards and docs
    eval_share: float = 0.0  # hashed units below this share are evaluated, the rest train
    splits: Mapping[str, Part] = field(default_factory=dict)  # the source's own split name -> part

    def part(self, unit: str, split: str | None = None) -> Part:
        if self.splits:
            if split is None or split not in self.splits:
                raise XbenchError(f"{self.source}: split {split!r} of unit {unit!r} has no partition rule; "
                                  f"known splits: {sorted(self.splits)} (xbench/tasks/partition.py, RULES).")
            return self.splits[split]
        return "eval" if _share(self.source, unit) < self.eval_share else "train"


RULES: Mapping[str, Rule] = {r.source: r for r in (
    Rule("tatoeba", "sentence pair", "all train: no xbench task evaluates on Tatoeba"),
    Rule("arcd", "question", "all train: ARCD shares no paragraph with MLQA-R ar"),
    Rule("tico19", "segment (tuid, with all its translations)",
         "half of the segments (sha256 of the tuid) evaluate, the rest train; the sub-domains have 1 to 11 "
         "documents each, too few to split by document", eval_share=0.5),
    Rule("ntrex128", "document (DOCUMENT_IDS.tsv id, with all its lines and translations)",
         "half of the documents (sha256 of the document id) evaluate, the rest train", eval_share=0.5),
    Rule("mintaka", "question id (with all its translations)",
         "half of the Mintaka dev questions (sha256 of the id) evaluate, the rest train", eval_share=0.5),
    Rule("exams", "parallel-question group (a question without translations is its own group)",
         "the train split trains, the dev split is for validation, the test split evaluates (no group spans "
         "two splits)", splits={"train": "train", "dev": "validation", "test": "eval"}),
)}


def normalise(text: str) -> str:
    """The form texts are compared in: case-folded, whitespace collapsed."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def assign(source: str, table: pd.DataFrame) -> pd.Series:
    """The part of every row of `table` (columns `unit`, `text`, optional `split`; one row per text).

    A unit's rows share one part. Units outside the eval part that share a normalised text with the eval part
    become "excluded", so whatever trains never contains an evaluated text.
    """
    check_trainable([source])
    rule = RULES[source]
    split = table["split"] if "split" in table else pd.Series(None, index=table.index, dtype=object)
    part = pd.Series([rule.part(str(u), s) for u, s in zip(table["unit"], split)], index=table.index, dtype=object)
    norm = table["text"].map(normalise)
    evaluated = set(norm[part == "eval"])
    clash_units = set(table.loc[(part != "eval") & norm.isin(evaluated), "unit"])
    part[(part != "eval") & table["unit"].isin(clash_units)] = "excluded"
    return part


def trainable(source: str, pairs: pd.DataFrame, data_root: Path = DATA_ROOT) -> pd.Series:
    """Mask of the training pairs that may train: their unit is outside the eval part and neither text is an
    evaluated text (normalised). `pairs` has `group_id` = '<source>:<unit>' (for NTREX-128 the unit is the line
    number, mapped to its document here), `query` and `passage`. EXAMS passages are answer options ("True",
    "4", ...), shared by chance across exams: only its questions are compared.
    """
    check_trainable([source])
    if source not in EVALUATED:
        return pd.Series(True, index=pairs.index)
    units = pairs["group_id"].astype(str).str.partition(":")[2]
    eval_units, eval_texts = evaluated(source, data_root)
    if source == "ntrex128":
        docs = _ntrex_documents(data_root)
        units = units.map(lambda line: docs[int(line)])
    rule = RULES[source]
    ok = ~units.isin(eval_units)
    if not rule.splits:
        ok &= units.map(lambda u: rule.part(u) == "train")
    for column in ("query",) if source == "exams" else ("query", "passage"):
        ok &= ~pairs[column].astype(str).map(normalise).isin(eval_texts)
    return ok


EVALUATED = ("tico19", "ntrex128", "mintaka", "exams")


@cache
def evaluated(source: str, data_root: Path = DATA_ROOT) -> tuple[frozenset[str], frozenset[str]]:
    """(units, normalised texts) of a source's shipped eval data, verified against its manifest first."""
    folder = data_root / source
    verify_dir(folder)
    units, texts = set(), set()
    with gzip.open(folder / EVAL_FILE, "rt", encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if source == "exams":
                units.add(record["group"])
                texts.add(normalise(record["question"]))
            else:
                units.add(record.get("doc", record["id"]))
                texts.update(normalise(t) for t in record["text"].values())
    return frozenset(units), frozenset(texts)


@cache
def _ntrex_documents(data_root: Path) -> list[str]:
    verify_dir(data_root / "ntrex128")
    return gzip.decompress((data_root / "ntrex128" / NTREX_DOCS).read_bytes()).decode("utf-8").splitlines()


def check_trainable(sources: Iterable[str]) -> None:
    """Refuse a training source that is evaluated or unknown (a model card lists its training sources)."""
    for source in sources:
        if source in NEVER_TRAIN:
            raise XbenchError(f"training source {source!r} may never train: {NEVER_TRAIN[source]}. "
                              f"Remove it from the training sources; trainable: {sorted(RULES)}.")
        if source not in RULES:
            raise XbenchError(f"training source {source!r} has no partition rule in xbench/tasks/partition.py; "
                              f"known: {sorted(RULES)}. Add a Rule before training on it.")
