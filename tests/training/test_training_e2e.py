"""Training end to end on the tiny base: card, prompts, resume after a crash, CLI, built-ins and a tiny grid."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from safetensors.numpy import load_file

from xbench.cli import main
from xbench.errors import XbenchError
from xbench.paths import DATA_ROOT
from xbench.results.store import load
from xbench.tasks.leakage import HASHES_FILE, text_hashes
from xbench.training.config import make_config
from xbench.training.recipes import RECIPES
from xbench.training.train import CARD_FILE, read_card, train

pytestmark = pytest.mark.slow  # real training runs

CONFIG = {"base": "tiny", "steps": 4, "batch_size": 8, "save_steps": 2, "freeze_embeddings": False, "seed": 1}


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "model"
    return train(make_config("test", **CONFIG), out, progress=False, threads=1)


def test_card_prompts_and_text_hashes(trained):
    from sentence_transformers import SentenceTransformer

    card = read_card(trained)
    assert (card["sampling"], card["alpha"], card["beta"], card["seed"], card["steps"], card["batch_size"]) == \
        ("hybrid", 0.5, 0.0, 1, 4, 8)
    manifest = DATA_ROOT / "train" / "tatoeba" / "SHA256SUMS"
    assert card["sources"]["tatoeba"]["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert card["loss"]["name"] == "MultipleNegativesRankingLoss" and card["composition"]["batches"] == 4
    assert SentenceTransformer(str(trained)).prompts == {"query": "Query: ", "document": "Passage: "}
    hashes = np.load(trained / HASHES_FILE)
    assert len(hashes) == card["text_hashes"]["count"] > 20000  # texts under MIN_CHARS are not counted
    assert np.isin(text_hashes(["Maria sagte, sie wisse nicht, wo Tom sei."]), hashes).all()  # tatoeba deu line 1
    assert not (trained.parent / ".model.training").exists()  # the work folder is gone once the model is final


def weights(folder: Path) -> dict[str, np.ndarray]:
    return load_file(str(folder / "model.safetensors"))


def test_crash_then_resume_gives_the_uninterrupted_model(trained, tmp_path, monkeypatch):
    from sentence_transformers import SentenceTransformerTrainer

    original = SentenceTransformerTrainer.training_step
    calls = []

    def power_cut(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # after checkpoint-2
            raise RuntimeError("power cut")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformerTrainer, "training_step", power_cut)
    out = tmp_path / "model"
    with pytest.raises(RuntimeError, match="power cut"):
        train(make_config("test", **CONFIG), out, progress=False, threads=1)
    assert not out.exists() and (tmp_path / ".model.training" / "checkpoints" / "checkpoint-2").is_dir()
    monkeypatch.undo()
    with pytest.raises(XbenchError, match="another configuration"):
        train(make_config("test", **{**CONFIG, "seed": 2}), out, progress=False, threads=1)
    train(make_config("test", **CONFIG), out, progress=False, threads=1)
    assert read_card(out)["resumed_from"] == "checkpoint-2"
    resumed, uninterrupted = weights(out), weights(trained)
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        np.testing.assert_allclose(resumed[name], uninterrupted[name], atol=1e-6, err_msg=name)
    assert train(make_config("test", **CONFIG), out, threads=1) == out  # complete: returned as is


def test_cli_train_freezes_embeddings_and_rejects_bad_shares(tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "cross"
    res = invoke("train", "--base", "tiny", "--sampling", "cross", "--steps", "1", "--batch-size", "4",
                 "--out", out, "--threads", "1")
    assert res.exit_code == 0, res.output
    card = json.loads((out / CARD_FILE).read_text())
    assert card["alpha"] == 0.0 and card["composition"]["mono_batch_share"] == 0.0
    model = SentenceTransformer(str(out))
    embeddings = model[0].auto_model.get_input_embeddings().weight.numel()
    assert card["trainable_parameters"] == sum(p.numel() for p in model.parameters()) - embeddings
    bad = invoke("train", "--base", "tiny", "--domain-data", "tico19:lots", "--out", tmp_path / "x")
    assert bad.exit_code == 2 and "--domain-data tico19:lots" in bad.output


def test_builtin_trained_model_resolves_from_the_cache(trained, tmp_path):
    from xbench.models.registry import resolve

    dest = tmp_path / "models" / "me5-small-hybrid"
    shutil.copytree(trained, dest)
    card = read_card(dest)
    card["config"] = RECIPES["me5-small-hybrid"].model_dump(mode="json")  # as if trained by the recipe
    (dest / CARD_FILE).write_text(json.dumps(card))
    retriever = resolve("me5-small-hybrid", cache_root=tmp_path)
    assert (retriever.info.name, retriever.info.kind) == ("me5-small-hybrid", "trained")
    assert retriever.info.card["training"]["config"]["sampling"] == "hybrid"
    assert RECIPES["me5-small-mono"].effective_alpha == 1 and RECIPES["me5-small-cross"].effective_alpha == 0


def test_experiment_grid_trains_evaluates_skips_and_reports(tiny_tasks, tmp_path):
    config = tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny-grid",
        "train": {"base": "tiny", "steps": 2, "batch_size": 4, "freeze_embeddings": False, "freeze_layers": 1},
        "grid": {"sampling": ["cross", "hybrid"], "domain": [[]], "seeds": [0]},
        "eval": {"tasks": ["tiny"], "include_base": False, "languages": ["en", "de"]},
    }))
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ("experiment", config, "--out", out, "--tasks-dir", tiny_tasks, "--cache-dir", cache, "--threads", "1")
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    for run, alpha in (("cross-general-s0", 0.0), ("hybrid-a0.5-general-s0", 0.5)):
        result = load(out / "results" / run / "tiny.json")
        assert result.model.name == run and result.model.card["training"]["alpha"] == alpha
        assert result.run.counts["train_overlap_texts"] == 0
        assert result.task.languages == ["en", "de"] and {s.query_lang for s in result.slices} == {"en", "de"}
        assert invoke("validate", out / "results" / run / "tiny.json").exit_code == 0
    summary = json.loads((out / "experiment.json").read_text())
    assert [(r["run"], r["tasks"]["tiny"]) for r in summary["runs"]] == \
        [("cross-general-s0", "done"), ("hybrid-a0.5-general-s0", "done")]

    card_mtime = (out / "models" / "cross-general-s0" / CARD_FILE).stat().st_mtime_ns
    again = invoke(*args)
    assert again.exit_code == 0 and again.output.count("tiny: up to date") == 2, again.output
    assert (out / "models" / "cross-general-s0" / CARD_FILE).stat().st_mtime_ns == card_mtime  # not retrained
    shutil.rmtree(out / "models" / "cross-general-s0")  # weights deleted to save disk: results suffice
    third = invoke(*args)
    assert third.exit_code == 0 and "cross-general-s0: every task evaluated already" in third.output, third.output
    assert not (out / "models" / "cross-general-s0").exists()

    table = tmp_path / "table.csv"
    rep = invoke("report", out / "results", "--format", "csv", "--resamples", "100", "--out", table)
    assert rep.exit_code == 0, rep.output
    assert "cross-general-s0" in table.read_text() and "hybrid-a0.5-general-s0" in table.read_text()
