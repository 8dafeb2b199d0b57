"""The robustness and seed tables: drops, worst domain, spread and seed statistics, against hand-computed values."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner

from xbench.analysis.cache import SignificanceCache
from xbench.analysis.report import build
from xbench.analysis.robustness import COLUMNS, robustness_table
from xbench.analysis.seeds import labels, seed_table, with_std
from xbench.cli import main
from xbench.errors import XbenchError
from xbench.results.schema import ModelCard, ResultFile, RunInfo
from xbench.results.store import result_path, save
from xbench.tasks.spec import TaskSpec


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
    card = {"training": {"config": {"sampling": "hybrid", "alpha": 0.5, "seed": seed}, "seed": seed}}
    name = f"hybrid-a0.5-s{seed}"
    return [result("g", general, name, card), result("g.a", a, name, card, general="g", domain="a"),
            result("g.b", b, name, card, general="g", domain="b")]


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


def scored(model: str, task: str, card: dict, mono: float, cross: float, multi: float, rd: float) -> ResultFile:
    r = result(task, multi, model, card)
    r.summary = {"mono": {"macro": {"map": mono}}, "cross": {"macro": {"map": cross}},
                 "multi": {"macro": {"map": multi, "rank_distance": rd}}}
    return r


def test_seed_table_groups_configs_without_their_seed():
    def card(sampling: str, seed: int) -> dict:
        return {"training": {"config": {"sampling": sampling, "seed": seed}, "seed": seed,
                             "train_seconds": 100.0 + seed}}

    files = [scored("hybrid-s0", "t", card("hybrid", 0), 0.8, 0.6, 0.4, 100.0),
             scored("hybrid-s1", "t", card("hybrid", 1), 0.7, 0.5, 0.2, 300.0),
             scored("hybrid-s2", "t", card("hybrid", 2), 0.6, 0.4, 0.3, 200.0),
             scored("base", "t", {}, 0.5, 0.3, 0.1, 900.0),
             scored("hybrid-s0", "u", card("hybrid", 0), 0.9, 0.9, 0.9, 1.0)]
    table = seed_table(files).set_index(["model", "task"])
    row = table.loc[("hybrid", "t")]
    assert row["seeds"] == 3
    assert row["mono map"] == pytest.approx(0.7) and row["mono map std"] == pytest.approx(0.1)  # (.8, .7, .6)
    assert row["multi map"] == pytest.approx(0.3) and row["multi map std"] == pytest.approx(0.1)
    assert row["multi rank_distance"] == pytest.approx(200.0) and row["multi rank_distance std"] == pytest.approx(100.0)
    assert row["train_seconds"] == pytest.approx(101.0) and row["train_seconds std"] == pytest.approx(1.0)
    base = table.loc[("base", "t")]
    assert base["seeds"] == 1 and math.isnan(base["mono map std"]) and math.isnan(base["train_seconds"])
    assert table.loc[("hybrid", "u"), "seeds"] == 1
    assert seed_table(files, tasks=["u"])["task"].tolist() == ["u"]
    shown = with_std(seed_table(files)).set_index(["model", "task"])
    assert shown.loc[("hybrid", "t"), "mono map"] == "0.700 ± 0.100"
    assert shown.loc[("hybrid", "t"), "multi rank_distance"] == "200 ± 100"
    assert shown.loc[("base", "t"), "cross map"] == "0.300"


def test_labels_keep_configs_that_share_a_name_apart():
    a = result("t", 0.1, "run-s0", {"training": {"config": {"lr": 1, "seed": 0}, "seed": 0}})
    b = result("t", 0.2, "run-s0", {"training": {"config": {"lr": 2, "seed": 0}, "seed": 0}})
    plain = result("t", 0.3, "run-s0")  # no config: its name is kept whole, with no seed
    got = labels([a, b, plain])
    assert got[2] == ("run-s0", "")
    assert got[0][0].startswith("run [") and got[1][0].startswith("run [") and got[0][0] != got[1][0]
    assert got[0][1] == got[1][1] == "0"


def test_seeds_cli(tmp_path):
    for seed in (0, 1):
        r = scored(f"cross-s{seed}", "t", {"training": {"config": {"sampling": "cross", "seed": seed}, "seed": seed}},
                   0.5 + seed / 10, 0.4, 0.3, 10.0)
        save(r, result_path(tmp_path / "results", r.model.name, r.task.name))
    res = CliRunner().invoke(main, ["seeds", str(tmp_path / "results"), "--markdown", str(tmp_path / "s.md"),
                                    "--csv", str(tmp_path / "s.csv")])
    assert res.exit_code == 0, res.output
    assert "0.550 ± 0.071" in res.output and "| cross " in (tmp_path / "s.md").read_text()
    assert pd.read_csv(tmp_path / "s.csv")["mono map"].tolist() == pytest.approx([0.55])
    res = CliRunner().invoke(main, ["seeds", str(tmp_path / "results"), "--tasks", "nope"])
    assert res.exit_code == 2 and "no results for tasks nope" in res.output


def test_report_folds_the_seeds_of_a_configuration_into_one_row():
    def card(seed: int) -> dict:
        return {"training": {"config": {"sampling": "cross", "seed": seed}, "seed": seed}}

    one = [scored("cross-s0", "t", card(0), 0.5, 0.4, 0.3, 10.0)]
    two = one + [scored("cross-s1", "t", card(1), 0.7, 0.4, 0.3, 10.0)]
    nothing_kept = SignificanceCache(enabled=False)
    (row,) = build(one, n_resamples=100, cache=nothing_kept).sections[0].tables[0].rows()
    assert row.label == "cross-s0" and row.members == []
    board = build(two, n_resamples=100, cache=nothing_kept).sections[0].tables[0]
    (row,) = board.rows()
    mono = [c.name for c in board.columns].index("mono map")
    assert row.label == "cross" and [m.label for m in row.members] == ["cross-s0", "cross-s1"]
    assert (row.cells[mono].text, row.cells[mono].sd) == ("0.600", "0.141")  # sd of (0.5, 0.7), ddof 1


def test_robustness_and_seeds_print_json(tmp_path):
    card = {"training": {"config": {"sampling": "hybrid", "seed": 0}, "seed": 0}}
    for r in (result("g", 0.8, "m-s0", card), result("g.a", 0.6, "m-s0", card, general="g", domain="a")):
        save(r, result_path(tmp_path / "results", r.model.name, r.task.name))
    res = CliRunner().invoke(main, ["robustness", str(tmp_path / "results"), "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)
    assert (row["model"], row["task"], row["score_std"]) == ("m", "g.a", None)
    assert row["drop"] == pytest.approx(0.2)
    res = CliRunner().invoke(main, ["seeds", str(tmp_path / "results"), "--json"])
    assert sorted((r["model"], r["task"], r["multi map"]) for r in json.loads(res.output)) == [("m", "g", 0.8),
                                                                                              ("m", "g.a", 0.6)]
