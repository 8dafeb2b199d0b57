"""The built wheel is the whole product: installed into a fresh venv, it finds its tasks, data and tokenizer and
runs from an empty folder outside the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_runs_bm25_from_an_empty_folder(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(ROOT)], check=True)
    wheel = next(dist.glob("xbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"xbench/tasks/lareqa.yaml", "xbench/data/xquad-r/SHA256SUMS", "xbench/data/xquad-r/en.json.gz",
            "xbench/models/assets/xlmr/tokenizer.json.gz", "xbench/results/results.schema.json",
            "xbench/analysis/templates/report.html.j2"} <= names
    assert not any(n.startswith(("tools/", "tests/", "benchmarks/")) for n in names)  # build-time code stays out

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    # the dependencies come from this interpreter's site-packages, added after the venv's own (where xbench is)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {**os.environ, "XBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    where = subprocess.run([str(python), "-c", "import xbench; print(xbench.__file__)"], cwd=empty, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site), where  # the wheel's copy, not the checkout
    run = subprocess.run([str(venv / "bin" / "xbench"), "run", "--model", "bm25", "--tasks", "xquad-r",
                          "--languages", "en,de"], cwd=empty, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    # a language subset is stored beside the full run's file, never over it
    result = json.loads((empty / "results" / "bm25" / "xquad-r.de+en.json").read_text())
    assert result["task"]["languages"] == ["de", "en"]
    assert {(s["setting"], s["query_lang"], s["cand_lang"]) for s in result["slices"]} == {
        ("mono", "de", "de"), ("mono", "en", "en"), ("cross", "de", "en"), ("cross", "en", "de"),
        ("multi", "de", "all"), ("multi", "en", "all")}
    assert all(len(s["per_query"]["query_index"]) == 1190 for s in result["slices"])
