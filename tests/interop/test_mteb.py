"""mteb interoperability on tiny tasks: the export scores like xbench slice by slice, `--model mteb:` embeds like the
plain path, and an mteb model that is not here fails with one clear paragraph."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, invoke

from xbench.errors import XbenchError
from xbench.evaluation.run import run_task
from xbench.interop.mteb import load as load_export
from xbench.interop.mteb import mteb_metric, to_mteb
from xbench.models.registry import resolve
from xbench.results.store import load, result_path
from xbench.tasks.registry import discover
from xbench.tasks.spec import SETTINGS

mteb = pytest.importorskip("mteb")  # an optional extra (xbench[mteb]), part of the test extra

ITEMS = {"i1": {"en": "The cat sleeps.", "de": "Die Katze schläft.", "fr": "Le chat dort."},
         "i2": {"en": "Dogs bark at night.", "de": "Hunde bellen nachts.", "fr": "Les chiens aboient la nuit."},
         "i3": {"en": "Mars is red.", "de": "Der Mars ist rot.", "fr": "Mars est rouge."}}


@pytest.fixture(scope="module")
def unit_model(tiny_st_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model plus a Normalize module. xbench ranks by dot product, mteb by the model's cosine: on unit
    vectors they are one ranking, so the two tools' scores can be compared exactly."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize

    model = SentenceTransformer(str(tiny_st_model))
    path = tmp_path_factory.mktemp("unit") / "tiny-unit"
    SentenceTransformer(modules=[*model, Normalize()]).save(str(path))
    return path


@pytest.fixture()
def bitext_tasks(tmp_path: Path) -> Path:
    """A tiny multi-way parallel task (loader `parallel`): each query's own text sits in the pool, withheld."""
    root = tmp_path / "bitext-root"
    data = root / "data" / "bitext"
    data.mkdir(parents=True)
    lines = "".join(json.dumps({"id": i, "domain": "none", "text": t}) + "\n" for i, t in ITEMS.items())
    (data / "eval.jsonl.gz").write_bytes(gzip.compress(lines.encode(), mtime=0))
    digest = hashlib.sha256((data / "eval.jsonl.gz").read_bytes()).hexdigest()
    (data / "SHA256SUMS").write_text(f"{digest}  eval.jsonl.gz\n")
    (root / "tasks").mkdir()
    (root / "tasks" / "bitext.yaml").write_text(
        "tasks:\n  - name: bitext\n    version: '1'\n    family: test\n    description: tiny parallel task\n"
        "    loader: parallel\n    source: {dir: ../data/bitext}\n    license: CC0\n    languages: [en, de, fr]\n"
        "    settings: [cross, multi]\n")
    return root / "tasks"


@pytest.mark.slow  # runs mteb's own evaluation
@pytest.mark.parametrize("name", ["tiny", "bitext"])
def test_exported_task_scores_like_xbench(name: str, request: pytest.FixtureRequest, unit_model: Path,
                                          tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    folder = request.getfixturevalue(f"{name}_tasks")
    task = discover((folder,))[name]
    retriever = resolve(str(unit_model), cache_root=tmp_path / "cache")
    outcome = run_task(retriever, task, settings=list(SETTINGS), output=tmp_path / "results", command="test",
                       device="cpu")
    ours = load(outcome.path)
    res = invoke("export-mteb", name, "--tasks-dir", str(folder), "--out", str(tmp_path / "mteb"))
    assert res.exit_code == 0, res.output
    model = mteb.SentenceTransformerEncoderWrapper(SentenceTransformer(str(unit_model)))
    for tasks in (to_mteb(task), load_export(tmp_path / "mteb")):  # in memory, and read back by mteb's loader
        results = mteb.evaluate(model, tasks, cache=None, show_progress_bar=False).task_results
        assert sorted(r.task_name for r in results) == sorted(f"xbench-{name}-{s}" for s in task.spec.settings)
        for result in results:
            setting = result.task_name.rsplit("-", 1)[1]
            theirs = {row["hf_subset"]: row for row in result.scores[task.spec.split]}
            slices = {f"{s.query_lang}-{s.cand_lang}": s.scores for s in ours.slices if s.setting == setting}
            assert theirs.keys() == slices.keys()
            # Per subset, the definitions match (xbench/interop/mteb.py): mteb's AP and RR are cut at rank 1000, which
            # these pools never reach; nothing ties under the random embedding; mteb rounds to 5 decimals.
            for subset, scores in slices.items():
                for metric in task.spec.metrics:
                    assert theirs[subset][mteb_metric(metric)] == pytest.approx(scores[metric], abs=1e-5), \
                        (setting, subset, metric)
            # mteb's task score is the mean over subsets: xbench's macro where every query language has the same
            # number of slices (here; cross with missing pairs would weigh query languages differently)
            assert result.get_score() == pytest.approx(ours.summary[setting]["macro"]["map"], abs=1e-5)
    assert {s.scores["map"] for s in ours.slices} - {1.0}  # the comparison is not trivially all-perfect


def test_mteb_model_embeds_like_the_plain_path(tiny_st_model: Path, unit_model: Path, tiny_tasks: Path,
                                              tmp_path: Path) -> None:
    texts = [q for lang in TINY.values() for _, paras in lang for _, qas in paras for _, q, _ in qas]
    for folder in (unit_model, tiny_st_model):
        plain = resolve(str(folder), cache_root=tmp_path / "cache")
        via = resolve(f"mteb:{folder}", cache_root=tmp_path / "cache")
        assert via.info.fingerprint != plain.info.fingerprint and via.info.card["similarity"] == "cosine"
        for role in ("query", "doc"):
            expected = plain.encoder.encode(texts, role)
            # mteb scores this model by cosine, so the mteb path returns unit vectors (the same ranking)
            expected /= np.linalg.norm(expected, axis=1, keepdims=True)
            np.testing.assert_allclose(via.encoder.encode(texts, role), expected, rtol=1e-6, atol=1e-6)

    flat = []
    for i, model in enumerate((str(unit_model), f"mteb:{unit_model}")):  # both are named tiny-unit: two folders
        out = tmp_path / "out" / str(i)
        res = invoke("run", "--model", model, "--name", "tiny-unit", "--tasks", "tiny", "--tasks-dir",
                     str(tiny_tasks), "--output", str(out), "--cache-dir", str(tmp_path / "cache"))
        assert res.exit_code == 0, res.output
        summary = load(result_path(out, "tiny-unit", "tiny")).summary
        flat.append({(setting, lang, metric): value for setting, langs in summary.items()
                     for lang, scores in langs.items() for metric, value in scores.items()})
    assert flat[0] == pytest.approx(flat[1])


@pytest.mark.parametrize("name", ["no-such-org/no-such-model", "intfloat/multilingual-e5-small"])
def test_mteb_model_not_here_is_one_clear_error(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # read once, when the hub client loads
    with pytest.raises(XbenchError, match=f"mteb:{name}") as err:
        resolve(f"mteb:{name}", cache_root=tmp_path)
    assert "\n" not in str(err.value) and "HF_HUB_OFFLINE" in str(err.value)
    res = invoke("run", "--model", f"mteb:{name}", "--tasks", "xquad-r", "--output", str(tmp_path / "out"))
    assert res.exit_code == 2 and name in res.output and "Traceback" not in res.output
