"""The counts manifests beside the shipped data: current for every built-in task, equal to the data (slow), and
unknown rather than wrong when stale or damaged."""

from __future__ import annotations

import json

import pytest
from helpers import tiny_miracl, write_task, write_tiny_task

from tools.counts import write_counts
from xbench.tasks.catalog import COUNTS_FILE, Counts, read_counts
from xbench.tasks.registry import count, discover


def test_every_built_in_task_has_a_current_counts_entry():
    """Fails when a spec or its data changed without `python -m tools.counts` being run again."""
    stale = [t.name for t in discover().values() if read_counts(t) is None]
    assert stale == [], "run `python -m tools.counts` and commit xbench/data/*/counts.json"


@pytest.mark.slow  # loads every shipped task's data (about a minute)
def test_every_counts_entry_equals_its_data():
    for task in discover().values():
        assert read_counts(task) == count(task), task.name


def test_counts_of_the_tiny_task_by_hand(tmp_path):
    task = discover((write_tiny_task(tmp_path),))["tiny"]
    assert read_counts(task) is None  # no manifest yet
    assert write_counts([task]) == {task.data_dir: 1}
    expected = Counts(True, 5, 10, {"en": [2, 4], "de": [2, 4], "fr": [1, 2]})  # see helpers.TINY
    assert read_counts(task) == count(task) == expected
    manifest = task.data_dir / COUNTS_FILE
    assert json.loads(manifest.read_text())["data_sha256"] == task.data_sha256()
    before = manifest.read_bytes()
    write_counts([task])
    assert manifest.read_bytes() == before  # deterministic


def test_stale_or_damaged_counts_are_unknown(tmp_path):
    task = discover((write_tiny_task(tmp_path),))["tiny"]
    write_counts([task])
    manifest = task.data_dir / COUNTS_FILE
    good = manifest.read_text()
    manifest.write_text(good[: len(good) // 2])
    assert read_counts(task) is None
    manifest.write_text(good.replace('"queries": 5', '"queries": "five"'))
    assert read_counts(task) is None
    manifest.write_text(good)
    sums = task.data_dir / "SHA256SUMS"
    sums.write_text(sums.read_text() + "\n")  # other data identity
    assert read_counts(task) is None


def test_data_that_does_not_ship_is_counted_as_not_shipped(tmp_path, monkeypatch):
    monkeypatch.setenv("XBENCH_CACHE", str(tmp_path / "cache"))
    task = discover((write_task(tmp_path, tiny_miracl()),))["tinymiracl"]
    write_counts([task])
    assert read_counts(task) == Counts(shipped=False)
