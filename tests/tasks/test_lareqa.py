"""The shipped XQuAD-R and MLQA-R: counts pinned to the LAReQA paper/README, hand-checked gold sentences."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from xbench.errors import XbenchError
from xbench.tasks.loaders.lareqa import gold_sentence
from xbench.tasks.registry import discover
from xbench.tasks.settings import ALL_LANGUAGES, slices


@pytest.fixture(scope="module")
def lareqa():
    tasks = discover()
    return {name: (tasks[name], tasks[name].load()) for name in ("xquad-r", "mlqa-r")}


def test_xquad_r_counts(lareqa):
    _, data = lareqa["xquad-r"]
    assert len(data.candidates) == 13014
    assert Counter(data.queries["lang"]) == dict.fromkeys(
        ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"], 1190)
    assert Counter(data.candidates["lang"]) == {"ar": 1222, "de": 1276, "el": 1234, "en": 1180, "es": 1215,
                                                "hi": 1244, "ru": 1219, "th": 852, "tr": 1167, "vi": 1209,
                                                "zh": 1196}
    assert {len(rel) for rel in data.qrels.values()} == {11}  # every translation is relevant


def test_mlqa_r_counts(lareqa):
    _, data = lareqa["mlqa-r"]
    assert len(data.candidates) == 20534
    assert Counter(data.queries["lang"]) == {"ar": 517, "de": 512, "en": 1148, "es": 500, "hi": 507, "vi": 511,
                                             "zh": 504}
    ids_per_group = Counter(data.queries.groupby("group_id").size())
    assert ids_per_group == {4: 820, 3: 263, 2: 65}


@pytest.mark.parametrize("name, n_mono, n_cross", [("xquad-r", 11, 110), ("mlqa-r", 7, 42)])
def test_settings_counts(lareqa, name, n_mono, n_cross):
    task, data = lareqa[name]
    found = Counter(s.setting for s in slices(data, task.spec, ["mono", "cross", "multi"]))
    assert found == {"mono": n_mono, "cross": n_cross, "multi": len(task.spec.languages)}


def test_mlqa_cross_keeps_only_shared_questions(lareqa):
    task, data = lareqa["mlqa-r"]
    groups = data.queries.groupby("lang")["group_id"].apply(set)
    for sl in slices(data, task.spec, ["cross"]):
        assert len(sl.query_rows) == len(groups[sl.query_lang] & groups[sl.cand_lang])
    multi = list(slices(data, task.spec, ["multi"]))
    assert all(s.cand_lang == ALL_LANGUAGES and len(s.cand_rows) == 20534 for s in multi)


GOLD = {  # query id -> {candidate id: sentence start}, read by hand from the source JSON
    "xquad-r": {
        "en:56beb4343aeaaa14008c925b": {"en-000-000-000": "The Panthers defense gave up just 308 points",
                                        "de-000-000-000": "Die Verteidigung der Panthers gab nur 308 Punkte",
                                        "zh-000-000-000": "黑豹队的防守只丢了 308分"},
    },
    "mlqa-r": {
        "zh:c555e59e9cf74869aaf94cbeaf932cd1fd89e55e": {
            "en-463-001-001": "Kings of the Thracian dynasty of the Cimmerian Bosporus",
            "zh-243-000-000": "斯巴达克斯这个名字被证实也用于黑海地区"},
    },
}


@pytest.mark.parametrize("name", sorted(GOLD))
def test_hand_checked_gold(lareqa, name):
    _, data = lareqa[name]
    text = dict(zip(data.candidates["id"], data.candidates["text"]))
    for qid, gold in GOLD[name].items():
        for cid, start in gold.items():
            assert cid in data.qrels[qid]
            assert text[cid].startswith(start)


def test_mlqa_partial_parallelism(lareqa):
    _, data = lareqa["mlqa-r"]
    # this question exists in en, hi, vi and zh only: 4 relevant sentences, none in ar, de or es
    assert sorted(data.qrels["zh:c555e59e9cf74869aaf94cbeaf932cd1fd89e55e"]) == [
        "en-463-001-001", "hi-213-000-000", "vi-220-000-007", "zh-243-000-000"]


def test_gold_sentence_boundaries():
    breaks = [[0, 10], [11, 20], [21, 30]]
    assert [gold_sentence(breaks, a) for a in (0, 9, 10, 11, 20, 29)] == [0, 0, 0, 1, 1, 2]


def test_damaged_data_file_is_named(tmp_path):
    tasks = discover()
    copy = tmp_path / "data"
    shutil.copytree(tasks["xquad-r"].data_dir, copy / "xquad-r")
    (copy / "xquad-r" / "de.json.gz").write_bytes(b"\x1f\x8b broken")
    spec_dir = tmp_path / "tasks"
    spec_dir.mkdir()
    spec = tasks["xquad-r"].spec.model_copy(update={"name": "xquad-copy"})
    import yaml

    (spec_dir / "copy.yaml").write_text(yaml.safe_dump({"tasks": [
        {**spec.model_dump(mode="json"), "source": {"dir": "../data/xquad-r"}}]}))
    task = discover((spec_dir,))["xquad-copy"]
    with pytest.raises(XbenchError, match=r"de\.json\.gz.*sha256.*git checkout"):
        task.load()
