"""xbench tasks as mteb retrieval tasks built from the same data, so a model's numbers compare across both tools.

mteb evaluates cross-lingual retrieval with one corpus per language pair (MLQARetrieval's `ara-deu` subset, ...).
The export follows xbench's slices (xbench/tasks/settings.py) one to one: one mteb task per setting, one subset per
slice, named `<query lang>-<candidate lang>` (`en-en` mono, `en-de` cross, `en-all` multi), holding exactly that
slice's queries, candidate pool and the judgements inside it. Per subset, mteb's ndcg_at_K, recall_at_K and
map_at_1000 / mrr_at_1000 then equal xbench's slice scores ndcg@K, recall@K, map and mrr, except that mteb (1) keeps
the top 1000 candidates only, so relevant candidates ranked lower add nothing to its AP / RR, (2) breaks exact score
ties by candidate id descending (pytrec_eval), xbench ascending, (3) strips surrounding spaces from candidate texts
before encoding (me5-small embeds XQuAD-R's 33 such candidates identically either way) and (4) rounds to 5 decimals.

Bitext tasks withhold a query's own text from its ranking (`TaskData.exclude`); the export names such a query after
that candidate and sets mteb's `ignore_identical_ids`, which drops it from the query's results the same way.

`to_mteb` returns in-memory tasks for `mteb.evaluate`; `write` saves them in the Hugging Face dataset layout mteb's
retrieval loader reads (configs `<subset>-corpus`, `<subset>-queries`, `<subset>-qrels`, so a folder can also be
uploaded to the hub as is) and `load` builds tasks that mteb loads from such a folder.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from xbench.errors import XbenchError
from xbench.provenance import __version__
from xbench.tasks.registry import Task
from xbench.tasks.settings import ALL_LANGUAGES, Slice, slices
from xbench.tasks.spec import SETTINGS, Setting
from xbench.tasks.taskdata import TaskData

if TYPE_CHECKING:
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

MTEB_K_VALUES = (1, 3, 5, 10, 20, 100, 1000)  # mteb's retrieval default; AP and RR are cut at the largest
METADATA_FILE = "xbench_mteb_task.json"
CONFIG_PARTS: tuple[Literal["corpus", "queries", "qrels"], ...] = ("corpus", "queries", "qrels")  # one config each


def require_mteb() -> None:
    """mteb is an optional extra: say how to get it instead of failing on an import deep inside a command."""
    if importlib.util.find_spec("mteb") is None:
        raise XbenchError("this needs mteb, an optional dependency: pip install 'xbench[mteb]'.")


def mteb_metric(name: str) -> str:
    """The mteb score key of an xbench metric: map -> map_at_1000, recall@10 -> recall_at_10 (see the module doc)."""
    if name in ("map", "mrr"):
        return f"{name}_at_{max(MTEB_K_VALUES)}"
    kind, _, k = name.partition("@")
    return f"{kind}_at_{k}"


def _language_script(lang: str) -> str:
    """xbench's ISO 639-1 codes -> mteb's `eng-Latn` form (mteb validates them; its converter is the reference)."""
    from mteb.languages.iso_mappings import _hf_lang_to_iso_lang_script  # lazy: optional extra xbench[mteb]

    code = _hf_lang_to_iso_lang_script(lang)
    if code is None:
        raise XbenchError(f"language {lang!r} has no ISO 639-3 code with a default script in mteb; the task cannot "
                          "be exported. Use ISO 639-1 codes (en, de, ...) in the task's `languages`.")
    return code


def _subset(data: TaskData, sl: Slice) -> RetrievalSplitData:
    """One slice as mteb retrieval split data: corpus, queries and the positive judgements inside the pool."""
    from datasets import Dataset  # lazy: heavy; only for mteb and hub data

    cands = data.candidates.iloc[sl.cand_rows]
    queries = data.queries.iloc[sl.query_rows]
    pool = set(cands["id"])
    names, qrels = [], {}
    for qid in queries["id"]:
        hidden = data.exclude.get(qid, set()) & pool
        if len(hidden) > 1:
            raise XbenchError(f"query {qid!r} withholds {len(hidden)} candidates; mteb can withhold one per query "
                              "(ignore_identical_ids), so this task cannot be exported.")
        name = next(iter(hidden), qid)
        names.append(name)
        qrels[name] = {d: g for d, g in data.qrels[qid].items() if g > 0 and d in pool}
    return {"corpus": Dataset.from_dict({"id": cands["id"].tolist(), "text": cands["text"].tolist()}),
            "queries": Dataset.from_dict({"id": names, "text": queries["text"].tolist()}),
            "relevant_docs": qrels, "top_ranked": None}


def _task_class(metadata: Any, ignore_identical_ids: bool, k_values: Sequence[int]) -> type[AbsTaskRetrieval]:
    from mteb.abstasks.retrieval import AbsTaskRetrieval  # lazy: optional extra xbench[mteb]

    return type("XbenchRetrieval", (AbsTaskRetrieval,),
                {"metadata": metadata, "ignore_identical_ids": ignore_identical_ids, "k_values": tuple(k_values)})


def to_mteb(task: Task, settings: Sequence[Setting] | None = None) -> list[AbsTaskRetrieval]:
    """One in-memory mteb retrieval task per setting, data loaded, ready for `mteb.evaluate(model, tasks)`."""
    require_mteb()
    from mteb import TaskMetadata  # lazy: optional extra xbench[mteb]

    spec = task.spec
    wanted = [s for s in (settings or SETTINGS) if s in spec.settings]
    if not wanted:
        raise XbenchError(f"task {task.name} defines settings {spec.settings}; none of {list(settings or [])}.")
    data, revision = task.load(), task.data_sha256()
    cutoffs = {int(m.partition("@")[2]) for m in spec.metrics if "@" in m}
    k_values = sorted(set(MTEB_K_VALUES) | cutoffs)
    main = mteb_metric(spec.main_metric.partition(".")[2])
    tasks = []
    for setting in wanted:
        cuts = list(slices(data, spec, [setting]))
        langs = {sl.query_lang: _language_script(sl.query_lang) for sl in cuts}
        eval_langs = {f"{sl.query_lang}-{sl.cand_lang}":
                      [langs[sl.query_lang]] + ([_language_script(lang) for lang in spec.languages]
                                                if sl.cand_lang == ALL_LANGUAGES else [_language_script(sl.cand_lang)])
                      for sl in cuts}
        metadata = TaskMetadata(
            name=f"xbench-{task.name}-{setting}", dataset={"path": f"xbench/{task.name}", "revision": revision},
            description=f"{spec.description} xbench task {task.name} v{spec.version}, setting {setting}: one subset "
                        f"per (query, candidate) language slice. Data license: {spec.license}. Exported by "
                        f"xbench {__version__}.",
            type="Retrieval", category="t2t", modalities=["text"], eval_splits=[spec.split], eval_langs=eval_langs,
            main_score=main, bibtex_citation=spec.citation,
        )
        instance = _task_class(metadata, bool(data.exclude), k_values)()
        instance.dataset = {f"{sl.query_lang}-{sl.cand_lang}": {spec.split: _subset(data, sl)} for sl in cuts}
        instance.data_loaded = True
        tasks.append(instance)
    return tasks


def write(tasks: Sequence[AbsTaskRetrieval], out: Path) -> list[Path]:
    """Save each task as `out/<task name>/`: parquet files per config, a README declaring the configs (what
    `datasets.load_dataset(folder, config)` and the hub read) and the task's metadata for `load`."""
    from datasets import Dataset  # lazy: heavy; only for mteb and hub data

    folders = []
    for task in tasks:
        folder = out / task.metadata.name
        configs = []
        for subset, splits in task.dataset.items():
            for part in CONFIG_PARTS:
                files = []
                for split, data in splits.items():
                    table = data[part] if part != "qrels" else Dataset.from_list(
                        [{"query-id": q, "corpus-id": d, "score": g}
                         for q, rel in data["relevant_docs"].items() for d, g in rel.items()])
                    path = Path("data") / f"{subset}-{part}" / f"{split}.parquet"
                    (folder / path).parent.mkdir(parents=True, exist_ok=True)
                    table.to_parquet(folder / path)
                    files.append(f"    - split: {split}\n      path: {path.as_posix()}\n")
                configs.append(f"- config_name: {subset}-{part}\n  data_files:\n{''.join(files)}")
        (folder / "README.md").write_text(f"---\nconfigs:\n{''.join(configs)}---\n\n{task.metadata.description}\n",
                                          encoding="utf-8")
        raw = {"metadata": task.metadata.model_dump(mode="json"), "ignore_identical_ids": task.ignore_identical_ids,
               "k_values": list(task.k_values)}
        (folder / METADATA_FILE).write_text(json.dumps(raw, indent=2), encoding="utf-8")
        folders.append(folder)
    return folders


def load(folder: Path) -> list[AbsTaskRetrieval]:
    """The tasks `write` saved under `folder` (or `folder` itself); mteb's own retrieval loader reads the data."""
    require_mteb()
    from mteb import TaskMetadata  # lazy: optional extra xbench[mteb]

    found = sorted(folder.glob(f"*/{METADATA_FILE}")) or sorted(folder.glob(METADATA_FILE))
    if not found:
        raise XbenchError(f"{folder}: no {METADATA_FILE} here or one level down; pass the --out folder of "
                          "`xbench export-mteb`.")
    tasks = []
    for path in found:
        raw = json.loads(path.read_text(encoding="utf-8"))
        meta = raw["metadata"]
        meta["dataset"] = {**meta["dataset"], "path": str(path.parent.resolve())}
        tasks.append(_task_class(TaskMetadata.model_validate(meta), raw["ignore_identical_ids"], raw["k_values"])())
    return tasks
