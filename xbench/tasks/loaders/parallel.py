"""Translation retrieval on multi-way parallel text (TICO-19, NTREX-128, Mintaka): find an item's translations.

Data: gzip JSONL from `tools.sources`, one record per item: {"id", "domain", ["doc"], "text": {lang: text}}.
A query is an item's text in language X; the candidates are every item's text in every language of the spec.
Relevant: the same item in every other language (cross: in Y; multi: all of them). The query's own text is in
the pool (it is another language's gold) and is withheld from its ranking (`TaskData.exclude`), so in multi
the other X-language items compete as distractors but the query never meets itself. Mono does not exist: an
item's only same-language match is itself.

Options: `file` (default eval.jsonl.gz); `join`: a record field whose equal values are concatenated, in id
order, into one item (NTREX-128 documents). `spec.domain` keeps the records of that domain.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xbench.errors import XbenchError
from xbench.tasks.loaders.base import register
from xbench.tasks.loaders.common import fill_template, loader_options, read_records, text_option
from xbench.tasks.partition import EVAL_FILE
from xbench.tasks.spec import TaskSpec
from xbench.tasks.taskdata import TaskData

OPTIONS = {"file": f"records file in the data folder (default {EVAL_FILE})",
           "join": "record field whose equal values form one item, lines joined in id order (e.g. doc)"}


def _long(records: pd.DataFrame, spec: TaskSpec, path: Path, join: str | None) -> pd.DataFrame:
    """One row per (item, language): item, lang, text, domain."""
    if join is not None and join not in records:
        raise XbenchError(f"task {spec.name}: field `options.join` is {join!r}, but the records of {path} have "
                          f"fields {sorted(records.columns)}.")
    rows = []
    for record in records.sort_values("id").itertuples(index=False):
        record = record._asdict()
        missing = [lang for lang in spec.languages if not str(record["text"].get(lang, "")).strip()]
        if missing:
            raise XbenchError(f"{path}: record {record['id']!r} has no text in {missing}; drop those languages "
                              f"from the task's `languages` or rebuild the file.")
        item = str(record[join] if join else record["id"])
        rows += [(item, lang, record["text"][lang], record["domain"]) for lang in spec.languages]
    table = pd.DataFrame(rows, columns=["item", "lang", "text", "domain"])
    if join:
        table = table.groupby(["item", "lang"], sort=True).agg(text=("text", " ".join), domain=("domain", "first"))
    return table.reset_index(drop=join is None)


@register("parallel")
def load_parallel(spec: TaskSpec, data_dir: Path) -> TaskData:
    options = loader_options(spec, OPTIONS)
    path, records = read_records(spec, data_dir, options)
    table = _long(records, spec, path, text_option(spec, options, "join"))
    qid = table["lang"] + ":" + table["item"]
    cid = table["lang"] + "-" + table["item"]

    def frame(ids: pd.Series, template: str, field: str) -> pd.DataFrame:
        texts = [fill_template(template, spec, field, text=t) for t in table["text"]]
        return pd.DataFrame({"id": ids, "text": texts, "lang": table["lang"], "group_id": table["item"],
                             "domain": table["domain"]})

    translations = cid.groupby(table["item"]).agg(set)
    qrels = {q: dict.fromkeys(translations[item] - {own}, 1) for q, own, item in zip(qid, cid, table["item"])}
    return TaskData(queries=frame(qid, spec.query_template, "query_template"),
                    candidates=frame(cid, spec.doc_template, "doc_template"), qrels=qrels,
                    exclude={q: {own} for q, own in zip(qid, cid)})
