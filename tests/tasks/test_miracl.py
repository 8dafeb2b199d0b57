"""MIRACL: the shipped topics and qrels, the loader on a tiny corpus in real MIRACL format (through a local BEIR
folder and through the `datasets` path of `xbench data`), scores against pytrec_eval, and the offline skip."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from helpers import MIRACL_DEPTH as DEPTH
from helpers import MIRACL_LANGS as LANGS
from helpers import invoke, tiny_miracl, write_beir, write_hub_copy, write_task

from xbench.paths import DATA_ROOT
from xbench.results.store import load
from xbench.tasks.loaders.miracl import qrels_path, read_qrels, read_topics, topics_path
from xbench.tasks.prepare import prepare_miracl
from xbench.tasks.registry import discover

# data/miracl/SOURCE.md (counted by whoever staged the files, and equal to the MIRACL paper for the 16 languages
# it lists): queries, judged pairs, relevant pairs, distinct judged passages
SHIPPED = {"ar": (2896, 29197, 5658, 25881), "bn": (411, 4206, 863, 3729), "de": (305, 3144, 811, 3103),
           "en": (799, 8350, 2326, 7921), "es": (648, 6443, 2987, 6410), "fa": (632, 6571, 1314, 6405),
           "fi": (1271, 12008, 2447, 11365), "fr": (343, 3429, 731, 3407), "hi": (350, 3494, 752, 3342),
           "id": (960, 9668, 3088, 8286), "ja": (860, 8354, 1790, 8066), "ko": (213, 3057, 547, 2835),
           "ru": (1252, 13100, 3560, 12607), "sw": (482, 5092, 910, 3514), "te": (828, 1606, 854, 1457),
           "th": (733, 7573, 1343, 6868), "yo": (119, 1188, 144, 942), "zh": (393, 3928, 994, 3786)}


def run_bm25(tasks: Path, out: Path, cache: Path, *extra: str):
    return invoke("run", "--model", "bm25", "--tasks", "tinymiracl", "--tasks-dir", str(tasks), "--output", str(out),
                  "--settings", "mono", *extra, env={"XBENCH_CACHE": str(cache)})


def trec_scores(data: dict[str, dict], task_data, depth: int = DEPTH) -> dict[str, dict[str, float]]:
    """Per-language means of pytrec_eval's ndcg_cut_10 and recall_100 on a BM25 top-`depth` run.

    The ranking comes from xbench's BM25 scores; the qrels come straight from the test's own data (unprefixed,
    with their grades), and the run's scores strictly decrease in xbench's tie order (score desc, id asc), so
    only ids, grades, the depth cut and the metrics are checked here."""
    from xbench.models.bm25 import BM25Retriever

    bm25 = BM25Retriever()
    bm25.prepare(task_data)
    queries, cands = task_data.queries, task_data.candidates
    out = {}
    for lang, d in data.items():
        q_rows = np.flatnonzero(queries["lang"] == lang)
        c_rows = np.flatnonzero(cands["lang"] == lang)
        c_rows = c_rows[np.argsort(cands["id"].to_numpy()[c_rows])]
        scores = bm25.scorer(q_rows, c_rows)(np.arange(len(q_rows)))
        run = {}
        for i, q in enumerate(queries["id"].to_numpy()[q_rows]):
            order = np.lexsort((np.arange(len(c_rows)), -scores[i]))[:depth]
            docs = [cands["id"].iloc[c_rows[j]].split(":", 1)[1] for j in order]
            run[q.split(":", 1)[1]] = {doc: float(depth - r) for r, doc in enumerate(docs)}
        evaluator = pytrec_eval.RelevanceEvaluator(d["qrels"], {"ndcg_cut.10", "recall.100"})
        per_query = evaluator.evaluate(run)
        out[lang] = {"ndcg@10": np.mean([v["ndcg_cut_10"] for v in per_query.values()]),
                     "recall@100": np.mean([v["recall_100"] for v in per_query.values()])}
    return out


def test_shipped_topics_and_qrels_match_the_staged_counts():
    data_dir = DATA_ROOT / "miracl"
    discover()["miracl"].data_sha256()  # SHA256SUMS holds
    for lang, (n_queries, n_pairs, n_relevant, n_docs) in SHIPPED.items():
        topics, qrels = read_topics(topics_path(data_dir, lang)), read_qrels(qrels_path(data_dir, lang))
        counted = (topics["qid"].nunique(), len(qrels), int((qrels["grade"] == 1).sum()), qrels["docid"].nunique())
        assert counted == (n_queries, n_pairs, n_relevant, n_docs), lang
        assert set(qrels["grade"]) == {0, 1} and set(qrels["qid"]) == set(topics["qid"])


def test_offline_without_corpus_both_tasks_are_skipped_with_the_command(tmp_path):
    res = invoke("run", "--model", "bm25", "--tasks", "miracl,miracl-judged", "--output", str(tmp_path / "out"),
                 env={"XBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"})
    assert res.exit_code == 3, res.output  # nothing ran
    assert "miracl: skipped" in res.output and "miracl-judged: skipped" in res.output
    assert "`xbench data miracl --lang all --variant full`" in res.output
    assert "`xbench data miracl --lang all --variant judged`" in res.output
    assert "0/2 tasks ran; skipped (data not here): miracl, miracl-judged" in res.output
    assert not (tmp_path / "out" / "bm25").exists()  # no results file, so never a zero score


def test_data_command_offline_fails_fast_with_a_clear_message(tmp_path):
    res = invoke("data", "miracl", "--lang", "sw", env={"XBENCH_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert res.exit_code == 2 and "hub is unreachable" in res.output and "--source" in res.output
    assert invoke("data", "miracl", "--lang", "sw,xx").exit_code == 2


def test_datasets_path_and_local_folder_give_pytrec_eval_scores(tmp_path):
    data = tiny_miracl()
    tasks = write_task(tmp_path, data)
    cache = tmp_path / "cache"
    # the `datasets` path: the same load_dataset("json", ...) call as for the hub, pointed at a local copy
    task = discover((tasks,))["tinymiracl"]
    hub = write_hub_copy(tmp_path / "hub", data)
    prepared = list(prepare_miracl(list(LANGS), "judged", cache / "data" / "miracl" / "judged", str(hub), task))
    judged = {lang: len({doc for rel in d["qrels"].values() for doc in rel}) for lang, d in data.items()}
    assert [(p.lang, p.passages, p.judged_absent) for p in prepared] == [(lang, judged[lang], 0) for lang in LANGS]
    beir = prepared[0].folder
    assert (beir / "qrels" / "dev.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"
    assert len((beir / "queries.jsonl").read_text().splitlines()) == 8

    res = run_bm25(tasks, tmp_path / "out", cache)
    assert res.exit_code == 0, res.output
    assert f"note: sw: {judged['sw']} passages from" in res.output and "(judged)]" in res.output
    path = tmp_path / "out" / "bm25" / "tinymiracl.json"
    result = load(path)
    assert invoke("validate", str(path)).exit_code == 0
    assert {s.query_lang: s.n_candidates for s in result.slices} == judged
    assert any(2 in g for s in result.slices for g in s.per_query.grades)  # grade 2 reached the results
    assert result.query_ids[:2] == ["sw:0", "sw:1"] and "yo:0" in result.query_ids  # same qids, kept apart

    # the full variant through a local BEIR folder: scores against pytrec_eval on the same top-100 run
    (tasks / "tinymiracl.yaml").unlink()
    tasks = write_task(tmp_path, data, variant="full")
    folder = write_beir(tmp_path / "beir", data)
    res = run_bm25(tasks, tmp_path / "out-full", tmp_path / "no-cache", "--data-dir", f"tinymiracl={folder}")
    assert res.exit_code == 0, res.output
    full = load(tmp_path / "out-full" / "bm25" / "tinymiracl.json")
    assert {s.n_candidates for s in full.slices} == {160}
    assert f"--data-dir tinymiracl={folder}" in full.run.command
    assert any(0 in r for s in full.slices for r in s.per_query.ranks)  # some relevant passage below the top 100
    expected = trec_scores(data, replace(discover((tasks,))["tinymiracl"], local_data=folder).load())
    for lang in LANGS:
        for metric in ("ndcg@10", "recall@100"):
            assert full.summary["mono"][lang][metric] == pytest.approx(expected[lang][metric], abs=1e-12)
    assert full.main_score == pytest.approx(np.mean([expected[lang]["ndcg@10"] for lang in LANGS]), abs=1e-12)


def test_missing_passages_are_counted_and_left_out(tmp_path):
    data = tiny_miracl()
    tasks = write_task(tmp_path, data)
    relevant = next(doc for doc, g in data["sw"]["qrels"]["3"].items() if g == 2)
    folder = write_beir(tmp_path / "beir", data, drop=("sw", relevant))
    task = discover((tasks,))["tinymiracl"]
    loaded = replace(task, local_data=folder).load()  # the judged variant filters a full folder
    n_judged = len({doc for rel in data["sw"]["qrels"].values() for doc in rel})
    assert (loaded.candidates["lang"] == "sw").sum() == n_judged - 1
    assert f"sw:{relevant}" not in loaded.qrels["sw:3"] and len(loaded.qrels["sw:3"]) == 9
    note = next(n for n in loaded.notes if "not in the corpus" in n)
    assert note.startswith(f"sw: 1 of {n_judged} judged passages (1 relevant) are not in the corpus")
    assert "0 queries lose every relevant passage" in note
    res = run_bm25(tasks, tmp_path / "out", tmp_path / "cache", "--data-dir", f"tinymiracl={folder}")
    assert res.exit_code == 0 and "note: sw: 1 of" in res.output
    assert any("not in the corpus" in n for n in load(tmp_path / "out" / "bm25" / "tinymiracl.json").run.notes)


def test_bad_input_names_the_field_or_flag(tmp_path):
    data = tiny_miracl()
    tasks = write_task(tmp_path, data, variant="everything")
    res = run_bm25(tasks, tmp_path / "out", tmp_path / "cache", "--data-dir", f"tinymiracl={tmp_path}")
    assert res.exit_code == 1 and "field `options.variant` is 'everything'" in res.output
    assert "expected TASK=PATH" in run_bm25(tasks, tmp_path / "o", tmp_path / "c", "--data-dir", "x").output
    assert "not among --tasks" in run_bm25(tasks, tmp_path / "o", tmp_path / "c", "--data-dir",
                                           f"xquad-r={tmp_path}").output
    (tasks / "tinymiracl.yaml").unlink()
    tasks = write_task(tmp_path, data)
    res = run_bm25(tasks, tmp_path / "out", tmp_path / "cache", "--data-dir", f"tinymiracl={tmp_path}")
    assert res.exit_code == 1 and "no MIRACL passages for sw, yo in" in res.output  # a named folder: task fails
    (tmp_path / "bad" / "sw").mkdir(parents=True)  # a damaged corpus is a user error naming the file
    (tmp_path / "bad" / "yo").mkdir(parents=True)
    for lang in ("sw", "yo"):
        (tmp_path / "bad" / lang / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n{"_id": \n')
    res = run_bm25(tasks, tmp_path / "out", tmp_path / "cache", "--data-dir", f"tinymiracl={tmp_path / 'bad'}")
    assert res.exit_code == 1 and f"{tmp_path / 'bad' / 'sw' / 'corpus.jsonl'}" in res.output, res.output
