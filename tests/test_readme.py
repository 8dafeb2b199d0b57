"""Every `xbench` command in the README runs as written, and the outputs it shows are the outputs it gives.

Commands come from the README's bash and console code blocks. Not run: templates (a placeholder such as
`/path/to/...` or an upper-case word like `M`, `FILE`), and commands whose comment starts with `slow`, `online` or
`gpu`. The others run in a scratch folder holding a copy of the committed `results/` and the committed
`experiments/` (so `xbench run --model bm25 --tasks xquad-r` finds its committed file up to date), with an empty
cache. The commands that read whole results folders or import mteb are marked slow here.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from helpers import invoke

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP = re.compile(r"#\s*(slow|online|gpu)\b", re.IGNORECASE)
PLACEHOLDER = re.compile(r"/path/to|\b[A-Z][A-Z_]*\b")
SLOW = {"report", "compare", "robustness", "seeds", "export-mteb"}  # whole results folders, or mteb's import


def readme_commands() -> list[tuple[str, list[str]]]:
    """(command line, the output lines the README shows for it) for each runnable xbench command, in order."""
    found: list[tuple[str, list[str]]] = []
    for lang, body in re.findall(r"```(bash|console)\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        shown: list[str] | None = None
        for line in body.splitlines():
            command = line[2:] if lang == "console" and line.startswith("$ ") else line if lang == "bash" else None
            if command is None:
                if shown is not None and line.strip():
                    shown.append(line)
                continue
            shown = None
            words = command.split("#", 1)[0].strip()
            if not words.startswith("xbench ") or SKIP.search(command) or PLACEHOLDER.search(words):
                continue
            shown = []
            found.append((words, shown))
    return found


COMMANDS = readme_commands()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "results", root / "results")
    (root / "experiments").symlink_to(ROOT / "experiments")
    return root


def test_the_readme_has_the_commands_this_test_expects():
    words = [c for c, _ in COMMANDS]
    assert "xbench tasks --domain none" in words and "xbench models" in words
    assert "xbench run --model bm25 --tasks xquad-r" in words
    assert any(c.startswith("xbench seeds experiments/results/") for c in words)
    assert any(c.startswith("xbench robustness experiments/results/") for c in words)
    assert not any("/path/to" in c or "--model M " in c for c in words)


@pytest.mark.parametrize("command, shown", [
    pytest.param(c, s, id=c, marks=[pytest.mark.slow] if c.split()[1] in SLOW else [])
    for c, s in COMMANDS])
def test_readme_command_runs_as_written(command, shown, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    res = invoke(*shlex.split(command)[1:], env={"XBENCH_CACHE": str(workdir / "cache")})
    assert res.exit_code == 0, f"{command}\n{res.output}"
    if not shown:
        return
    got = [line.rstrip() for line in res.stdout.splitlines()]
    if command.startswith("xbench run "):  # the scores, not the status ("done" in the README, "up to date" here)
        def scores(lines: list[str]) -> list[list[str]]:
            return [line.split()[-6:] for line in lines if line.split()[:1] == [command.split()[-1]]]

        assert scores(got) == scores(shown)
    else:
        assert got == [line.rstrip() for line in shown]


def test_the_results_table_shows_the_committed_results() -> None:
    """Every row of the README's results table is what results/<model>/<task>.json holds (macro averages, as
    printed: three decimals, the rank distance whole), so a rerun that changes a number cannot leave it stale."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| model | task | mAP mono |"):].split("\n\n", 1)[0].splitlines()[2:]
    assert len(table) >= 8
    for row in table:
        model, task, *shown = (cell.strip() for cell in row.strip("|").split("|"))
        result = json.loads((ROOT / "results" / model / f"{task}.json").read_text(encoding="utf-8"))
        macro = {setting: values["macro"] for setting, values in result["summary"].items()}
        bias = result["bias"]
        expected = [f"{macro[s][m]:.3f}" for s, m in [("mono", "map"), ("cross", "map"), ("multi", "map"),
                                                      ("mono", "recall@1"), ("cross", "recall@1"),
                                                      ("multi", "recall@10")]]
        expected += [f"{bias['rank_distance']['macro']:.0f}", f"{bias['same_lang@10']['macro']:.3f}"]
        assert shown == expected, f"README row {model} {task}"
