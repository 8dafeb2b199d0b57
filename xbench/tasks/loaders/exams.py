"""EXAMS question -> correct answer option, with a pooled candidate set of answer options (Hardalov et al. 2020).

Data: gzip JSONL from `tools.sources`, one record per test question: {"id", "group", "lang", "domain" (subject
slug), "question", "choices": [...], "answer": index}. Candidates are the distinct option texts per language
(an option text shared by several questions is one candidate, so identical copies never tie with the gold).
Relevant for a question in X: its own correct option (mono, multi) and the correct options of its parallel
questions (same `group`) in the other languages (cross in Y, multi). A question without translations takes
part in mono and multi only. `spec.domain` keeps one subject; option `file` (default eval.jsonl.gz).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from xbench.errors import XbenchError
from xbench.tasks.loaders.base import register
from xbench.tasks.loaders.common import fill_template, loader_options, read_records
from xbench.tasks.partition import EVAL_FILE
from xbench.tasks.spec import TaskSpec
from xbench.tasks.taskdata import TaskData

OPTIONS = {"file": f"records file in the data folder (default {EVAL_FILE})"}


def option_id(lang: str, text: str) -> str:
    """One id per distinct option text and language, the same in every task that holds it."""
    return f"{lang}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}"


@register("exams")
def load_exams(spec: TaskSpec, data_dir: Path) -> TaskData:
    options = loader_options(spec, OPTIONS)
    path, questions = read_records(spec, data_dir, options)
    questions = questions[questions["lang"].isin(spec.languages)].sort_values("id")
    if questions.empty:
        raise XbenchError(f"task {spec.name}: {path} holds no question in languages {spec.languages}.")
    gold = [option_id(lang, choices[answer]) for lang, choices, answer
            in zip(questions["lang"], questions["choices"], questions["answer"])]
    options_long = questions[["lang", "domain", "choices"]].explode("choices").rename(columns={"choices": "text"})
    options_long = options_long[options_long["text"].str.strip() != ""]
    pool = options_long.groupby(["lang", "text"], sort=False)["domain"].agg(
        lambda d: d.iloc[0] if d.nunique() == 1 else "mixed").reset_index()
    candidates = pd.DataFrame({
        "id": [option_id(lang, text) for lang, text in zip(pool["lang"], pool["text"])],
        "text": [fill_template(spec.doc_template, spec, "doc_template", text=t) for t in pool["text"]],
        "lang": pool["lang"], "group_id": None, "domain": pool["domain"]})
    queries = pd.DataFrame({
        "id": questions["lang"] + ":" + questions["id"],
        "text": [fill_template(spec.query_template, spec, "query_template", text=q, question=q)
                 for q in questions["question"]],
        "lang": questions["lang"], "group_id": questions["group"], "domain": questions["domain"]})
    gold_of_group = pd.Series(gold, index=questions["group"].to_numpy()).groupby(level=0).agg(set)
    qrels = {q: dict.fromkeys(gold_of_group[g], 1) for q, g in zip(queries["id"], queries["group_id"])}
    return TaskData(queries=queries.reset_index(drop=True), candidates=candidates, qrels=qrels)
