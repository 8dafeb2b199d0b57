"""The results tests' shared setup: copies of genuine results files of the tiny task to submit, validate or forge."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture()
def env(tiny_results, tmp_path) -> dict[str, Path]:
    """Copies of the real bm25 and tiny-st files outside the (not yet existing) results folder."""
    for model in ("bm25", "tiny-st"):
        shutil.copy(tiny_results / "results" / model / "tiny.json", tmp_path / f"{model}.json")
    return {"bm25": tmp_path / "bm25.json", "st": tmp_path / "tiny-st.json", "results": tmp_path / "results",
            "tasks": tiny_results / "tasks", "tmp": tmp_path}
