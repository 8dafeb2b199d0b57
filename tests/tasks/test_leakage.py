"""Leakage guard: normalisation, overlap counts by hand, and `xbench run` refusing a contaminated task."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from xbench.cli import main
from xbench.results.store import load
from xbench.tasks.leakage import HASHES_FILE, Contaminated, guard, normalise, overlap, text_hashes, write_hashes
from xbench.tasks.taskdata import TaskData


def test_normalise_folds_case_width_punctuation_and_space():
    assert normalise("  Hello,\tWORLD!! ") == "hello world"
    assert normalise("ﬁnd Ｔｏｍ") == "find tom"  # NFKC: ligature and full-width letters
    assert normalise("أين الجواب؟") == "أين الجواب"  # Arabic question mark is punctuation
    assert normalise("Straße") == normalise("STRASSE")  # case folding, not lower()


def test_short_texts_do_not_count():
    assert len(text_hashes(["Paris", "1990", "yes!"])) == 0
    assert len(text_hashes(["Who wrote Dune, and when?", "who wrote dune and when"])) == 1


def task(queries: list[str], candidates: list[str]) -> TaskData:
    def table(texts: list[str], prefix: str) -> pd.DataFrame:
        return pd.DataFrame({"id": [f"{prefix}{i}" for i in range(len(texts))], "text": texts, "lang": "en",
                             "group_id": "g", "domain": None})
    return TaskData(table(queries, "q"), table(candidates, "c"), {})


def test_overlap_counts_distinct_task_texts():
    train = text_hashes(["The moon orbits the earth.", "Dogs bark loudly at night.", "Unrelated training text."])
    data = task(["Which planet is red today?", "THE MOON ORBITS THE EARTH"],
                ["the moon orbits the earth!", "Dogs bark loudly at night.", "Mars is red.", "Mars is red."])
    found = overlap(train, data)
    # distinct texts: 5 (one duplicate); "Mars is red." is too short to count -> 4 counted; 3 normalise onto
    # training texts (two spellings of the moon sentence + the dogs sentence)
    assert (found.texts, found.overlapping) == (4, 3)
    assert found.examples[0] == "THE MOON ORBITS THE EARTH"


def test_guard_refuses_allows_and_ignores(tmp_path):
    write_hashes(tmp_path, ["Dogs bark loudly at night."])
    data = task(["Who barks loudly at night?"], ["Dogs bark loudly at night."])
    card = {"training": {"alpha": 0.5}, "source": str(tmp_path)}
    with pytest.raises(Contaminated, match="--allow-overlap"):
        guard("m", card, data, "tiny", allow=False)
    assert guard("m", card, data, "tiny", allow=True) == 1
    assert guard("m", {"source": str(tmp_path)}, data, "tiny", allow=False) is None  # not trained by xbench
    (tmp_path / HASHES_FILE).unlink()
    with pytest.raises(Contaminated, match="missing"):
        guard("m", card, data, "tiny", allow=False)


def test_run_refuses_a_model_trained_on_the_task(tiny_tasks, tiny_st_model, tmp_path):
    model = tmp_path / "leaky"
    shutil.copytree(tiny_st_model, model)
    (model / "xbench_card.json").write_text(json.dumps({"alpha": 0.5, "sources": {"tiny": {}}}))
    np.save(model / HASHES_FILE, text_hashes(["Cats sleep a lot.", "Something never evaluated here."]))
    args = ["run", "--model", str(model), "--name", "leaky", "--tasks", "tiny", "--tasks-dir", str(tiny_tasks),
            "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "--allow-overlap" in refused.output and "Cats sleep a lot." in refused.output
    assert not (tmp_path / "out" / "leaky" / "tiny.json").exists()
    allowed = CliRunner().invoke(main, [*args, "--allow-overlap"])
    assert allowed.exit_code == 0, allowed.output
    result = load(tmp_path / "out" / "leaky" / "tiny.json")
    assert result.run.counts["train_overlap_texts"] == 1  # the English candidate "Cats sleep a lot."
    assert result.model.card["training"] == {"alpha": 0.5, "sources": {"tiny": {}}}
