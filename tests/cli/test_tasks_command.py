"""`xbench tasks`: sizes from the counts manifests, a narrow default view and --wide, without loading data."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import invoke, write_tiny_task

from tools.counts import main as write_counts

TINY = ["tiny", "test", "3", "mono,cross,multi"]


def test_the_default_view_fits_100_columns_and_shows_the_shipped_sizes():
    res = invoke("tasks")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["name", "family", "langs", "settings", "queries", "candidates"]
    assert max(map(len, lines)) <= 100
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert len(rows) == 52
    # XQuAD-R: 1190 questions in each of 11 languages, 13,014 candidate sentences; MLQA-R dev: 4199 and 20,534
    assert rows["xquad-r"] == ["xquad-r", "lareqa", "11", "mono,cross,multi", "13090", "13014"]
    assert rows["mlqa-r"][-2:] == ["4199", "20534"]
    assert rows["miracl"][-3:] == ["-", "not", "shipped"]


def test_wide_and_json_views():
    wide = invoke("tasks", "--wide", "--domain", "none").stdout.splitlines()
    assert wide[0].split()[:5] == ["name", "family", "domain", "settings", "main"]
    xquad = next(line for line in wide if line.startswith("xquad-r "))
    assert "ar de el en es hi ru th tr vi zh" in xquad and xquad.rstrip().endswith("CC BY-SA 4.0")
    rows = {r["name"]: r for r in json.loads(invoke("tasks", "--json").stdout)}
    assert (rows["xquad-r"]["queries"], rows["xquad-r"]["candidates"]) == (13090, 13014)
    assert rows["xquad-r"]["per_language"]["th"] == [1190, 852]  # Thai XQuAD context has fewer sentence splits
    assert rows["miracl-judged"]["data"] == "not shipped" and rows["miracl-judged"]["queries"] is None
    assert rows["xquad-r"]["available"] and not rows["miracl"]["available"]


def test_a_task_without_counts_shows_unknown_until_the_tool_counts_it(tmp_path):
    tasks = write_tiny_task(tmp_path)
    before = invoke("tasks", "--tasks-dir", str(tasks), "--family", "test")
    assert before.stdout.splitlines()[1].split() == [*TINY, "?", "?"]
    assert "python -m tools.counts --tasks-dir DIR" in before.stderr
    write_counts(["--tasks-dir", str(tasks)])
    # by hand: q1 in en, de, fr and q2 in en, de; sentences: 2 + 2 per en/de paragraph pair, 2 in fr
    after = json.loads(invoke("tasks", "--tasks-dir", str(tasks), "--family", "test", "--json").stdout)
    assert [(r["queries"], r["candidates"], r["per_language"]) for r in after] == \
        [(5, 10, {"en": [2, 4], "de": [2, 4], "fr": [1, 2]})]
    assert invoke("tasks", "--tasks-dir", str(tasks), "--family", "test").stdout.splitlines()[1].split() == \
        [*TINY, "5", "10"]
    spec = tasks / "tiny.yaml"
    spec.write_text(spec.read_text().replace("languages: [en, de, fr]", "languages: [en, de]"))
    stale = json.loads(invoke("tasks", "--tasks-dir", str(tasks), "--family", "test", "--json").stdout)
    assert stale[0]["queries"] is None  # counted for another spec: unknown, never a wrong number


def test_listing_tasks_loads_no_data_and_no_pandas():
    code = ("import sys\nfrom xbench.cli import main\n"
            "try:\n    main(['tasks', '--wide'], prog_name='xbench')\nexcept SystemExit as stop:\n"
            "    assert not stop.code, stop.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'torch')"
            " or m.startswith(('xbench.tasks.loaders', 'xbench.evaluation'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"
