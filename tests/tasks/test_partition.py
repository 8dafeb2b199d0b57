"""The train / eval partition: rules, text disjointness, the training filter, and the shipped eval data."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from xbench.errors import XbenchError
from xbench.paths import PACKAGE_ROOT
from xbench.tasks.partition import EVAL_FILE, EVALUATED, RULES, assign, check_trainable, normalise, trainable

ROOT = PACKAGE_ROOT  # the installed package holds data/ and tasks/
RAW = Path(os.environ.get("XBENCH_RAW_DATA", "/work/shared/data"))


def records(source: str) -> list[dict]:
    with gzip.open(ROOT / "data" / source / EVAL_FILE, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def share(source: str, unit: str) -> float:
    """Independent re-implementation of the hashed share the rules use."""
    return int(hashlib.sha256(f"{source}/{unit}".encode()).hexdigest()[:16], 16) / 2**64


def test_assign_keeps_units_whole_and_drops_training_texts_that_are_evaluated():
    units = ["a", "b", "c", "d", "e", "f", "g", "h"]
    part = {u: "eval" if share("mintaka", u) < 0.5 else "train" for u in units}
    evaluated = next(u for u in units if part[u] == "eval")
    trained = [u for u in units if part[u] == "train"]
    assert trained, "the fixture needs a training unit"
    table = pd.DataFrame({
        "unit": [evaluated, evaluated, trained[0], trained[0]] + trained[1:],
        "text": ["Eval text", "Ein Text", "other", "  EVAL   text "] + [f"free {u}" for u in trained[1:]],
    })
    got = assign("mintaka", table)
    assert got.tolist() == ["eval", "eval", "excluded", "excluded"] + ["train"] * (len(trained) - 1)


def test_exams_rule_is_by_split_and_unknown_splits_are_refused():
    rule = RULES["exams"]
    assert [rule.part("g", s) for s in ("train", "dev", "test")] == ["train", "validation", "eval"]
    with pytest.raises(XbenchError, match="split 'extra'"):
        rule.part("g", "extra")


@pytest.mark.parametrize("source", ["xquad", "mlqa", "miracl", "squad-dev", "wikipedia-dump"])
def test_evaluated_or_unknown_sources_never_train(source):
    with pytest.raises(XbenchError, match="may never train|no partition rule"):
        check_trainable([source])


@pytest.mark.parametrize("source", ["tico19", "ntrex128", "mintaka"])
def test_shipped_eval_data_is_exactly_on_the_eval_side_of_the_rule(source):
    for r in records(source):
        assert share(source, r.get("doc", r["id"])) < 0.5, r["id"]


def test_trainable_filters_units_and_texts():
    tico = records("tico19")
    evaluated = tico[0]
    train_tuid = next(f"PubMed_7:{n}" for n in range(1, 400) if share("tico19", f"PubMed_7:{n}") >= 0.5)
    pairs = pd.DataFrame({
        "group_id": [f"tico19:{evaluated['id']}", f"tico19:{train_tuid}", f"tico19:{train_tuid}"],
        "query": [evaluated["text"]["en"], "a sentence no eval segment has", "another fresh one"],
        "passage": [evaluated["text"]["fr"], "une phrase nouvelle", evaluated["text"]["zh"].upper() + " "],
    })
    assert trainable("tico19", pairs).tolist() == [False, True, False]


def test_trainable_places_ntrex_lines_in_their_document():
    docs = gzip.decompress((ROOT / "data" / "ntrex128" / "DOCUMENT_IDS.tsv.gz").read_bytes()).decode().splitlines()
    assert len(docs) == 1997 and docs[0] == "bbc.381790"
    eval_line = next(i for i, d in enumerate(docs) if share("ntrex128", d) < 0.5)
    train_line = next(i for i, d in enumerate(docs) if share("ntrex128", d) >= 0.5)
    pairs = pd.DataFrame({"group_id": [f"ntrex128:{eval_line}", f"ntrex128:{train_line}"],
                          "query": ["x1", "x2"], "passage": ["y1", "y2"]})
    assert trainable("ntrex128", pairs).tolist() == [False, True]


def test_trainable_compares_only_exams_questions():
    exam = records("exams")[0]
    pairs = pd.DataFrame({"group_id": ["exams:some-train-question", "exams:other", f"exams:{exam['group']}"],
                          "query": ["a new question?", exam["question"], "new"],
                          "passage": [exam["choices"][exam["answer"]], "x", "y"]})
    assert trainable("exams", pairs).tolist() == [True, False, False]


@pytest.mark.skipif(not (RAW / "tico19").is_dir(), reason="raw sources not here (set XBENCH_RAW_DATA)")
@pytest.mark.slow  # rebuilds the shipped data
def test_raw_sources_partition_is_text_disjoint_and_rebuilds_the_shipped_data(tmp_path):
    from tools.sources import build, read_exams, read_mintaka, read_ntrex128, read_tico19

    for source, reader in (("tico19", read_tico19), ("ntrex128", read_ntrex128), ("mintaka", read_mintaka),
                           ("exams", read_exams)):
        table = reader(RAW)
        part = assign(source, table)
        norm = table["text"].map(normalise)
        assert not set(norm[part == "eval"]) & set(norm[part.isin(["train", "validation"])]), source
        assert table.assign(part=part).groupby("unit")["part"].nunique().max() == 1, source
    build(RAW, tmp_path)
    for source in EVALUATED:
        for name in ("SHA256SUMS", EVAL_FILE):
            assert (tmp_path / source / name).read_bytes() == (ROOT / "data" / source / name).read_bytes(), source
