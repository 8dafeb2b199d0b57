"""xbench.scoring.metrics against trec_eval (pytrec_eval), scikit-learn and hand-computed values.

Both sides always see the same ranking: we rank each pool ourselves with the xbench tie policy (score
descending, then doc id ascending) and give pytrec_eval a run whose scores strictly decrease in that order, so
these tests check the metric definitions, not trec_eval's own tie breaking.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytrec_eval
from sklearn.metrics import average_precision_score, ndcg_score

from xbench.scoring.metrics import average_precision, ndcg_at, pad_ranks, per_query, recall_at, reciprocal_rank

CUTOFFS = (1, 3, 10, 20)
METRICS = ["map", "mrr", *(f"recall@{k}" for k in CUTOFFS), *(f"ndcg@{k}" for k in CUTOFFS)]
TREC = {"map": "map", "mrr": "recip_rank", **{f"recall@{k}": f"recall_{k}" for k in CUTOFFS},
        **{f"ndcg@{k}": f"ndcg_cut_{k}" for k in CUTOFFS}}  # xbench name -> pytrec_eval key


def tie_policy_order(scores: np.ndarray) -> np.ndarray:
    """Doc ids (= positions) in ranked order: score descending, then id ascending."""
    return np.lexsort((np.arange(len(scores)), -scores))


def random_queries(rng: np.random.Generator, n_queries: int) -> tuple[list, list, dict, dict]:
    """Pools with many score ties, multi-grade qrels with judged grade-0 docs, runs truncated at random depth.

    Returns xbench inputs (ranks, grades of every judged doc; np.inf = not retrieved) and pytrec_eval's
    (qrels, run) for the same queries.
    """
    ranks, grades, qrels, run = [], [], {}, {}
    for q in range(n_queries):
        n = int(rng.integers(1, 40))
        order = tie_policy_order(rng.integers(0, 4, n))
        rank = np.empty(n)
        rank[order] = np.arange(1, n + 1)
        depth = int(rng.integers(1, n + 1))
        judged = rng.random(n) < 0.4
        judged[rng.integers(n)] = True  # trec_eval only scores queries that have qrels
        grade = rng.integers(0, 4, n)
        docs = np.flatnonzero(judged)
        ranks.append(np.where(rank[docs] <= depth, rank[docs], np.inf).tolist())
        grades.append(grade[docs].tolist())
        qrels[f"q{q}"] = {f"d{d}": int(grade[d]) for d in docs}
        run[f"q{q}"] = {f"d{d}": -float(pos) for pos, d in enumerate(order[:depth])}
    return ranks, grades, qrels, run


@pytest.mark.parametrize("seed", range(5))
def test_matches_trec_eval(seed: int) -> None:
    ranks, grades, qrels, run = random_queries(np.random.default_rng(seed), 400)
    measures = {"map", "recip_rank", f"recall.{','.join(map(str, CUTOFFS))}",
                f"ndcg_cut.{','.join(map(str, CUTOFFS))}"}
    trec = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    ours = per_query(*pad_ranks(ranks, grades), METRICS)
    for name in METRICS:
        expected = [trec[f"q{q}"][TREC[name]] for q in range(len(ranks))]
        np.testing.assert_allclose(ours[name], expected, atol=1e-12, err_msg=name)


def test_the_random_cases_exercise_the_edge_cases() -> None:
    """Guard against the generator drifting into easy cases: ties, truncation, grade 0, no relevant at all."""
    ranks, grades, _, _ = random_queries(np.random.default_rng(0), 400)
    r, g = pad_ranks(ranks, grades)
    assert ((g > 0) & np.isinf(r)).any(axis=1).mean() > 0.2  # relevant but not retrieved
    assert ((g == 0) & np.isfinite(r)).any()  # judged non-relevant, retrieved
    assert (g.max(axis=1) == 0).any()  # no relevant candidate at all
    assert len(np.unique(g[g > 0])) == 3  # multi-grade


@pytest.mark.parametrize("seed", range(3))
def test_ap_matches_sklearn_on_complete_binary_rankings(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ranks, grades, expected = [], [], []
    for _ in range(100):
        n = int(rng.integers(1, 50))
        y_true = rng.random(n) < rng.random()
        y_true[rng.integers(n)] = True
        y_score = rng.permutation(n)  # distinct scores: rank = n - score
        ranks.append((n - y_score[y_true]).tolist())
        grades.append([1] * int(y_true.sum()))
        expected.append(average_precision_score(y_true, y_score))
    np.testing.assert_allclose(average_precision(*pad_ranks(ranks, grades)), expected, atol=1e-12)


@pytest.mark.parametrize("k", CUTOFFS)
def test_ndcg_matches_sklearn_on_complete_graded_rankings(k: int) -> None:
    rng = np.random.default_rng(k)
    ranks, grades, expected = [], [], []
    for _ in range(100):
        n = int(rng.integers(2, 50))  # sklearn's ndcg_score needs at least 2 documents
        y_true = rng.integers(0, 4, n)
        y_true[rng.integers(n)] = 3
        y_score = rng.permutation(n)
        ranks.append((n - y_score).tolist())
        grades.append(y_true.tolist())
        expected.append(ndcg_score(y_true[None], y_score[None], k=k))
    np.testing.assert_allclose(ndcg_at(*pad_ranks(ranks, grades), k), expected, atol=1e-12)


def test_hand_computed_ap_rr_recall() -> None:
    r, g = pad_ranks([[1, 3], [2, math.inf], [2, 1]], [[1, 1], [1, 1], [1, 0]])
    np.testing.assert_allclose(average_precision(r, g), [(1 / 1 + 2 / 3) / 2, (1 / 2) / 2, 1 / 2])
    np.testing.assert_allclose(reciprocal_rank(r, g), [1, 1 / 2, 1 / 2])
    np.testing.assert_allclose(recall_at(r, g, 1), [1 / 2, 0, 0])
    np.testing.assert_allclose(recall_at(r, g, 10), [1, 1 / 2, 1])


def test_hand_computed_ndcg() -> None:
    # grade 2 at rank 2, grade 1 at rank 1: DCG = 1/log2(2) + 2/log2(3), ideal = 2/log2(2) + 1/log2(3)
    r, g = pad_ranks([[2, 1]], [[2, 1]])
    np.testing.assert_allclose(ndcg_at(r, g, 10), (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    np.testing.assert_allclose(ndcg_at(r, g, 1), 1 / 2)
    # a relevant doc that was not retrieved still counts in the ideal DCG
    r, g = pad_ranks([[1, math.inf]], [[1, 1]])
    np.testing.assert_allclose(ndcg_at(r, g, 10), 1 / (1 + 1 / math.log2(3)))


def test_query_without_relevant_scores_zero() -> None:
    r, g = pad_ranks([[1, 2], []], [[0, 0], []])
    for name, values in per_query(r, g, METRICS).items():
        np.testing.assert_array_equal(values, [0, 0], err_msg=name)


def test_per_query_names() -> None:
    r, g = pad_ranks([[1, 3]], [[1, 1]])
    scores = per_query(r, g, ["map", "recall@2", "ndcg@5"])
    assert list(scores) == ["map", "recall@2", "ndcg@5"]
    np.testing.assert_allclose(scores["recall@2"], [1 / 2])
    for bad in ["MAP", "recall@", "ndcg@k", "p@10", "recall@10x"]:
        with pytest.raises(ValueError, match="unknown metric"):
            per_query(r, g, [bad])


def test_pad_ranks_sorts_and_pads() -> None:
    ranks, grades = pad_ranks([[5, math.inf, 2], [7]], [[1, 2, 3], [1]])
    np.testing.assert_array_equal(ranks, [[2, 5, np.inf], [7, np.inf, np.inf]])
    np.testing.assert_array_equal(grades, [[3, 1, 2], [1, 0, 0]])
    assert ranks.dtype == np.float64 and grades.dtype.kind == "i"


def test_pad_ranks_permutes_aligned_arrays() -> None:
    ranks, grades, langs, ids = pad_ranks([[5, 2], [7]], [[1, 2], [1]], [["de", "en"], ["fr"]], [[10, 20], [30]])
    np.testing.assert_array_equal(langs, [["en", "de"], ["fr", ""]])
    np.testing.assert_array_equal(ids, [[20, 10], [30, 0]])
    assert len(pad_ranks([[1]], [[1]])) == 2


def test_pad_ranks_empty() -> None:
    ranks, grades, langs = pad_ranks([[], []], [[], []], [[], []])
    assert ranks.shape == grades.shape == langs.shape == (2, 0)
    np.testing.assert_array_equal(per_query(ranks, grades, METRICS)["ndcg@10"], [0, 0])
    assert pad_ranks([], [])[0].shape == (0, 0)
