"""LAReQA answer-sentence retrieval (XQuAD-R, MLQA-R): SQuAD JSON with `sentences` / `sentence_breaks`.

Candidates are all sentences of all paragraphs of all languages, pooled. For a question in language X the
relevant candidates are, in every language Y where the same question id exists, the sentence of that
paragraph whose span contains `answers[0].answer_start` (Roy et al. 2020).

Topic splits: `options.domain_map` names a reviewed `title<TAB>domain` file (path relative to the
data folder, pinned by `options.domain_map_sha256`); it sets the `domain` column, and `spec.domain` keeps that
domain's questions and candidates only. An article whose title the map lacks takes the domain of the mapped
articles that hold the same question ids (MLQA-R titles differ per language; the map lists the English ones).
"""

from __future__ import annotations

import bisect
import re
from pathlib import Path
from typing import Any

import pandas as pd

from xbench.errors import XbenchError
from xbench.io import load_json, sha256_file
from xbench.tasks.loaders.base import register
from xbench.tasks.loaders.common import data_file, fill_template, loader_options, text_option
from xbench.tasks.spec import TaskSpec
from xbench.tasks.taskdata import TaskData

OPTIONS = {"domain_map": "title<TAB>domain file, relative to the data folder",
           "domain_map_sha256": "sha256 of that file (required with it)"}
DOMAIN_LABEL = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def gold_sentence(breaks: list[list[int]], answer_start: int) -> int:
    """Index of the sentence whose [start, end) span holds the answer start (the last one starting before it)."""
    return max(bisect.bisect_right([b[0] for b in breaks], answer_start) - 1, 0)


def read_domain_map(path: Path, sha256: str | None, spec: TaskSpec) -> dict[str, str]:
    """The reviewed title -> domain map; refuses a file that differs from the pinned one (results would be
    reused for a different split otherwise)."""
    if not path.is_file():
        raise XbenchError(f"task {spec.name}: field `options.domain_map` names {path}, which does not exist; "
                          "the path is relative to the task's data folder.")
    actual = sha256_file(path)
    if sha256 != actual:
        raise XbenchError(f"task {spec.name}: {path} has sha256 {actual}, but field `options.domain_map_sha256` is "
                          f"{sha256!r}. Review the map's change, then put its sha256 in the spec.")
    mapping: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        title, tab, domain = line.partition("\t")
        if not tab or not DOMAIN_LABEL.match(domain) or title in mapping:
            raise XbenchError(f"{path}:{n}: expected a new title, a tab and a domain label (a-z, 0-9, -), "
                              f"got {line!r}.")
        mapping[title] = domain
    return mapping


def _question_ids(article: dict[str, Any]) -> list[str]:
    return [qa["id"] for para in article["paragraphs"] for qa in para["qas"]]


def article_domains(spec: TaskSpec, data_dir: Path, docs: dict[str, list[dict]]) -> dict[tuple[str, int], str]:
    """(language, article index) -> domain from `options.domain_map`; empty when the spec has no map."""
    options = loader_options(spec, OPTIONS)
    if "domain_map" not in options:
        return {}
    path = data_dir / str(text_option(spec, options, "domain_map"))
    mapping = read_domain_map(path, text_option(spec, options, "domain_map_sha256"), spec)
    if spec.domain is not None and spec.domain not in mapping.values():
        raise XbenchError(f"task {spec.name}: field `domain` is {spec.domain!r}, which {path} never assigns; "
                          f"its domains: {sorted(set(mapping.values()))}.")
    by_question = {q: mapping[a["title"]] for articles in docs.values() for a in articles
                   if a.get("title") in mapping for q in _question_ids(a)}
    domains = {}
    for lang, articles in docs.items():
        for i, article in enumerate(articles):
            title = article.get("title", "")
            found = {mapping[title]} if title in mapping else \
                {by_question[q] for q in _question_ids(article) if q in by_question}
            if len(found) != 1:
                raise XbenchError(f"{path}: article {title!r} of {lang}.json.gz has "
                                  f"{'conflicting domains ' + str(sorted(found)) if found else 'no domain'}; "
                                  f"add the line '{title}<TAB><domain>' to the map.")
            domains[(lang, i)] = found.pop()
    return domains


def _articles(path: Path) -> list[dict]:
    doc = load_json(path)
    try:
        return doc["data"]
    except (TypeError, KeyError):
        raise XbenchError(f"{path}: no top-level `data` list; expected SQuAD JSON with sentence_breaks.") from None


def question_and_start(path: Path, qa: dict[str, Any], context: str) -> tuple[str, int]:
    """A question's text and answer offset, checked: a missing text would become the query "None" and an offset
    past the context would silently make the last sentence the gold one."""
    where = f"{path}: question {qa.get('id')!r}"
    if not isinstance(qa.get("id"), str) or not qa["id"]:
        raise XbenchError(f"{where}: field `id` must be a non-empty string (it links the question's translations).")
    question = qa.get("question")
    if not isinstance(question, str):  # a blank string is caught by TaskData.validate with the others
        raise XbenchError(f"{where}: field `question` is {question!r}; give the question's text (a string) or "
                          "drop the record.")
    answers = qa.get("answers")
    if not isinstance(answers, list) or not answers or not isinstance(answers[0], dict):
        raise XbenchError(f"{where}: field `answers` is {answers!r}; expected a non-empty list of "
                          '{"answer_start": <int>, "text": "..."} (the first one marks the gold sentence).')
    start = answers[0].get("answer_start")
    if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start < len(context):
        raise XbenchError(f"{where}: field `answers[0].answer_start` is {start!r}; expected an integer character "
                          f"offset inside the paragraph's context (0 to {len(context) - 1}). Fix the record.")
    return question, start


@register("lareqa")
def load_lareqa(spec: TaskSpec, data_dir: Path) -> TaskData:
    queries, candidates = [], []
    gold: dict[str, dict[str, str]] = {}  # question id -> {lang: candidate id}
    paths = {lang: data_file(spec, data_dir, f"{lang}.json.gz", "languages") for lang in spec.languages}
    docs = {lang: _articles(path) for lang, path in paths.items()}
    domains = article_domains(spec, data_dir, docs)
    for lang, articles in docs.items():
        path = paths[lang]
        for a, article in enumerate(articles):
            title = article.get("title", "")
            domain = domains.get((lang, a), spec.domain)
            if spec.domain is not None and domain != spec.domain:
                continue
            for p, para in enumerate(article["paragraphs"]):
                if "sentences" not in para or "sentence_breaks" not in para:
                    raise XbenchError(
                        f"{path}: article {title!r} paragraph {p} lacks `sentences`/`sentence_breaks`; "
                        "LAReQA data (not plain SQuAD) is required."
                    )
                ids = [f"{lang}-{a:03d}-{p:03d}-{s:03d}" for s in range(len(para["sentences"]))]
                for cid, sentence in zip(ids, para["sentences"]):
                    text = fill_template(spec.doc_template, spec, "doc_template",
                                         text=sentence, sentence=sentence, context=para["context"], title=title)
                    candidates.append((cid, text, lang, None, domain, title))
                for qa in para["qas"]:
                    question, start = question_and_start(path, qa, para["context"])
                    text = fill_template(spec.query_template, spec, "query_template",
                                         text=question, question=question, title=title)
                    queries.append((f"{lang}:{qa['id']}", text, lang, qa["id"], domain, title))
                    gold.setdefault(qa["id"], {})[lang] = ids[gold_sentence(para["sentence_breaks"], start)]
    columns = ["id", "text", "lang", "group_id", "domain", "title"]
    q = pd.DataFrame(queries, columns=columns)
    qrels = {qid: dict.fromkeys(gold[group].values(), 1) for qid, group in zip(q["id"], q["group_id"])}
    return TaskData(queries=q, candidates=pd.DataFrame(candidates, columns=columns), qrels=qrels)
