"""xbench vs mteb on the same model and data, in one process (prints figures; asserts nothing).

xbench runs the tasks as usual, on a fresh embedding cache, so it encodes every unique text once. mteb evaluates the
export of the same tasks (xbench.interop.mteb: one corpus per language slice, as mteb does cross-lingual retrieval),
so it encodes each slice's queries and pool anew. One SentenceTransformer serves both tools; a counting wrapper on
its `encode` counts the texts each tool hands it. Wall time covers a tool's whole evaluation (loading the data,
encoding, scoring), not loading the model. Scores are compared slice by slice where the definitions match (see
xbench/interop/mteb.py): ndcg@10 and recall@k everywhere, map / mrr only in slices whose relevant candidates all rank
within mteb's top 1000.

    nice python benchmarks/bench_mteb.py --model me5-small --tasks xquad-r,mlqa-r --languages en,de,ar
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from xbench.evaluation.run import run_task
from xbench.interop.mteb import MTEB_K_VALUES, mteb_metric, to_mteb
from xbench.models.builtins import build_me5
from xbench.models.registry import resolve
from xbench.paths import default_cache_root
from xbench.results.store import load
from xbench.tasks.registry import discover, select, with_languages
from xbench.tasks.spec import SETTINGS

CUT_AT_DEPTH = {"map", "mrr"}  # mteb cuts these at its deepest k
MTEB_DEPTH = max(MTEB_K_VALUES)


class CountingEncode:
    """Replaces a SentenceTransformer's `encode` (which `encode_query` / `encode_document` call too) and counts."""

    def __init__(self, model: Any) -> None:
        self.inner, self.texts = model.encode, 0
        model.encode = self

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        self.texts += 1 if isinstance(inputs, str) else len(inputs)
        return self.inner(inputs, *args, **kwargs)


def main() -> None:
    import mteb

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="me5-small")
    parser.add_argument("--tasks", default="xquad-r,mlqa-r")
    parser.add_argument("--languages", default=None,
                        help="comma-separated subset of every task's languages (default all)")
    parser.add_argument("--tasks-dir", type=Path, action="append", default=[], help="extra task folder")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    languages = args.languages.split(",") if args.languages else None
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        if args.model == "me5-small":  # reuse the built model, not its embeddings
            (cache / "models").mkdir(parents=True)
            (cache / "models" / "me5-small").symlink_to(build_me5(default_cache_root()))
        retriever = resolve(args.model, cache_root=cache, batch_size=args.batch_size)
        st = retriever.encoder.model
        counter = CountingEncode(st)
        wrapped = mteb.SentenceTransformerEncoderWrapper(st)
        rows, compare = [], []
        for task in select(discover(tuple(args.tasks_dir)), args.tasks):
            task = with_languages(task, languages)
            settings = [s for s in SETTINGS if s in task.spec.settings]
            counter.texts, start = 0, time.perf_counter()
            outcome = run_task(retriever, task, settings=settings, output=Path(tmp) / "out", command="bench",
                               device="cpu", force=True)
            ours = (counter.texts, time.perf_counter() - start)
            counter.texts, start = 0, time.perf_counter()
            results = mteb.evaluate(wrapped, to_mteb(task, settings), cache=None, show_progress_bar=False,
                                    encode_kwargs={"batch_size": args.batch_size}).task_results
            theirs = (counter.texts, time.perf_counter() - start)
            rows.append((task.name, ",".join(task.spec.languages), ours, theirs))
            compare += _compare(load(outcome.path), results, task.spec.metrics, task.name, task.spec.split)
    print(f"model {args.model}, batch size {args.batch_size}; wall s excludes loading the model")
    print(f"{'task':16s} {'languages':26s} {'xbench texts':>12s} {'mteb texts':>11s} {'ratio':>6s} "
          f"{'xbench s':>9s} {'mteb s':>8s} {'ratio':>6s}")
    for name, langs, (xt, xs), (mt, ms) in rows:
        print(f"{name:16s} {langs:26s} {xt:12d} {mt:11d} {mt / max(xt, 1):6.2f} {xs:9.1f} {ms:8.1f} {ms / xs:6.2f}")
    print(f"\n{'task':16s} {'setting':8s} {'metric':10s} {'mteb key':14s} {'slices':>6s} {'xbench':>8s} {'mteb':>8s} "
          f"{'max |diff|':>10s}")
    for line in compare:
        print(line)


def _compare(ours: Any, results: list[Any], metrics: list[str], task: str, split: str) -> list[str]:
    """Per setting and metric: mean over the compared slices in each tool, and the largest slice difference."""
    lines = []
    for result in results:
        setting = result.task_name.rsplit("-", 1)[1]
        theirs = {row["hf_subset"]: row for row in result.scores[split]}
        slices = [s for s in ours.slices if s.setting == setting]
        for metric in metrics:
            kept = [s for s in slices
                    if metric not in CUT_AT_DEPTH or max(max(r) for r in s.per_query.ranks) <= MTEB_DEPTH]
            if not kept:
                continue
            x = np.array([s.scores[metric] for s in kept])
            m = np.array([theirs[f"{s.query_lang}-{s.cand_lang}"][mteb_metric(metric)] for s in kept])
            compared = f"{len(kept)}/{len(slices)}"
            lines.append(f"{task:16s} {setting:8s} {metric:10s} {mteb_metric(metric):14s} {compared:>6s} "
                         f"{x.mean():8.4f} {m.mean():8.4f} {np.abs(x - m).max():10.5f}")
    return lines


if __name__ == "__main__":
    main()
