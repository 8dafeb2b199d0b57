"""The robustness table: drops, worst domain, spread and seed statistics, checked against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from xbench.cli import main
from xbench.errors import XbenchError
from xbench.results import ModelCard, ResultFile, RunInfo, result_path, save
from xbench.robustness import COLUMNS, robustness_table
from xbench.spec import TaskSpec


def result(task: str, score: float, model: str = "m", card: dict | None = None, general: str | None = None,
           domain: str | None = None) -> ResultFile:
    spec = TaskSpec(name=task, version="1", family="test", description="d", loader="lareqa",
                    source={"dir": "x"}, license="CC0", languages=["en"], general=general, domain=domain)
    run = RunInfo(command="c", xbench_version="0", libraries={}, python="3", platform="p", device="cpu", seed=0,
                  started="s", finished="f", timings={}, counts={})
    return ResultFile(task=spec, data_sha256="0" * 64, model=ModelCard(name=model, kind="k", fingerprint="f",
                                                                        card=card or {}),
                      run=run, settings=["multi"], main_score=score, summary={"multi": {"macro": {"map": score}}},
                      bias={}, query_ids=[], slices=[])


def seeded(seed: int, general: float, a: float, b: float) -> list[ResultFile]:
    card = {"config": "hybrid-a0.5", "seed": seed}
    return [result("g", general, f"hybrid-s{seed}", card),
            result("g.a", a, f"hybrid-s{seed}", card, general="g", domain="a"),
            result("g.b", b, f"hybrid-s{seed}", card, general="g", domain="b")]


def test_single_model_drop_worst_and_spread():
    table = robustness_table([result("g", 0.8), result("g.a", 0.6, general="g", domain="a"),
                              result("g.b", 0.9, general="g", domain="b"), result("other", 0.1)])
    assert list(table.columns) == COLUMNS
    assert table["task"].tolist() == ["g.a", "g.b"]
    assert table["drop"].tolist() == pytest.approx([0.2, -0.1])
    assert table["worst_domain"].tolist() == ["a", "a"]
    assert table["spread"].tolist() == pytest.approx([0.3, 0.3])
    assert table["seeds"].tolist() == [1, 1] and table["score_std"].isna().all()


def test_seeds_of_one_config_are_averaged_with_sample_std():
    table = robustness_table(seeded(1, 0.8, 0.6, 0.7) + seeded(2, 0.7, 0.5, 0.7)).set_index("task")
    assert set(table["model"]) == {"hybrid-a0.5"} and table["seeds"].tolist() == [2, 2]
    assert table.loc["g.a", "score"] == pytest.approx(0.55)
    assert table.loc["g.a", "score_std"] == pytest.approx(math.sqrt(0.005))  # (0.6, 0.5): ddof 1
    assert table.loc["g.a", "general_score"] == pytest.approx(0.75)
    assert table.loc["g.a", "drop"] == pytest.approx(0.2) and table.loc["g.a", "drop_std"] == pytest.approx(0.0)
    assert table.loc["g.b", "drop"] == pytest.approx(0.05)  # (0.1 + 0.0) / 2
    assert table.loc["g.b", "drop_std"] == pytest.approx(math.sqrt(0.005))
    assert table["worst_domain"].tolist() == ["a", "a"] and table["spread"].tolist() == pytest.approx([0.15, 0.15])


def test_missing_general_result_leaves_the_drop_empty():
    table = robustness_table([result("g.a", 0.6, general="g", domain="a")])
    assert math.isnan(table.loc[0, "general_score"]) and math.isnan(table.loc[0, "drop"])
    assert table.loc[0, "score"] == pytest.approx(0.6)


def test_no_domain_tasks_gives_an_empty_table_and_duplicates_are_refused():
    assert robustness_table([result("g", 0.5)]).empty
    with pytest.raises(XbenchError, match="two results files"):
        robustness_table([result("g", 0.5), result("g", 0.6)])


def test_cli_prints_and_writes_csv_and_markdown(tmp_path):
    files = seeded(1, 0.8, 0.6, 0.7) + [result("g", 0.5, "bm25"), result("g.a", 0.25, "bm25", general="g",
                                                                           domain="a")]
    for r in files:
        save(r, result_path(tmp_path / "results", r.model.name, r.task.name))
    res = CliRunner().invoke(main, ["robustness", str(tmp_path / "results"), "--csv", str(tmp_path / "r.csv"),
                                    "--markdown", str(tmp_path / "r.md")])
    assert res.exit_code == 0, res.output
    csv = pd.read_csv(tmp_path / "r.csv")
    assert csv[["model", "task"]].values.tolist() == [["bm25", "g.a"], ["hybrid-a0.5", "g.a"], ["hybrid-a0.5", "g.b"]]
    assert csv["drop"].tolist() == pytest.approx([0.25, 0.2, 0.1])
    assert "| bm25 " in (tmp_path / "r.md").read_text() and "0.250" in res.output
    none = tmp_path / "none"
    save(result("g", 0.5), result_path(none, "m", "g"))
    res = CliRunner().invoke(main, ["robustness", str(none)])
    assert res.exit_code == 2 and "no results of a domain task" in res.output
