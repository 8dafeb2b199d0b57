"""What every command shares: -h, -v and -q everywhere, `--out -`, plain tables, lazy shell completion."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from helpers import invoke, write_tiny_task

from xbench.cli import COMMANDS, main
from xbench.cli.common import table
from xbench.results.schema import json_schema


def test_table_aligns_text_left_and_numbers_right():
    assert table(("name", "n"), [("a", 10), ("bbb", None)], right=("n",)).splitlines() == \
        ["name   n", "a     10", "bbb    -"]


def _all_commands() -> list[tuple[str, ...]]:
    ctx = click.Context(main)
    found = []
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        found.append((name,))
        if isinstance(command, click.Group):
            found += [(name, sub) for sub in command.commands]
    return found


@pytest.mark.parametrize("words", [(), *_all_commands()], ids=lambda w: " ".join(w) or "xbench")
def test_every_command_takes_h_v_and_q(words):
    res = invoke(*words, "-h")
    assert res.exit_code == 0, res.output
    assert "-v, --verbose" in res.output and "-q, --quiet" in res.output and "-h, --help" in res.output


def test_run_help_documents_the_exit_codes():
    text = " ".join(invoke("run", "-h").output.split())
    assert "Exit codes: 0 every task ran" in text and "1 a task failed" in text and "2 bad input" in text
    assert "3 nothing ran (every task skipped" in text


def test_schema_out_dash_is_stdout(tmp_path):
    assert invoke("schema", "--out", "-").stdout == json_schema()
    assert invoke("schema", "--out", str(tmp_path / "s.json")).exit_code == 0
    assert (tmp_path / "s.json").read_text() == json_schema()


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    env.pop("TQDM_DISABLE", None)
    return subprocess.run([sys.executable, "-m", "xbench", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_quiet_prints_only_the_results_and_verbose_adds_counts(tmp_path):
    tasks = write_tiny_task(tmp_path)
    common = ["--model", "bm25", "--tasks", "tiny", "--tasks-dir", str(tasks), "--cache-dir", str(tmp_path / "c")]
    quiet = _cli("run", *common, "--output", str(tmp_path / "q"), "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""  # no progress bar, no status line
    assert quiet.stdout.splitlines()[1].split()[:2] == ["tiny", "done"]
    loud = invoke("run", *common, "--output", str(tmp_path / "v"), "-v")
    assert loud.exit_code == 0 and "(texts 15, unique_texts 15, encoded_now 0) [load_s" in loud.stderr


def test_completion_lists_commands_from_the_table_without_importing_them():
    code = ("import os, sys\nfrom xbench.cli import main\n"
            "os.environ.update(_XBENCH_COMPLETE='bash_complete', COMP_WORDS='xbench ta', COMP_CWORD='1')\n"
            "try:\n    main(prog_name='xbench')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('xbench.cli.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["plain,tasks", "['xbench.cli.common']"]
