"""Results for the report tests beyond helpers.report_dirs: a training configuration run with two seeds, and a
domain split of the tiny task, so that the report folds seeds, ranks across tasks and shows robustness."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import doctored

CONFIG = "hybrid-a0.5"
SEEDS = {0: 0.02, 1: 0.06}  # seed -> what it adds to bm25's multi and mono scores, per language and macro


def _shift(summary: dict, delta: float) -> None:
    for setting in ("mono", "multi"):
        for values in summary[setting].values():
            values["map"] = min(1.0, values["map"] + delta) if setting == "multi" else values["map"] - delta


def _seeded(seed: int, delta: float):
    def edit(raw: dict) -> None:  # the report reads summaries and cards; it does not validate the ranks
        raw["model"]["name"] = f"{CONFIG}-s{seed}"
        raw["model"]["card"] = {"max_seq_length": 64, "license": "MIT", "url": "https://example.org/model",
                                "training": {"config": {"sampling": "hybrid", "alpha": 0.5, "seed": seed},
                                             "seed": seed, "train_seconds": 10.0 + seed}}
        raw["run"]["command"] = f"xbench experiment grid.yaml --out runs  # run {CONFIG}-s{seed}"
        _shift(raw["summary"], delta)
    return edit


def _sport(delta: float):
    def edit(raw: dict) -> None:
        raw["task"].update(name="tiny.sport", domain="sport", general="tiny")
        raw["summary"]["multi"]["macro"]["map"] -= delta
    return edit


@pytest.fixture(scope="session")
def seeded_dirs(tiny_results, report_dirs, tmp_path_factory) -> list[Path]:
    """report_dirs, plus `hybrid-a0.5` with seeds 0 and 1 (bm25's rankings, other scores) and a `tiny.sport`
    domain split (family test, domain sport) of bm25 and both seeds, their multi mAP 0.25 / 0.1 lower."""
    extra = tmp_path_factory.mktemp("seeded")
    bm25 = tiny_results / "results" / "bm25" / "tiny.json"
    for seed, delta in SEEDS.items():
        run = doctored(bm25, extra / f"{CONFIG}-s{seed}" / "tiny.json", _seeded(seed, delta))
        doctored(run, extra / f"{CONFIG}-s{seed}" / "tiny.sport.json", _sport(0.1))
    doctored(bm25, extra / "bm25" / "tiny.sport.json", _sport(0.25))
    return [*report_dirs, extra]
