"""Domain tasks: topic maps, pinned sizes, hand-checked gold, the bitext exclusion, and the loaders' errors."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from xbench.errors import XbenchError
from xbench.paths import PACKAGE_ROOT
from xbench.retrieval.exact import rank_pool
from xbench.tasks.loaders.exams import option_id
from xbench.tasks.loaders.lareqa import load_lareqa
from xbench.tasks.loaders.parallel import load_parallel
from xbench.tasks.registry import discover
from xbench.tasks.settings import slices

ROOT = PACKAGE_ROOT  # the installed package holds data/ and tasks/

SIZES = {  # task -> (queries, candidates), counted once from the shipped data and pinned here
    "xquad-r.sports": (814, 227), "xquad-r.science": (2343, 2665), "xquad-r.technology": (1320, 1305),
    "xquad-r.history": (1320, 1856), "xquad-r.geography": (2497, 2326), "xquad-r.politics-law": (1584, 1464),
    "xquad-r.economy-business": (990, 982), "xquad-r.arts-culture": (550, 590),
    "xquad-r.religion-philosophy": (704, 808), "xquad-r.education": (968, 791),
    "mlqa-r.sports": (159, 523), "mlqa-r.science": (981, 5172), "mlqa-r.technology": (438, 1814),
    "mlqa-r.history": (703, 3923), "mlqa-r.geography": (467, 2147), "mlqa-r.politics-law": (244, 1222),
    "mlqa-r.economy-business": (135, 458), "mlqa-r.arts-culture": (904, 4637),
    "mlqa-r.religion-philosophy": (144, 507),
    "tico19.wikipedia": (9012, 9012), "tico19.biomedical": (5412, 5412), "tico19.dialogue": (804, 804),
    "tico19.travel": (1512, 1512), "tico19.news": (564, 564), "tico19.official": (624, 624),
    "ntrex128": (10680, 10680), "ntrex128.doc": (720, 720),
    "mintaka": (8928, 8928), "mintaka.books": (1044, 1044), "mintaka.geography": (1125, 1125),
    "mintaka.history": (1035, 1035), "mintaka.movies": (1134, 1134), "mintaka.music": (1098, 1098),
    "mintaka.politics": (1152, 1152), "mintaka.sports": (1107, 1107), "mintaka.videogames": (1233, 1233),
    "exams": (13507, 48857), "exams.physics": (2334, 7710), "exams.history": (1958, 7439),
    "exams.biology": (1553, 5577), "exams.chemistry": (1130, 4232), "exams.professional": (986, 3861),
    "exams.philosophy": (955, 3540), "exams.geography": (760, 2868), "exams.business": (478, 1793),
    "exams.economics-basics-theoretical": (450, 1723), "exams.geology": (382, 1465),
    "exams.fine-arts": (375, 1374),
}


@pytest.fixture(scope="module")
def tasks():
    return discover()


@pytest.fixture(scope="module")
def loaded(tasks):
    return {name: tasks[name].load() for name in SIZES}


def domain_map(name: str) -> dict[str, str]:
    lines = (ROOT / "tasks" / "domains" / f"{name}.tsv").read_text(encoding="utf-8").splitlines()
    return dict(line.split("\t") for line in lines if line and not line.startswith("#"))


def titles(name: str, lang: str = "en") -> list[str]:
    with gzip.open(ROOT / "data" / name / f"{lang}.json.gz", "rt", encoding="utf-8") as fh:
        return [a["title"] for a in json.load(fh)["data"]]


@pytest.mark.slow  # loads all 46 domain tasks
def test_sizes_are_pinned(loaded):
    assert {name: (len(d.queries), len(d.candidates)) for name, d in loaded.items()} == SIZES


@pytest.mark.parametrize("name, n_titles", [("xquad-r", 48), ("mlqa-r", 520)])
def test_every_title_is_mapped_and_every_article_gets_one_domain(tasks, name, n_titles):
    mapping = domain_map(name)
    assert sorted(mapping) == sorted(titles(name)) and len(mapping) == n_titles
    split = tasks[f"{name}.science"].spec
    full = load_lareqa(split.model_copy(update={"domain": None}), tasks[f"{name}.science"].data_dir)
    assert full.queries["domain"].notna().all() and full.candidates["domain"].notna().all()
    assert len(full.queries) == len(tasks[name].load().queries)  # every question in exactly one domain
    english = full.queries[full.queries["lang"] == "en"]
    assert set(zip(english["title"], english["domain"])) <= set(mapping.items())
    domain_of_group = full.queries.groupby("group_id")["domain"].nunique()
    assert domain_of_group.max() == 1  # translations of a question share its domain (MLQA: via question ids)


@pytest.mark.slow  # loads all 46 domain tasks
def test_topic_splits_partition_xquad(loaded):
    splits = [loaded[n] for n in SIZES if n.startswith("xquad-r.")]
    assert sum(len(d.queries) for d in splits) == 13090  # the full task's sizes (test_lareqa)
    assert sum(len(d.candidates) for d in splits) == 13014


def test_general_links_name_existing_reference_tasks(tasks):
    for task in tasks.values():
        general = task.spec.general
        if general is not None:
            assert general in tasks and tasks[general].spec.general is None, task.name


def gold_texts(data, qid: str) -> dict[str, str]:
    text = dict(zip(data.candidates["id"], data.candidates["text"]))
    return {cid: text[cid] for cid in data.qrels[qid]}


@pytest.mark.slow  # loads all 46 domain tasks
def test_hand_checked_lareqa_gold(loaded):
    # Warsaw (geography), read from en.json / ru.json: the answer "Ogród Saski" starts at 11 / 9 in sentence 0.
    gold = gold_texts(loaded["xquad-r.geography"], "en:57339c16d058e614000b5ec5")
    assert gold["en-001-000-000"].startswith("Nearby, in Ogród Saski (the Saxon Garden)")
    assert gold["ru-001-000-000"].startswith("Рядом, в Ogród Saski (Саксонский сад)")
    assert len(gold) == 11
    # MLQA-R Spartacus (history): the zh article's title differs, its domain comes through the question id.
    gold = gold_texts(loaded["mlqa-r.history"], "zh:c555e59e9cf74869aaf94cbeaf932cd1fd89e55e")
    assert gold["en-463-001-001"].startswith("Kings of the Thracian dynasty of the Cimmerian Bosporus")
    assert gold["zh-243-000-000"].startswith("斯巴达克斯这个名字被证实也用于黑海地区")


@pytest.mark.slow  # loads all 46 domain tasks
def test_hand_checked_bitext_gold(loaded):
    # TICO-19 CMU_1:10, read from all.en-fr.tmx / all.en-zh.tmx.
    data = loaded["tico19.dialogue"]
    gold = gold_texts(data, "en:CMU_1:10")
    assert len(gold) == 11 and "en-CMU_1:10" not in gold
    assert gold["fr-CMU_1:10"] == "pouvez-vous me dire si vous avez d'autres symptômes ?"
    assert gold["zh-CMU_1:10"] == "您能描述一下除此之外还有什么其他症状吗？"
    assert data.exclude["en:CMU_1:10"] == {"en-CMU_1:10"}
    # NTREX-128 line 1 (newstest2019-ref.spa.txt), and its document bbc.381790.
    spanish = ("A los Miembros de la Asamblea (AM, por sus siglas en inglés) de Gales les preocupa "
               "“parecer muppets”")
    assert gold_texts(loaded["ntrex128"], "en:0000")["es-0000"] == spanish
    assert gold_texts(loaded["ntrex128.doc"], "en:bbc.381790")["es-bbc.381790"].startswith(spanish + " ")
    # Mintaka 000857ee (politics), read from mintaka_dev.v1.0.json.
    gold = gold_texts(loaded["mintaka.politics"], "en:000857ee")
    assert gold["de-000857ee"] == "Welche Präsidenten wurden nicht gewählt?"
    assert gold["ja-000857ee"] == "当選しなかったのはどの大統領?"


@pytest.mark.slow  # loads all 46 domain tasks
def test_hand_checked_exams_gold(loaded):
    # A parallel group (hr, sr, it), read from multilingual_test.jsonl + parallel_questions.jsonl.
    data = loaded["exams.biology"]
    gold = gold_texts(data, "hr:40220ed6-8d4a-11ea-ae7d-54bef70b159e")
    assert gold == {option_id("hr", "toplinski kapacitet"): "toplinski kapacitet",
                    option_id("sr", "топлински капацитет"): "топлински капацитет",
                    option_id("it", "la capacità termica"): "la capacità termica"}
    # Its Hungarian member lost its link (upstream Hungarian links are unreliable): own answer only.
    assert list(gold_texts(data, "hu:41483df9-8d4a-11ea-ae7d-54bef70b159e").values()) == ["a víz hőkapacitása"]


@pytest.mark.slow  # loads all 46 domain tasks
def test_bitext_settings_have_no_mono_and_all_translations_relevant(tasks, loaded):
    task, data = tasks["tico19.news"], loaded["tico19.news"]
    found = Counter(s.setting for s in slices(data, task.spec, ["mono", "cross", "multi"]))
    assert found == {"cross": 12 * 11, "multi": 12}
    assert {len(rel) for rel in data.qrels.values()} == {11}


def test_excluded_candidates_never_outrank_and_never_enter_the_top():
    scores = np.array([[0.9, 0.5, 0.7, 0.1]], dtype=np.float32)
    score = lambda rows: scores[rows]  # noqa: E731
    plain = rank_pool(score, [np.array([1])], 4, k=4)
    hidden = rank_pool(score, [np.array([1])], 4, k=4, exclude=[np.array([0])])
    assert plain.ranks.rows()[0].tolist() == [3] and plain.top[0].tolist() == [0, 2, 1, 3]
    assert hidden.ranks.rows()[0].tolist() == [2] and hidden.top[0].tolist() == [2, 1, 3, -1]


def write_domain_task(tasks_dir: Path, mapping: str, sha: str | None = None, domain: str = "sport") -> None:
    (tasks_dir / "map.tsv").write_text(mapping, encoding="utf-8")
    sha = sha or hashlib.sha256(mapping.encode()).hexdigest()
    (tasks_dir / "split.yaml").write_text(
        "tasks:\n  - name: tiny.split\n    version: '1'\n    family: test\n    description: d\n    loader: lareqa\n"
        "    source: {dir: ../data/tiny}\n    license: CC0\n    languages: [en, de, fr]\n"
        f"    domain: {domain}\n    general: tiny\n"
        f"    options: {{domain_map: ../../tasks/map.tsv, domain_map_sha256: '{sha}'}}\n")


def test_tiny_split_keeps_its_domain(tiny_tasks):
    write_domain_task(tiny_tasks, "# map\nSport\tsport\nSpace\tspace\n")
    data = discover((tiny_tasks,))["tiny.split"].load()
    assert sorted(data.queries["id"]) == ["de:q1", "en:q1", "fr:q1"]
    assert set(data.candidates["domain"]) == {"sport"} and len(data.candidates) == 6


@pytest.mark.parametrize("mapping, sha, domain, message", [
    ("Sport\tsport\n", None, "sport", "article 'Space' of en.json.gz has no domain"),
    ("Sport\tsport\nSpace\tspace\n", "0" * 64, "sport", "domain_map_sha256"),
    ("Sport\tsport\nSpace\tspace\n", None, "music", "never assigns"),
    ("Sport sport\n", None, "sport", "map.tsv:1: expected"),
])
def test_bad_domain_maps_name_file_and_fix(tiny_tasks, mapping, sha, domain, message):
    write_domain_task(tiny_tasks, mapping, sha, domain)
    with pytest.raises(XbenchError, match=message):
        discover((tiny_tasks,))["tiny.split"].load()


def test_unknown_option_and_domain_are_refused(tasks):
    task = tasks["mintaka.books"]
    with pytest.raises(XbenchError, match="unknown key"):
        load_parallel(task.spec.model_copy(update={"options": {"joint": "doc"}}), task.data_dir)
    with pytest.raises(XbenchError, match="known domains"):
        load_parallel(task.spec.model_copy(update={"domain": "cooking"}), task.data_dir)
