"""Hybrid batch sampler composition, training-pair builders on hand-made upstream files, and configs."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xbench.errors import XbenchError
from xbench.paths import DATA_ROOT, TRAIN_DATA
from xbench.training import data
from xbench.training.config import TrainConfig, make_config, parse_domain
from xbench.training.experiment import Experiment, expand, run_name
from xbench.training.sampler import GENERAL, BatchPlan, HybridBatchSampler, composition

LANGS = ("en", "de", "fr")


def qa_pairs(source: str, n_groups: int, langs: tuple[str, ...] = LANGS, mono: bool = True,
             cross: bool = True) -> pd.DataFrame:
    """Parallel QA groups: question and answer in every language; mono pairs and all ordered cross pairs."""
    rows = []
    for g in range(n_groups):
        for x in langs:
            for y in langs:
                if (x == y and mono) or (x != y and cross):
                    rows.append((f"{source} {g} {x} question", f"{source} {g} {y} answer", x, y, f"{source}:{g}",
                                 "d", source))
    return pd.DataFrame(rows, columns=list(data.PAIR_COLUMNS))


def draw(plan: BatchPlan, seed: int, n: int, size: int) -> list:
    return list(plan.batches(np.random.default_rng([seed, 0]), n, size))


def test_batch_composition_matches_alpha_and_beta_without_false_negatives():
    pairs = pd.concat([qa_pairs("gen", 300), qa_pairs("dom", 300)], ignore_index=True)
    plan = BatchPlan(pairs, alpha=0.3, domain_shares={"dom": 0.25})
    batches = draw(plan, 7, 2000, 10)
    q_lang, p_lang = pairs["query_lang"].to_numpy(), pairs["passage_lang"].to_numpy()
    mono = 0
    for b in batches:
        rows = np.array(b.rows)
        assert len(rows) == 10
        same = q_lang[rows] == p_lang[rows]
        assert same.all() or not same.any()  # never a mixed batch
        if same.all():
            mono += 1
            assert set(q_lang[rows]) == {b.lang}  # one language per monolingual batch
        assert pairs["group_id"].iloc[rows].is_unique  # no two translations of one item
        texts = pd.concat([pairs["query"].iloc[rows], pairs["passage"].iloc[rows]])
        assert texts.is_unique
    # binomial: sd of the mono share over 2000 batches is sqrt(.3 * .7 / 2000) = 0.010; 4 sd tolerance
    assert abs(mono / 2000 - 0.3) < 0.041
    domain_share = sum((pairs["source"].iloc[b.rows] == "dom").sum() for b in batches) / 20000
    assert abs(domain_share - 0.25) < 0.01  # 2.5 slots per batch, rounded at random: exact in expectation


def test_same_seed_same_batches_and_epochs_differ():
    pairs = pd.concat([qa_pairs("gen", 50), qa_pairs("dom", 50)], ignore_index=True)
    plan = BatchPlan(pairs, alpha=0.5, domain_shares={"dom": 0.3})
    assert [b.rows for b in draw(plan, 3, 40, 8)] == [b.rows for b in draw(plan, 3, 40, 8)]
    assert [b.rows for b in draw(plan, 3, 40, 8)] != [b.rows for b in draw(plan, 4, 40, 8)]

    sampler = HybridBatchSampler(range(len(pairs)), batch_size=8, drop_last=False, seed=3, plan=plan)
    assert len(sampler) == len(pairs) // 8
    epoch0 = list(sampler)
    assert epoch0 == list(sampler)  # re-iterating an epoch (a resumed run) gives the same batches
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    assert epoch0 == [b.rows for b in draw(plan, 3, len(sampler), 8)]


def test_pools_without_a_kind_hand_their_slots_over():
    """General has only translations, the domain only monolingual QA: mono batches are all domain pairs,
    cross batches all general, so the realised domain share equals the share of mono batches."""
    pairs = pd.concat([qa_pairs("gen", 100, mono=False), qa_pairs("dom", 100, cross=False)], ignore_index=True)
    plan = BatchPlan(pairs, alpha=0.5, domain_shares={"dom": 0.25})
    batches = draw(plan, 0, 400, 6)
    for b in batches:
        assert b.per_pool == ({GENERAL: 0, "dom": 6} if b.kind == "mono" else {GENERAL: 6, "dom": 0})
    stats = composition(plan, 0, 400, 6)
    assert stats["pool_share"]["dom"] == pytest.approx(stats["mono_batch_share"], abs=1e-4)
    assert stats["mean_batch_size"] == 6


def test_monolingual_language_mix_is_share_weighted():
    """General mono pairs are all Arabic, the domain's split evenly over it and pl: with beta 0.25,
    P(ar) = 0.75, P(it) = P(pl) = 0.125."""
    pairs = pd.concat([qa_pairs("gen", 60, langs=("ar",), cross=False),
                       qa_pairs("dom", 60, langs=("it", "pl"), cross=False)], ignore_index=True)
    plan = BatchPlan(pairs, alpha=1.0, domain_shares={"dom": 0.25})
    np.testing.assert_allclose(plan.lang_p, [0.75, 0.125, 0.125])
    langs = pd.Series([b.lang for b in draw(plan, 1, 4000, 4)]).value_counts(normalize=True)
    assert abs(langs["ar"] - 0.75) < 0.03 and abs(langs["it"] - 0.125) < 0.025


def test_large_groups_cap_the_batch():
    """Three groups of 12 pairs each: a batch can hold one pair per group, so at most 3 pairs."""
    pairs = qa_pairs("gen", 3, langs=("en", "de", "fr", "es"))
    plan = BatchPlan(pairs, alpha=0.0, domain_shares={})
    for b in draw(plan, 0, 20, 8):
        assert len(b.rows) == 3 and pairs["group_id"].iloc[b.rows].nunique() == 3


def test_plan_refuses_impossible_kinds():
    with pytest.raises(XbenchError, match="monolingual batches"):
        BatchPlan(qa_pairs("gen", 5, mono=False), alpha=0.5, domain_shares={})
    with pytest.raises(XbenchError, match="cross-lingual batches"):
        BatchPlan(qa_pairs("gen", 5, cross=False), alpha=0.5, domain_shares={})


# --- builders on hand-made files in the upstream formats ---

def write_source(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    (folder / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(c).hexdigest()}  {n}\n" for n, c in files.items()))
    return folder


def gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def test_tatoeba_groups_share_english_sentences(tmp_path):
    folder = write_source(tmp_path / "tatoeba", {
        "tatoeba.deu-eng.eng.gz": gz("I love you.\nGood night.\n"),
        "tatoeba.deu-eng.deu.gz": gz("Ich liebe dich.\nGute Nacht.\n"),
        "tatoeba.fra-eng.eng.gz": gz("I love you.\n"),
        "tatoeba.fra-eng.fra.gz": gz("Je t'aime.\n"),
    })
    pairs = data.expand(data.build_tatoeba(folder), data.SOURCES["tatoeba"], np.random.default_rng(0), 24)
    # "I love you." joins en/de/fr: 3 x 2 ordered pairs; "Good night.": en/de, 2 pairs
    assert len(pairs) == 8 and pairs["group_id"].nunique() == 2
    fr = pairs[pairs["query_lang"] == "fr"]
    assert sorted(fr["passage"]) == ["I love you.", "Ich liebe dich."]
    assert (pairs["query_lang"] != pairs["passage_lang"]).all()


def jsonl(records: list[dict]) -> bytes:
    return gz("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def test_parallel_records_give_cross_pairs_with_a_cap(tmp_path):
    """TICO-19 / NTREX-128 / Mintaka records: every ordered language pair of a record, at most the cap."""
    items = data.build_parallel(write_source(tmp_path / "tico19", {"train.jsonl.gz": jsonl([
        {"id": "CMU_1:1", "domain": "dialogue",
         "text": {"en": "Do you have a fever?", "fr": "Avez-vous de la fièvre ?", "es": "¿Tiene fiebre?"}},
        {"id": "PubMed_2:7", "domain": "biomedical", "text": {"en": "Cells divide.", "fr": "", "zh": "细胞分裂。"}},
    ])}))
    assert len(items) == 5  # the empty French side is skipped
    pairs = data.expand(items, data.SOURCES["tico19"], np.random.default_rng(0), 24)
    assert len(pairs) == 6 + 2 and (pairs["query_lang"] != pairs["passage_lang"]).all()
    assert dict(zip(pairs["group_id"], pairs["domain"])) == {"tico19:CMU_1:1": "dialogue",
                                                             "tico19:PubMed_2:7": "biomedical"}
    capped = data.expand(items, data.SOURCES["tico19"], np.random.default_rng(0), 4)
    assert capped.groupby("group_id").size().to_dict() == {"tico19:CMU_1:1": 4, "tico19:PubMed_2:7": 2}


def test_exams_and_arcd_qa_pairs(tmp_path):
    def question(qid: str, group: str, lang: str, stem: str, answer: str) -> dict:
        return {"id": qid, "group": group, "lang": lang, "domain": "physics", "question": stem,
                "choices": ["wrong", answer], "answer": 1}
    exams = write_source(tmp_path / "exams", {"train.jsonl.gz": jsonl([
        question("q1", "q1", "hr", "Koliko je g?", "9,81"), question("q2", "q1", "sr", "Колико је g?", "9.81"),
        question("q3", "q3", "bg", "Какво е g?", "9,8")])})
    pairs = data.expand(data.build_exams(exams), data.SOURCES["exams"], np.random.default_rng(0), 24)
    assert len(pairs) == 3 + 2  # three question -> answer pairs, two parallel QA pairs hr <-> sr
    cross = pairs[pairs["query_lang"] != pairs["passage_lang"]].set_index("query")["passage"].to_dict()
    assert cross == {"Koliko je g?": "9.81", "Колико је g?": "9,81"}
    assert set(pairs["group_id"]) == {"exams:q1", "exams:q3"}

    context = "الجملة الأولى هنا. أين الجواب؟ الجواب هنا في الثالثة"
    arcd = write_source(tmp_path / "arcd", {"arcd.json.gz": gz(json.dumps({"data": [
        {"title": "أسد", "paragraphs": [{"context": context, "qas": [
            {"id": "x", "question": "سؤال؟", "answers": [{"answer_start": 0, "text": ""}]}]}]},
        {"title": "مقال", "paragraphs": [{"context": context, "qas": [
            {"id": "1", "question": " - أين الجواب؟ ", "answers": [{"answer_start": context.index("الجواب هنا"),
                                                                     "text": ""}]},
            {"id": "2", "question": "ماذا؟", "answers": [{"answer_start": context.index("أين"), "text": ""}]}]}]},
    ]}))})
    pairs = data.expand(data.build_arcd(arcd), data.SOURCES["arcd"], np.random.default_rng(0), 24)
    assert pairs[["query", "passage"]].values.tolist() == [["أين الجواب؟", "الجواب هنا في الثالثة"],
                                                           ["ماذا؟", "أين الجواب؟"]]  # article "أسد" dropped


def test_partition_decides_what_evaluated_sources_train(tmp_path):
    """Mintaka records in a training folder: only the ids the partition rule puts on the training side stay,
    and a text of the shipped eval data never trains."""
    from xbench.tasks.partition import RULES, evaluated

    eval_units, eval_texts = evaluated("mintaka")
    eval_record = json.loads(gzip.decompress((DATA_ROOT / "mintaka" / "eval.jsonl.gz").read_bytes())
                             .decode().splitlines()[0])
    records = [{"id": f"m{i}", "domain": "music", "text": {"en": f"Question number {i}?", "de": f"Frage {i}?"}}
               for i in range(12)]
    records[1]["text"]["fr"] = eval_record["text"]["fr"]  # an evaluated text slipped into a training record
    write_source(tmp_path / "mintaka", {"train.jsonl.gz": jsonl(records)})
    pairs, provenance = data.load_pairs(["mintaka"], seed=0, max_pairs_per_group=24, root=tmp_path)
    train_ids = {f"m{i}" for i in range(12) if RULES["mintaka"].part(f"m{i}") == "train"} - set(eval_units)
    assert set(pairs["group_id"]) == {f"mintaka:{i}" for i in train_ids} and train_ids
    assert eval_record["text"]["fr"] not in set(pairs["query"]) | set(pairs["passage"])
    assert provenance["mintaka"]["manifest_sha256"] == hashlib.sha256(
        (tmp_path / "mintaka" / "SHA256SUMS").read_bytes()).hexdigest()
    with pytest.raises(XbenchError, match="SHA256SUMS is missing"):
        data.load_pairs(["tico19"], seed=0, max_pairs_per_group=24, root=tmp_path)
    with pytest.raises(XbenchError, match="may never train"):
        data.load_pairs(["xquad"], seed=0, max_pairs_per_group=24, root=tmp_path)


def test_shipped_training_data_is_disjoint_from_the_eval_data():
    """Every shipped training part, read independently of the builders: no unit of the eval files in
    data/<source>/ is in it, and none of the texts it trains on equals an evaluated text in the leakage guard's
    normalisation (so `xbench run` never refuses a domain task for a model trained on this data)."""
    from xbench.tasks.leakage import text_hashes

    def read(path: Path) -> list[dict]:
        return [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]

    for source in ("tico19", "ntrex128", "mintaka", "exams"):
        train = read(TRAIN_DATA / source / "train.jsonl.gz")
        held = read(DATA_ROOT / source / "eval.jsonl.gz")
        if source == "exams":
            assert not {r["group"] for r in train} & {r["group"] for r in held}
            trained = [t for r in train for t in (r["question"], r["choices"][r["answer"]])]
            evaluated = [t for r in held for t in (r["question"], *r["choices"])]
        else:
            assert not {r["id"] for r in train} & {r["id"] for r in held}
            trained = [t for r in train for t in r["text"].values()]
            evaluated = [t for r in held for t in r["text"].values()]
        assert not np.isin(text_hashes(trained), text_hashes(evaluated)).any(), source
        assert len(train) > 900, source


def test_shipped_training_data_verifies_and_builds():
    pairs, provenance = data.load_pairs(["tatoeba", "arcd"], seed=0, max_pairs_per_group=24)
    arcd = json.loads(gzip.decompress((TRAIN_DATA / "arcd" / "arcd.json.gz").read_bytes()))
    kept = sum(len(p["qas"]) for a in arcd["data"] if a["title"].strip() not in data.ARCD_DROPPED_TITLES
               for p in a["paragraphs"])
    assert provenance["arcd"]["pairs"] == provenance["arcd"]["mono_pairs"] == kept == 1377
    tatoeba = pairs[pairs["source"] == "tatoeba"]
    assert len(provenance["tatoeba"]["languages"]) == 17 and (tatoeba["query_lang"] != tatoeba["passage_lang"]).all()
    # every Tatoeba line pair gives both directions (minus the few identical sides and repeated lines); English
    # sentences shared by several files add pairs between their other languages
    lines = sum(len(gzip.decompress(p.read_bytes()).splitlines())
                for p in (TRAIN_DATA / "tatoeba").glob("*-eng.eng.gz"))
    assert lines == 15548 and len(tatoeba) > 2 * lines * 0.97


def test_configs_and_grid_expansion():
    assert parse_domain(("tico19:0.2", "exams")) == {"tico19": 0.2, "exams": 0.25}
    assert parse_domain(("tico19,ntrex128",)) == {"tico19": 0.25, "ntrex128": 0.25}
    with pytest.raises(XbenchError, match="alpha"):
        make_config("t", sampling="mono", alpha=0.3)
    with pytest.raises(XbenchError, match="together < 1"):
        make_config("t", domain={"tico19": 0.6, "exams": 0.5})
    with pytest.raises(XbenchError, match="both general and domain"):
        make_config("t", domain={"tatoeba": 0.2})
    with pytest.raises(XbenchError, match="'ntrex128' has no monolingual pairs"):
        make_config("t", sampling="mono", domain={"ntrex128": 0.2})
    assert TrainConfig(sampling="cross").effective_alpha == 0.0
    experiment = Experiment.model_validate({
        "name": "x", "train": {"base": "tiny", "steps": 2},
        "grid": {"sampling": ["mono", "cross", "hybrid"], "alpha": [0.25, 0.5], "domain": [[], ["exams:0.2"]],
                 "seeds": [0, 1]},
        "eval": {"tasks": ["tiny"]}})
    runs, skipped = expand(experiment, "x.yaml")
    assert len(runs) == (1 + 1 + 2) * 2 * 2  # mono and cross take no alpha
    assert skipped == []
    assert {run_name(r.config) for r in runs} >= {"mono-general-s0", "hybrid-a0.25-exams_0.2-s1"}
    assert all(r.config.steps == 2 for r in runs)
    experiment.grid.domain = [["tico19:0.3"]]
    runs, skipped = expand(experiment, "x.yaml")  # a translation source never enters a monolingual batch
    assert [r.config.sampling for r in runs] == ["cross", "hybrid", "hybrid"] * 2  # seeds vary slowest
    assert len(skipped) == 2 and skipped[0].endswith("mono batches can draw no pair from tico19")



@pytest.mark.parametrize("name, trainings", [("paper-cpu.yaml", 15), ("paper-gpu.yaml", 78)])
def test_shipped_experiment_configs_expand(name, trainings):
    """The shipped grids validate and hold the trainings their headers and experiments/README.md promise; every
    evaluated task exists and has every configured language."""
    from xbench.tasks.registry import discover, select, with_languages
    from xbench.training.experiment import load_experiment

    path = Path(__file__).parents[2] / "experiments" / name
    experiment = load_experiment(path)
    runs, _ = expand(experiment, str(path))
    assert len(runs) == trainings
    assert len({r.config.freeze_layers for r in runs}) == 1  # one shared frozen prefix for the whole grid
    tasks = select(discover(()), ",".join(experiment.eval.tasks))
    if experiment.eval.languages:
        assert all(with_languages(t, experiment.eval.languages).spec.languages for t in tasks)

def test_wordpiece_vocabulary_by_hand_and_the_same_in_every_process():
    """The vocabulary depends on the texts alone (the library trainer's did not: it broke ties in a per-process
    hash order), so two fresh interpreters agree; and on a small case it is what the rule gives by hand."""
    import subprocess
    import sys

    from xbench.training.tiny import wordpiece_tokenizer

    tokenizer = wordpiece_tokenizer(["Ab ba AB", "b, cab"], 16, ["[UNK]", "[PAD]"])
    # chars: , a b c; words by count: ab (2), ba / cab (1, by text); "," and "b" are chars already
    assert sorted(tokenizer.get_vocab(), key=tokenizer.get_vocab().get) == [
        "[UNK]", "[PAD]", ",", "a", "b", "c", "##,", "##a", "##b", "##c", "ab", "ba", "cab"]
    assert tokenizer.encode("cabab bac zz").tokens == ["cab", "##a", "##b", "ba", "##c", "[UNK]"]
    assert wordpiece_tokenizer(["Ab ba AB", "b, cab"], 12, ["[UNK]", "[PAD]"]).get_vocab_size() == 12  # ab, ba

    code = ("import json; from xbench.training.tiny import wordpiece_tokenizer; "
            "texts = ['the quick brown fox jumps', 'der schnelle braune Fuchs springt', 'quickly jumping foxes'] * 3; "
            "print(json.dumps(wordpiece_tokenizer(texts, 40, ['[UNK]', '[PAD]']).get_vocab(), sort_keys=True))")
    vocabs = [json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                        text=True).stdout) for _ in range(2)]
    assert vocabs[0] == vocabs[1]
