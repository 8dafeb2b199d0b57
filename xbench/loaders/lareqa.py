"""LAReQA answer-sentence retrieval (XQuAD-R, MLQA-R): SQuAD JSON with `sentences` / `sentence_breaks`.

Candidates are all sentences of all paragraphs of all languages, pooled. For a question in language X the
relevant candidates are, in every language Y where the same question id exists, the sentence of that
paragraph whose span contains `answers[0].answer_start` (Roy et al. 2020).
"""

from __future__ import annotations

import bisect
from pathlib import Path

import pandas as pd

from xbench.datafiles import load_json
from xbench.errors import XbenchError
from xbench.loaders import register
from xbench.spec import TaskSpec
from xbench.taskdata import TaskData


def _fill(template: str, spec: TaskSpec, field: str, **values: str) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError) as exc:
        raise XbenchError(
            f"task {spec.name}: field `{field}` uses unknown placeholder {exc}; available: {sorted(values)}."
        ) from None


def gold_sentence(breaks: list[list[int]], answer_start: int) -> int:
    """Index of the sentence whose [start, end) span holds the answer start (the last one starting before it)."""
    return max(bisect.bisect_right([b[0] for b in breaks], answer_start) - 1, 0)


@register("lareqa")
def load_lareqa(spec: TaskSpec, data_dir: Path) -> TaskData:
    queries, candidates = [], []
    gold: dict[str, dict[str, str]] = {}  # question id -> {lang: candidate id}
    for lang in spec.languages:
        path = data_dir / f"{lang}.json.gz"
        doc = load_json(path)
        try:
            articles = doc["data"]
        except (TypeError, KeyError):
            raise XbenchError(f"{path}: no top-level `data` list; expected SQuAD JSON with sentence_breaks.") from None
        for a, article in enumerate(articles):
            title = article.get("title", "")
            for p, para in enumerate(article["paragraphs"]):
                if "sentences" not in para or "sentence_breaks" not in para:
                    raise XbenchError(
                        f"{path}: article {title!r} paragraph {p} lacks `sentences`/`sentence_breaks`; "
                        "LAReQA data (not plain SQuAD) is required."
                    )
                ids = [f"{lang}-{a:03d}-{p:03d}-{s:03d}" for s in range(len(para["sentences"]))]
                for cid, sentence in zip(ids, para["sentences"]):
                    text = _fill(spec.doc_template, spec, "doc_template",
                                 text=sentence, sentence=sentence, context=para["context"], title=title)
                    candidates.append((cid, text, lang, None, spec.domain, title))
                for qa in para["qas"]:
                    text = _fill(spec.query_template, spec, "query_template",
                                 text=qa["question"], question=qa["question"], title=title)
                    queries.append((f"{lang}:{qa['id']}", text, lang, qa["id"], spec.domain, title))
                    start = qa["answers"][0]["answer_start"]
                    gold.setdefault(qa["id"], {})[lang] = ids[gold_sentence(para["sentence_breaks"], start)]
    columns = ["id", "text", "lang", "group_id", "domain", "title"]
    q = pd.DataFrame(queries, columns=columns)
    qrels = {qid: {cid: 1 for cid in gold[group].values()} for qid, group in zip(q["id"], q["group_id"])}
    return TaskData(queries=q, candidates=pd.DataFrame(candidates, columns=columns), qrels=qrels)
