"""Encoder speed benchmark for me5-small: today's batching vs token-budget batching vs int8 (prints; asserts nothing).

Three ways to encode the same texts, each fed as the embedding cache feeds an encoder (longest in characters
first, SHARD_TEXTS texts a call):

- plain:  sentence-transformers' own batching, what xbench did before: each call sorted by characters and cut
          into batches of --batch-size texts;
- budget: xbench's token-budget batches (xbench.models.st.plan_batches), tokenised once;
- int8:   me5-small-int8, dynamic int8 through ONNX Runtime (xbench.models.onnx), with the same batches.

Speed, on the questions and candidates of the tasks (all of them, or a seeded sample of --sample texts of each
role): texts/s; padded token slots per real token; useful GFLOP/s (real tokens x the model's matrix FLOP per
token: 2 x (4 h^2 + 2 h ff) x layers, 42.5 M for me5-small; attention scores not counted); the GFLOP/s of a large
float32 matrix product on the same threads, and of one encoder layer's products at a token-budget batch's shape
(the dense layers' own ceiling: a 384-wide model never multiplies large square matrices); the ratios to both (int8
counts its int8 operations against those float32 figures); the smallest cosine of each text's vector to plain's.
Quality, on XQuAD-R (restricted by --languages): mAP mono / cross / multi of each way and how many relevant ranks
differ from plain's, from the vectors the speed run made (only texts it did not time are encoded again).

A --sample run is a check that the script works, not a measure: a few hundred texts make one call per role, whose
lengths spread too widely for any batching of --batch-size texts to avoid padding (the budget's slots/token is
~1.4 there, 1.03 on the full tasks), and texts/s on a handful of batches is noise.

    nice python benchmarks/bench_encoder.py --sample 200 --languages de,en     # a quick check
    python benchmarks/bench_encoder.py                                           # everything, on free cores
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from xbench.evaluation.run import run_task
from xbench.models.base import DenseRetriever, Encoder, Role
from xbench.models.builtins import build_me5, build_me5_int8
from xbench.models.cache import SHARD_TEXTS
from xbench.models.onnx import load_int8
from xbench.models.st import SentenceTransformerEncoder, load_sentence_transformer, plan_batches
from xbench.paths import default_cache_root
from xbench.results.store import load
from xbench.tasks.registry import discover, on_languages, select

ROLES: dict[Role, str] = {"query": "query", "doc": "document"}  # role -> me5-small's prompt name
SETTINGS = ["mono", "cross", "multi"]


class Plain:
    """The loaded me5-small encoding with sentence-transformers' own batching (the way before token budgets)."""

    def __init__(self, inner: SentenceTransformerEncoder, batch_size: int) -> None:
        self.inner, self.batch_size = inner, batch_size
        self.info = replace(inner.info, name="me5-small-plain", fingerprint=inner.info.fingerprint + "-plain")

    def encode(self, texts: list[str], role: Role) -> np.ndarray:
        return np.asarray(self.inner.model.encode(texts, prompt_name=ROLES[role], batch_size=self.batch_size,
                                                  convert_to_numpy=True, show_progress_bar=False))


Batching = Callable[[np.ndarray, np.ndarray, int], list[np.ndarray]]
"""(token counts, character counts, batch size) of one call's texts -> the batches an encoder makes of them."""


def by_characters(tokens: np.ndarray, chars: np.ndarray, batch_size: int) -> list[np.ndarray]:
    order = np.argsort(-chars, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def by_tokens(tokens: np.ndarray, chars: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return plan_batches(tokens, batch_size)


@dataclass
class Way:
    name: str
    encoder: Encoder
    batches: Batching


@dataclass
class Run:
    texts: int
    seconds: float
    slots: int  # padded token slots of every batch
    real: int  # real tokens
    vectors: dict[Role, np.ndarray]  # in text order


def calls(texts: list[str]) -> list[np.ndarray]:
    """Text indices as the cache hands them to an encoder: longest in characters first, SHARD_TEXTS at a time."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    return [order[i : i + SHARD_TEXTS] for i in range(0, len(order), SHARD_TEXTS)]


def texts_by_role(tasks: list, sample: int | None, seed: int) -> dict[Role, list[str]]:
    data = [task.load() for task in tasks]
    out: dict[Role, list[str]] = {}
    for role, column in (("query", "queries"), ("doc", "candidates")):
        unique = list(dict.fromkeys(t for d in data for t in getattr(d, column)["text"]))
        if sample and sample < len(unique):
            unique = [unique[i] for i in sorted(np.random.default_rng(seed).choice(len(unique), sample, False))]
        out[role] = unique
    return out


def matmul_gflops(size: int = 2048) -> float:
    """A large float32 matrix product on torch's threads: what these cores reach at best."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(3):
        a @ b
    return 3 * 2 * size**3 / (time.perf_counter() - start) / 1e9


def layer_gflops(tokens: int, hidden: int, ff: int) -> float:
    """The products of one encoder layer at this batch's shape ((tokens x hidden) times the attention projections
    and the feed-forward pair) on torch's threads: what the dense layers reach at best here, a fairer ceiling for
    a small model than one large square product, whose shapes these layers never have."""
    x, h = torch.randn(tokens, hidden), torch.randn(tokens, ff)
    w_qkvo, w_in, w_out = torch.randn(hidden, hidden), torch.randn(hidden, ff), torch.randn(ff, hidden)

    def layer() -> None:
        for _ in range(4):
            x @ w_qkvo
        x @ w_in
        h @ w_out

    layer()
    start = time.perf_counter()
    for _ in range(20):
        layer()
    return 20 * 2 * tokens * (4 * hidden**2 + 2 * hidden * ff) / (time.perf_counter() - start) / 1e9


def speed(way: Way, texts: dict[Role, list[str]], lengths: dict[Role, np.ndarray], batch_size: int) -> Run:
    """Encode every text as the cache would: the time inside `encode`, the padded slots of the batches, the vectors."""
    way.encoder.encode(texts["doc"][:8], "doc")  # warm-up: first-call costs are not throughput
    run = Run(0, 0.0, 0, 0, {})
    for role, items in texts.items():
        for idx in calls(items):
            chunk = [items[i] for i in idx]
            start = time.perf_counter()
            got = way.encoder.encode(chunk, role)
            run.seconds += time.perf_counter() - start
            run.vectors.setdefault(role, np.empty((len(items), got.shape[1]), dtype=np.float32))[idx] = got
            tokens = lengths[role][idx]
            batches = way.batches(tokens, np.array([len(t) for t in chunk]), batch_size)
            run.slots += sum(len(b) * int(tokens[b].max()) for b in batches)
            run.real += int(tokens.sum())
            run.texts += len(chunk)
    return run


class Recorded:
    """A way's encoder answering from the vectors its speed run made, so that the quality run encodes only the
    texts the timed ones lacked (none when the timed tasks include the quality task whole)."""

    def __init__(self, encoder: Encoder, texts: dict[Role, list[str]], run: Run) -> None:
        self.encoder, self.info, self.run = encoder, encoder.info, run
        self.rows = {role: {t: i for i, t in enumerate(items)} for role, items in texts.items()}

    def encode(self, texts: list[str], role: Role) -> np.ndarray:
        rows = [self.rows[role].get(t, -1) for t in texts]
        missing = [i for i, r in enumerate(rows) if r < 0]
        out = self.run.vectors[role][np.maximum(rows, 0)]
        if missing:
            out[missing] = self.encoder.encode([texts[i] for i in missing], role)
        return out


def quality(encoder: Encoder, task, cache: Path, out: Path) -> tuple[dict[str, float], list[list[int]]]:
    """mAP per setting on the task and every relevant rank (slice by slice, query by query)."""
    retriever = DenseRetriever(encoder, cache)
    outcome = run_task(retriever, task, settings=SETTINGS, output=out, command="bench", device="cpu", force=True)
    assert outcome.path is not None, outcome.message
    result = load(outcome.path)
    maps = {s: result.summary[s]["macro"]["map"] for s in SETTINGS if s in result.summary}
    ranks = [r for sl in result.slices for r in sl.per_query.ranks]
    return maps, ranks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="xquad-r,mlqa-r", help="tasks whose questions and candidates are timed")
    parser.add_argument("--languages", default="", help="restrict the tasks (and the XQuAD-R mAP) to these")
    parser.add_argument("--sample", type=int, help="time a seeded sample of N texts of each role (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64, help="xbench run's default")
    parser.add_argument("--ways", default="plain,budget,int8")
    args = parser.parse_args()
    languages = [x for x in args.languages.split(",") if x]
    cache = default_cache_root()
    me5 = load_sentence_transformer(str(build_me5(cache)), pooling=None, device="cpu", batch_size=args.batch_size,
                                    cache_root=cache)
    me5.info = replace(me5.info, name="me5-small")  # its name in progress bars and results, not its folder
    model = me5.model
    factories: dict[str, Callable[[], Way]] = {
        "plain": lambda: Way("plain", Plain(me5, args.batch_size), by_characters),
        "budget": lambda: Way("budget", me5, by_tokens),
        "int8": lambda: Way("int8", load_int8(build_me5_int8(cache), "me5-small-int8", batch_size=args.batch_size,
                                              threads=None), by_tokens),
    }
    ways = [factories[name]() for name in args.ways.split(",")]

    tasks = on_languages(select(discover(), args.tasks), languages)
    texts = texts_by_role(tasks, args.sample, args.seed)
    tokenizer = model.tokenizer
    lengths = {role: np.array([len(ids) for ids in tokenizer([model.prompts[ROLES[role]] + t for t in items],
                                                              truncation=True, max_length=model.max_seq_length)
                               ["input_ids"]]) for role, items in texts.items()}
    config = model[0].auto_model.config
    flop_per_token = 2 * (4 * config.hidden_size**2 + 2 * config.hidden_size * config.intermediate_size) \
        * config.num_hidden_layers
    peak = matmul_gflops()
    batch_tokens = int(args.batch_size * np.concatenate(list(lengths.values())).mean())  # a token budget's batch
    shaped = layer_gflops(batch_tokens, config.hidden_size, config.intermediate_size)
    print(f"tasks {args.tasks} languages {args.languages or 'all'}: {len(texts['query'])} questions, "
          f"{len(texts['doc'])} candidates; batch size {args.batch_size}; torch threads {torch.get_num_threads()}; "
          f"{flop_per_token / 1e6:.1f} MFLOP per token; float32 matmul {peak:.1f} GFLOP/s; one layer's products "
          f"at {batch_tokens} tokens {shaped:.1f} GFLOP/s")
    first = ways[0].name  # the baseline of speed-up, cosine and ranks: plain unless --ways leaves it out
    print(f"{'way':7s} {'texts/s':>8s} {'x ' + first:>8s} {'slots/token':>12s} {'useful GFLOP/s':>15s} "
          f"{'of peak':>8s} {'of layer':>9s} {'min cos':>8s}")
    runs: dict[str, Run] = {}
    for way in ways:
        runs[way.name] = run = speed(way, texts, lengths, args.batch_size)
        base = runs[first]
        cos = min(float((run.vectors[r] * base.vectors[r]).sum(axis=1).min()) for r in texts)
        useful = run.real * flop_per_token / run.seconds / 1e9
        print(f"{way.name:7s} {run.texts / run.seconds:8.1f} {base.seconds / run.seconds:8.2f} "
              f"{run.slots / run.real:12.3f} {useful:15.1f} {useful / peak:8.2f} {useful / shaped:9.2f} {cos:8.4f}")

    xquad = on_languages(select(discover(), "xquad-r"), languages)[0]
    print(f"\nXQuAD-R ({', '.join(xquad.spec.languages)}): mAP and relevant ranks against {first}'s")
    print(f"{'way':7s} " + " ".join(f"{'mAP ' + s:>10s}" for s in SETTINGS) + f" {'ranks differing':>16s}")
    with tempfile.TemporaryDirectory() as tmp:
        baseline: list[list[int]] | None = None
        for way in ways:
            maps, ranks = quality(Recorded(way.encoder, texts, runs[way.name]), xquad, Path(tmp) / way.name,
                                  Path(tmp) / "out" / way.name)
            baseline = baseline if baseline is not None else ranks
            differ = sum(a != b for x, y in zip(ranks, baseline) for a, b in zip(x, y))
            total = sum(len(x) for x in ranks)
            print(f"{way.name:7s} " + " ".join(f"{maps.get(s, float('nan')):10.4f}" for s in SETTINGS)
                  + f" {differ:>8d} / {total}")


if __name__ == "__main__":
    main()
