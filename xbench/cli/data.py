"""`xbench data` and `xbench export-mteb`: data that cannot ship with xbench, and tasks for other harnesses."""

from __future__ import annotations

import time
from pathlib import Path

import click

from xbench.cli.common import CommaList, tasks_dir_option, user_errors
from xbench.errors import XbenchError
from xbench.interop.mteb import to_mteb, write
from xbench.tasks.corpus import convert_path
from xbench.tasks.prepare import miracl_languages, prepare_miracl
from xbench.tasks.registry import discover, select, with_languages
from xbench.tasks.spec import SETTINGS, Setting


@click.group("data")
def data_cmd() -> None:
    """Fetch task data that cannot ship with xbench (online, once) to where its task finds it."""


@data_cmd.command("miracl")
@click.option("--lang", "langs", required=True, help="all or LANG[,LANG...] of MIRACL's 18 languages.")
@click.option("--variant", type=click.Choice(["judged", "full"]), default="judged", show_default=True,
              help="judged: keep the passages the dev qrels name (task miracl-judged, 120k in all); full: keep "
                   "whole corpora (task miracl, tens of GB on disk). Both stream each language's corpus once.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Write OUT/<lang>/ (then run with --data-dir TASK=OUT) instead of the xbench data cache.")
@click.option("--source", default=None,
              help="Where miracl-corpus-v1.0-<lang>/docs-*.jsonl.gz lie: default the hub revision pinned in "
                   "the miracl task spec; a local copy of that dataset works offline.")
@user_errors
def data_miracl_cmd(langs: str, variant: str, out: Path | None, source: str | None) -> None:
    """Write MIRACL passages (corpus.parquet + corpus.json), queries.jsonl and qrels/dev.tsv per language."""
    for done in prepare_miracl(miracl_languages(langs), variant, out, source):
        click.echo(f"miracl {variant} {done.lang}: {done.passages:,} passages -> {done.folder}"
                   + (f" ({done.judged_absent:,} judged passages not in the corpus)" if done.judged_absent else ""))


@data_cmd.command("convert")
@click.argument("src", type=click.Path(path_type=Path, exists=True))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for corpus.parquet + corpus.json (for a folder SRC: OUT/<lang>/ each).")
@click.option("--source", default=None, help="Provenance kept in corpus.json (default: the source file's path).")
@user_errors
def data_convert_cmd(src: Path, out: Path, source: str | None) -> None:
    """Convert a BEIR corpus.jsonl(.gz), or a folder of <lang>/corpus.jsonl(.gz), to Parquet once for fast runs."""
    start = time.perf_counter()
    for folder, manifest in convert_path(src, out, source):
        seconds = time.perf_counter() - start
        click.echo(f"{folder}: {manifest.rows:,} passages, sha256 {manifest.sha256}, {seconds:.1f} s "
                   f"({manifest.rows / max(seconds, 1e-9):,.0f} passages/s)")
        start = time.perf_counter()


@click.command("export-mteb")
@click.argument("task_name")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for the mteb tasks, one sub-folder per setting.")
@click.option("--settings", type=CommaList(SETTINGS), default=",".join(SETTINGS), show_default=True)
@click.option("--languages", type=CommaList(metavar="LANG,LANG..."), default="",
              help="Only these of the task's languages, e.g. en,de (default all).")
@tasks_dir_option
@user_errors
def export_mteb_cmd(task_name: str, out: Path, settings: tuple[Setting, ...], languages: tuple[str, ...],
                    tasks_dirs: tuple[Path, ...]) -> None:
    """Write TASK as mteb retrieval tasks (one per setting, one subset per language slice) that mteb can load."""
    if "," in task_name or task_name == "all":
        raise XbenchError(f"export-mteb {task_name}: export one task at a time.")
    task = with_languages(select(discover(tasks_dirs), task_name)[0], list(languages) or None)
    tasks = to_mteb(task, list(settings))
    for folder, mteb_task in zip(write(tasks, out), tasks):
        click.echo(f"{mteb_task.metadata.name}: {len(mteb_task.hf_subsets)} subsets -> {folder}")
    click.echo("Evaluate with mteb (scores per subset = xbench slice scores; see xbench/interop/mteb.py):\n"
               "  import mteb\n  from pathlib import Path\n  from xbench.interop.mteb import load\n"
               f"  mteb.evaluate(mteb.get_model(MODEL), load(Path({str(out)!r})))")
