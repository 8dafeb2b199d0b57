"""The Python API: `xbench.evaluate` gives the numbers `xbench run` gives, for every kind of model it accepts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import invoke
from sentence_transformers import SentenceTransformer

import xbench
from xbench.errors import XbenchError
from xbench.results.store import load


def _cli(tiny_tasks, model: str, out, cache):
    res = invoke("run", "--model", model, "--tasks", "tiny", "--tasks-dir", str(tiny_tasks), "--output", str(out),
                 "--cache-dir", str(cache))
    assert res.exit_code == 0, res.output


def test_evaluate_by_name_equals_cli_run_and_tidy_rows_are_the_slices(tiny_tasks, tmp_path):
    _cli(tiny_tasks, "bm25", tmp_path / "cli", tmp_path / "cache")
    expected = load(tmp_path / "cli" / "bm25" / "tiny.json")
    results = xbench.evaluate("bm25", tasks="tiny", tasks_dirs=[tiny_tasks], cache_dir=tmp_path / "cache")
    assert len(results) == 1
    got = results.files[0]
    assert got.summary == expected.summary and got.slices == expected.slices
    frame = results.to_pandas()
    assert list(frame.columns) == ["model", "task", "setting", "query_lang", "cand_lang", "metric", "value"]
    rows = {(s.setting, s.query_lang, s.cand_lang, m): v for s in expected.slices for m, v in s.scores.items()}
    assert len(frame) == len(rows)
    for row in frame.itertuples():
        assert (row.model, row.task) == ("bm25", "tiny")
        assert row.value == rows[(row.setting, row.query_lang, row.cand_lang, row.metric)]
    # mono cand_lang is the query's language, multi pools every language
    assert (frame.loc[frame.setting == "mono", "cand_lang"] == frame.loc[frame.setting == "mono", "query_lang"]).all()
    assert set(frame.loc[frame.setting == "multi", "cand_lang"]) == {"all"}
    assert results.main_scores().loc[0, "main_score"] == pytest.approx(expected.main_score)


def test_evaluate_a_sentence_transformer_object_equals_its_folder(tiny_tasks, tiny_st_model, tmp_path):
    _cli(tiny_tasks, str(tiny_st_model), tmp_path / "cli", tmp_path / "c1")
    [expected] = map(load, (tmp_path / "cli").glob("*/tiny.json"))
    model = SentenceTransformer(str(tiny_st_model))
    results = xbench.evaluate(model, tasks=["tiny"], tasks_dirs=[tiny_tasks], cache_dir=tmp_path / "c2",
                              output=tmp_path / "api", name="tiny-object")
    got = results.files[0]
    assert got.model.name == "tiny-object" and (tmp_path / "api" / "tiny-object" / "tiny.json").is_file()
    assert got.summary == expected.summary
    again = xbench.evaluate(SentenceTransformer(str(tiny_st_model)), tasks="tiny", tasks_dirs=[tiny_tasks],
                            cache_dir=tmp_path / "c2", force=True)
    assert again.files[0].model.fingerprint == got.model.fingerprint  # same weights reloaded: same cache key
    assert again.files[0].run.counts["encoded_now"] == 0


def test_evaluate_names_a_folder_model_and_stores_the_command_that_reproduces_it(tiny_tasks, tiny_st_model,
                                                                                tmp_path):
    out = tmp_path / "api"
    [got] = xbench.evaluate(str(tiny_st_model), tasks="tiny", tasks_dirs=[tiny_tasks], cache_dir=tmp_path / "c",
                            output=out, name="mine", settings=["mono"]).files
    assert got.model.name == "mine" and load(out / "mine" / "tiny.json") == got
    assert got.run.command == (f"xbench run --model {tiny_st_model} --name mine --tasks tiny --settings mono "
                               f"--tasks-dir {tiny_tasks.resolve()}")
    [default] = xbench.evaluate(str(tiny_st_model), tasks="tiny", tasks_dirs=[tiny_tasks], cache_dir=tmp_path / "c",
                                settings=["mono"]).files
    assert default.model.name == f"tiny-st@{got.model.fingerprint[:8]}"  # the folder's name, not its path
    with pytest.raises(XbenchError, match="--name 'a/b': use 1 to 80 letters"):
        xbench.evaluate("bm25", tasks="tiny", tasks_dirs=[tiny_tasks], cache_dir=tmp_path / "c", name="a/b")


def test_evaluate_stores_a_subset_beside_and_refuses_another_model_of_the_same_name(tiny_tasks, tmp_path):
    out = tmp_path / "api"
    full = xbench.evaluate("bm25", tasks="tiny", tasks_dirs=[tiny_tasks], cache_dir=tmp_path / "c", output=out)
    sub = xbench.evaluate("bm25", tasks="tiny", languages=["de", "en"], tasks_dirs=[tiny_tasks],
                          cache_dir=tmp_path / "c", output=out)
    assert sorted(p.name for p in (out / "bm25").iterdir()) == ["tiny.en+de.json", "tiny.json"]
    assert load(out / "bm25" / "tiny.json") == full.files[0] and load(out / "bm25" / "tiny.en+de.json") == sub.files[0]
    with pytest.raises(XbenchError, match="holds the results of another model named 'bm25'.*--force"):
        xbench.evaluate(_Hashing(), tasks="tiny", tasks_dirs=[tiny_tasks], cache_dir=tmp_path / "c", output=out,
                        name="bm25")
    assert load(out / "bm25" / "tiny.json") == full.files[0]
    forced = xbench.evaluate(_Hashing(), tasks="tiny", tasks_dirs=[tiny_tasks], cache_dir=tmp_path / "c",
                             output=out, name="bm25", force=True)
    assert load(out / "bm25" / "tiny.json") == forced.files[0] != full.files[0]


class _Hashing:
    """A plain object with `encode`: bag of hashed characters, enough to rank the tiny task."""

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 32), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text.lower():
                out[i, ord(ch) % 32] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_evaluate_any_encode_object_scores_by_dot_product(tiny_tasks, tmp_path):
    results = xbench.evaluate(_Hashing(), tasks="tiny", settings=["mono", "multi"], tasks_dirs=[tiny_tasks],
                              cache_dir=tmp_path / "c")
    result = results.files[0]
    assert result.model.kind == "object" and result.model.name.startswith("_Hashing-")
    assert result.settings == ["mono", "multi"]
    # en mono by hand: rank of each question's answer sentence under the same vectors
    en = next(s for s in result.slices if s.setting == "mono" and s.query_lang == "en")
    assert en.n_queries == len(en.per_query.ranks)
    assert en.scores["mrr"] == pytest.approx(np.mean([1 / r[0] for r in en.per_query.ranks]))


def test_bad_models_and_settings_are_clear_errors(tiny_tasks, tmp_path):
    with pytest.raises(XbenchError, match="has no `encode` method"):
        xbench.evaluate(object(), tasks="tiny", tasks_dirs=[tiny_tasks], cache_dir=tmp_path)
    with pytest.raises(XbenchError, match="unknown \\['sideways'\\]"):
        xbench.evaluate("bm25", tasks="tiny", settings=["sideways"], tasks_dirs=[tiny_tasks], cache_dir=tmp_path)
    with pytest.raises(XbenchError, match="no such results file or folder"):
        xbench.load_results(tmp_path / "nothing")


def test_load_results_and_list_tasks(tiny_results):
    results = xbench.load_results(tiny_results / "results")
    assert sorted(r.model.name.split("@")[0] for r in results) == ["bm25", "tiny-st"]
    one = xbench.load_results(tiny_results / "results" / "bm25" / "tiny.json")
    assert one.files[0] == load(tiny_results / "results" / "bm25" / "tiny.json")
    tasks = xbench.list_tasks()
    assert isinstance(tasks, pd.DataFrame)
    assert {"xquad-r", "mlqa-r", "miracl"} <= set(tasks["name"])
    assert tasks.set_index("name").loc["xquad-r", "languages"] == ["ar", "de", "el", "en", "es", "hi", "ru", "th",
                                                                    "tr", "vi", "zh"]
    # sizes from the counts manifests: 1190 XQuAD questions in each of 11 languages; MIRACL's passages do not ship
    by_name = tasks.set_index("name")
    assert (by_name.loc["xquad-r", "queries"], by_name.loc["xquad-r", "candidates"]) == (13090, 13014)
    assert by_name.loc["miracl", "data"] == "not shipped" and pd.isna(by_name.loc["miracl", "queries"])
