"""xbench.io.scratch: a killed builder's leftovers are removed by the next build, nobody else's are."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from xbench.io import scratch


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    return int(child.stdout)


def test_leftovers_of_a_dead_builder_on_this_host_are_removed(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead = tmp_path / f".idx.{dead_pid()}+{host}+abc.tmp"
    (dead / "spill").mkdir(parents=True)
    (dead / "spill" / "000001.npz").write_bytes(b"x" * 100)
    dead_file = tmp_path / f".idx.{dead_pid()}+{host}+def.tmp"
    dead_file.write_bytes(b"half a parquet")
    live = tmp_path / f".idx.{os.getppid()}+{host}+ghi.tmp"  # pytest's parent: alive
    other_host = tmp_path / f".idx.{dead_pid()}+{host}-elsewhere+jkl.tmp"  # maybe alive there
    other_prefix = tmp_path / f".idx2.{dead_pid()}+{host}+mno.tmp"  # another build's
    legacy = tmp_path / ".idx.pqr.tmp"  # no owner recorded: left alone
    for folder in (live, other_host, other_prefix, legacy):
        folder.mkdir()

    work = scratch(tmp_path, ".idx.", ".tmp")

    assert work.is_dir() and not any(work.iterdir())
    assert work.name.startswith(f".idx.{os.getpid()}+{host}+") and work.name.endswith(".tmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (work, live, other_host, other_prefix, legacy))


def test_a_file_and_a_new_builder_beside_a_running_one(tmp_path: Path) -> None:
    first = scratch(tmp_path, ".corpus.parquet.", ".tmp", folder=False)
    second = scratch(tmp_path, ".corpus.parquet.", ".tmp", folder=False)  # same process: alive, both kept
    assert first.is_file() and first.stat().st_size == 0
    assert first != second and sorted(tmp_path.iterdir()) == sorted([first, second])
