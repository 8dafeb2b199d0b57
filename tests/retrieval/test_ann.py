"""xbench.retrieval.ann: FAISS top-k search against a brute-force full sort under the core's tie policy, the depth cut,
the search options, and the runner path (results store "not retrieved" as rank 0 and still validate)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import invoke, tiny_miracl, write_hub_copy, write_task

from xbench.errors import XbenchError
from xbench.ragged import Ragged
from xbench.results.store import load
from xbench.retrieval import ann
from xbench.retrieval.ann import SearchPlan, rank, search_plan
from xbench.retrieval.exact import dense_scorer
from xbench.retrieval.stream import exact_search
from xbench.tasks.prepare import prepare_miracl
from xbench.tasks.registry import discover

search_with_faiss = ann.search


class VectorRetriever:
    """A dense retriever over given vectors (what DenseRetriever exposes once it has encoded a task)."""

    def __init__(self, queries: np.ndarray, docs: np.ndarray) -> None:
        self.queries, self.docs = queries, docs

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        return self.queries, self.docs

    def scorer(self, query_rows: np.ndarray, cand_rows: np.ndarray):
        return dense_scorer(self.queries[query_rows], self.docs[cand_rows])


def brute_force(scores: np.ndarray, relevant: list[np.ndarray], depth: int) -> tuple[list[list[float]], np.ndarray]:
    """Ranks cut at `depth` (inf below) and the top positions, from a full sort: score desc, then position asc."""
    ranks, tops = [], []
    for row, rel in zip(scores, relevant):
        order = np.lexsort((np.arange(len(row)), -row))
        position = np.empty(len(row))
        position[order] = np.arange(1, len(row) + 1)
        ranks.append([p if p <= depth else np.inf for p in position[rel]])
        tops.append(order[:depth])
    return ranks, np.array(tops)


def integer_task(seed: int, n_q: int = 15, n: int = 300, dim: int = 8):
    """Small integer vectors: dot products are exact in float32 (FAISS and numpy agree) and tie often."""
    rng = np.random.default_rng(seed)
    queries = rng.integers(0, 10, (n_q, dim)).astype(np.float32)
    docs = rng.integers(0, 10, (n + 50, dim)).astype(np.float32)
    cand_rows = np.sort(rng.choice(n + 50, n, replace=False))  # a slice's pool: a subset of the task's rows
    relevant = [rng.choice(n, rng.integers(1, 6), replace=False) for _ in range(n_q)]
    return VectorRetriever(queries, docs), cand_rows, relevant


@pytest.mark.parametrize("shard", [7, 64, 1 << 16])
@pytest.mark.parametrize("seed", range(3))
def test_faiss_flat_gives_the_exact_ranks_cut_at_depth(seed, shard, monkeypatch):
    monkeypatch.setattr(ann, "SHARD_SIZE", shard)
    retriever, cand_rows, relevant = integer_task(seed)
    q_rows = np.arange(len(retriever.queries))
    scores = retriever.queries @ retriever.docs[cand_rows].T
    expected_ranks, expected_top = brute_force(scores, relevant, depth=20)
    assert any(len(np.unique(row[top])) < 20 for row, top in zip(scores, expected_top))  # ties inside the top 20
    for method in ("faiss-flat", "exact"):
        got = rank(retriever, q_rows, cand_rows, Ragged.of(relevant), SearchPlan(method=method, depth=20), top=10)
        assert [r.tolist() for r in got.ranks.rows()] == expected_ranks, method
        assert got.top.tolist() == expected_top[:, :10].tolist(), method


def test_ties_are_reordered_by_position_and_a_short_pool_is_padded():
    retriever = VectorRetriever(np.ones((1, 2), np.float32), np.ones((9, 2), np.float32))  # all scores equal
    got = rank(retriever, np.array([0]), np.arange(1, 9), Ragged.of([np.array([2, 7])]),
               SearchPlan("faiss-flat", depth=5), 10)
    assert got.ranks.rows()[0].tolist() == [3.0, np.inf]  # position 7 is past the depth under the id order
    assert got.top.tolist() == [[0, 1, 2, 3, 4]]
    short = ann.search(retriever.queries, ann.Gathered(retriever.docs, np.arange(3)), SearchPlan(depth=5), "faiss-flat")
    assert short.tolist() == [[0, 1, 2, -1, -1]]


def random_task(seed: int, n: int = 400, dim: int = 16):
    rng = np.random.default_rng(seed)
    queries, docs = rng.normal(size=(20, dim)).astype(np.float32), rng.normal(size=(n, dim)).astype(np.float32)
    return VectorRetriever(queries, docs), [rng.choice(n, 3, replace=False) for _ in range(20)]


def test_ivf_visiting_every_list_and_hnsw_with_a_wide_search_find_the_exact_top_k():
    retriever, relevant = random_task(0)
    q_rows, cand_rows = np.arange(20), np.arange(400)
    exact = rank(retriever, q_rows, cand_rows, Ragged.of(relevant), SearchPlan("exact", depth=30))
    for plan in (SearchPlan("faiss-ivf", depth=30, nlist=8, nprobe=8),
                 SearchPlan("faiss-hnsw", depth=30, ef_search=400)):
        got = rank(retriever, q_rows, cand_rows, Ragged.of(relevant), plan)
        assert [r.tolist() for r in got.ranks.rows()] == [r.tolist() for r in exact.ranks.rows()], plan.method
    approx = rank(retriever, q_rows, cand_rows, Ragged.of(relevant),
                  SearchPlan("faiss-ivf", depth=30, nlist=8, nprobe=1))
    found = sum(np.isfinite(r).sum() for r in approx.ranks.rows())
    assert found <= sum(np.isfinite(r).sum() for r in exact.ranks.rows())  # one list of eight: a subset at best


def test_method_choice():
    dense, lexical = random_task(0)[0], object()
    assert SearchPlan(depth=100).method_for(ann.AUTO_POOL + 1, dense) == "faiss-flat"
    assert SearchPlan(depth=100).method_for(ann.AUTO_POOL, dense) == "exact"
    assert SearchPlan(depth=None).method_for(10**9, dense) == "exact"  # no depth: the whole ranking
    assert SearchPlan("faiss-hnsw", depth=100).method_for(10, lexical) == "exact"  # BM25 has no vectors


def test_search_options_are_checked(tmp_path):
    tasks = discover()
    assert search_plan(tasks["xquad-r"].spec) == SearchPlan()
    assert search_plan(tasks["miracl"].spec) == SearchPlan("auto", depth=100)
    spec = tasks["miracl"].spec
    for options, message in (({"search": "annoy"}, "field `options.search` is 'annoy'"),
                             ({"depth": 50}, "field `options.depth` is 50, below the metric cut-off 100"),
                             ({"depth": True}, "field `options.depth` is True"),
                             ({"search": "faiss-ivf", "depth": None}, "set `options.depth`"),
                             ({"nprobe": 0}, "field `options.nprobe` is 0")):
        with pytest.raises(XbenchError, match=message.replace("(", r"\(")):
            search_plan(spec.model_copy(update={"options": {**spec.options, **options}}))


def test_dense_run_through_the_runner_stores_unretrieved_as_zero(tiny_st_model, tmp_path, monkeypatch):
    data = tiny_miracl()
    stored, calls = {}, []
    monkeypatch.setattr(ann, "search", lambda q, shards, plan, method, *rest: calls.append(method)
                        or search_with_faiss(q, shards, plan, method, *rest))
    for search in ("faiss-flat", "exact"):
        tasks = write_task(tmp_path, data, variant="full", search=search)
        if search == "faiss-flat":
            hub = write_hub_copy(tmp_path / "hub", data)
            list(prepare_miracl(["sw", "yo"], "full", tmp_path / "cache" / "data" / "miracl" / "full", str(hub),
                                discover((tasks,))["tinymiracl"]))
        res = invoke("run", "--model", str(tiny_st_model), "--name", "tiny-st", "--tasks", "tinymiracl", "--tasks-dir",
                     str(tasks),
                     "--output", str(tmp_path / search), "--cache-dir", str(tmp_path / "emb"),
                     env={"XBENCH_CACHE": str(tmp_path / "cache")})
        assert res.exit_code == 0, res.output
        path = tmp_path / search / "tiny-st" / "tinymiracl.json"
        assert invoke("validate", str(path)).exit_code == 0
        result = load(path)
        ranks = [r for s in result.slices for r in s.per_query.ranks]
        assert all(s.per_query.depth == 100 for s in result.slices)
        assert any(0 in r for r in ranks)  # relevant passages below the top 100: stored 0, listed last
        assert all(r == sorted(r, key=lambda x: x or np.inf) for r in ranks)
        stored[search] = ([s.per_query for s in result.slices], result.summary)
    assert calls == ["faiss-flat", "faiss-flat"]  # one FAISS search per language, in the faiss-flat run only
    raw = json.loads(path.read_text())
    for s in raw["slices"]:
        del s["per_query"]["depth"]  # rank 0 means "not retrieved" only in a run with a depth
    path.write_text(json.dumps(raw))
    res = invoke("validate", str(path))
    assert res.exit_code == 2 and "ranks must lie in 1..160" in res.output
    assert stored["faiss-flat"] == stored["exact"]


def npy_shards(folder, docs: np.ndarray, edges: list[int]) -> list[tuple[int, np.ndarray]]:
    """The docs as memory-mapped .npy shards split at `edges`, as a corpus's vector store gives them."""
    shards = []
    for a, b in zip(edges[:-1], edges[1:]):
        np.save(folder / f"{a}.npy", docs[a:b])
        shards.append((a, np.load(folder / f"{a}.npy", mmap_mode="r")))
    return shards


def test_faiss_flat_over_memory_mapped_shards_equals_exact_search(tmp_path):
    retriever, _ = random_task(3, n=500)  # normal floats: no ties
    shards = npy_shards(tmp_path, retriever.docs, [0, 64, 65, 300, 500])
    found = ann.search(retriever.queries, shards, SearchPlan("faiss-flat", depth=25), "faiss-flat")
    assert found.tolist() == exact_search(retriever.queries, shards, k=25).result()[0].tolist()
    in_memory = ann.search(retriever.queries, ann.Gathered(retriever.docs, np.arange(500)), SearchPlan(depth=25),
                           "faiss-flat")
    assert in_memory.tolist() == found.tolist()


class ReadCounting(list):
    """Shards that count the passes over them: a build reads them (IVF twice: the sample, then the vectors)."""

    passes = 0

    def __iter__(self):
        self.passes += 1
        return super().__iter__()


@pytest.mark.parametrize(("method", "passes"), [("faiss-ivf", 2), ("faiss-hnsw", 1)])
def test_an_index_is_saved_then_reused_while_it_matches(tmp_path, caplog, method, passes):
    retriever, _ = random_task(4, n=400)
    shards = ReadCounting(npy_shards(tmp_path, retriever.docs, [0, 100, 400]))
    plan = SearchPlan(method, depth=30, nlist=8, nprobe=8, ef_search=400)  # every list / a wide beam: exact
    path = tmp_path / "index" / f"{method}.faiss"
    first = ann.search(retriever.queries, shards, plan, method, index_path=path)
    assert shards.passes == passes and path.is_file()
    stamp = path.stat().st_mtime_ns
    second = ann.search(retriever.queries, shards, plan, method, index_path=path)
    assert shards.passes == passes and path.stat().st_mtime_ns == stamp  # read back, not built again
    exact = exact_search(retriever.queries, shards, k=30).result()[0]
    assert first.tolist() == second.tolist() == exact.tolist()
    fewer = ReadCounting(shards[:1])  # other vectors (100, not 400): built again
    assert ann.search(retriever.queries, fewer, plan, method, index_path=path).shape == (20, 30)
    assert fewer.passes == passes and "built for other vectors" in caplog.text
    path.write_bytes(path.read_bytes()[:100])
    shards.passes = 0
    again = ann.search(retriever.queries, shards, plan, method, index_path=path)
    assert shards.passes == passes and "is damaged" in caplog.text and again.tolist() == exact.tolist()
