"""Overhead and warm-rerun benchmark (prints figures; asserts nothing).

Cold: a full run on a fresh cache; the encoder's own time (inside `encode`, for the unique texts) is measured in
the same run, so `total / encoder` is the harness overhead (target <= 1.10 on CPU with the default model).
Warm: the same run again with every embedding cached (target: all settings scored in under 5 s on 2 cores).

    python benchmarks/bench_overhead.py --model me5-small --tasks xquad-r,mlqa-r
    python benchmarks/bench_overhead.py --cache ~/.cache/xbench     # warm only: a cache `xbench run` has filled
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from xbench.evaluation.run import run_task
from xbench.models.builtins import build_me5
from xbench.models.registry import resolve
from xbench.paths import default_cache_root
from xbench.tasks.registry import discover, select


class TimedEncoder:
    """Wraps an encoder and adds up the seconds spent inside `encode`."""

    def __init__(self, encoder) -> None:
        self.inner, self.info, self.seconds, self.texts = encoder, encoder.info, 0.0, 0

    def encode(self, texts: list[str], role: str):
        start = time.perf_counter()
        out = self.inner.encode(texts, role)
        self.seconds += time.perf_counter() - start
        self.texts += len(texts)
        return out


def timed_run(model: str, tasks: str, cache: Path, out: Path) -> dict[str, float]:
    start = time.perf_counter()
    retriever = resolve(model, cache_root=cache)
    if hasattr(retriever, "encoder"):
        retriever.encoder = TimedEncoder(retriever.encoder)
    loaded = time.perf_counter()
    figures = {"encode_s": 0.0, "score_s": 0.0, "load_s": 0.0}
    for task in select(discover(), tasks):
        outcome = run_task(retriever, task, settings=["mono", "cross", "multi"], output=out, command="bench",
                           device="cpu", force=True)
        for key in ("score_s", "load_s"):
            figures[key] += outcome.timings.get(key, 0.0)
    encoder = getattr(retriever, "encoder", None)
    figures.update(model_load_s=loaded - start, total_s=time.perf_counter() - start,
                   encoder_s=getattr(encoder, "seconds", 0.0), texts_encoded=getattr(encoder, "texts", 0))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="me5-small")
    parser.add_argument("--tasks", default="xquad-r,mlqa-r")
    parser.add_argument("--cache", type=Path, help="an embedding cache to start from (default: a fresh one, so the "
                                                   "first run is cold); a filled one measures two warm runs quickly")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp) / "cache"
        if args.model == "me5-small" and not args.cache:  # reuse the built model, not its embeddings
            (cache / "models").mkdir(parents=True)
            (cache / "models" / "me5-small").symlink_to(build_me5(default_cache_root()))
        cold = timed_run(args.model, args.tasks, cache, Path(tmp) / "out")
        warm = timed_run(args.model, args.tasks, cache, Path(tmp) / "out")
    print(f"model {args.model}, tasks {args.tasks}")
    print(f"{'run':6s} {'total s':>8s} {'encoder s':>10s} {'texts':>7s} {'score s':>8s} {'model load s':>13s} "
          f"{'total/encoder':>14s}")
    for name, f in (("first" if args.cache else "cold", cold), ("warm", warm)):
        ratio = f["total_s"] / f["encoder_s"] if f["encoder_s"] else float("nan")
        print(f"{name:6s} {f['total_s']:8.1f} {f['encoder_s']:10.1f} {f['texts_encoded']:7d} {f['score_s']:8.1f} "
              f"{f['model_load_s']:13.1f} {ratio:14.3f}")


if __name__ == "__main__":
    main()
