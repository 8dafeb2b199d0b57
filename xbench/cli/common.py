"""What every command shares: the error boundary and exit codes, -v/-q, --json and `--out -`, plain-text tables,
comma-list and TASK=PATH parameter types, common options."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import click

from xbench.errors import XbenchError
from xbench.io import write_atomic

EXIT_TASK_FAILED = 1  # `xbench run`: a task failed (its message is on stderr); the others ran
EXIT_USER_ERROR = 2
EXIT_NOTHING_RAN = 3  # `xbench run`: every task was skipped (data not here), so nothing was evaluated
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped with Ctrl-C
QUIET, VERBOSE = "xbench.quiet", "xbench.verbose"  # keys of click's context meta, shared by a command and its group


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn XbenchError into a clean message and exit code 2 (no traceback for the user's mistakes), and Ctrl-C
    into one line and exit code 130 (files are written atomically, so an interrupted command leaves none half)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except XbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def be_quiet(meta: dict[str, Any]) -> None:
    """-q: no status lines, no log lines below errors, no progress bars. tqdm reads TQDM_DISABLE when it is
    imported: `xbench -q CMD` sets it before the command's modules load, and the group sees a command's own -q
    before importing the command (`cli.LazyGroup.resolve_command`)."""
    meta[QUIET] = True
    os.environ["TQDM_DISABLE"] = "1"
    logging.getLogger().setLevel(logging.ERROR)


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        be_quiet(ctx.meta)


class _Stderr(logging.Handler):
    """Log lines through click, to whatever stderr is when they are written (a test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _set_verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        ctx.meta[VERBOSE] = max(value, ctx.meta.get(VERBOSE, 0))
        root = logging.getLogger()
        if not any(isinstance(h, _Stderr) for h in root.handlers):
            handler = _Stderr()
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            root.addHandler(handler)
        root.setLevel(logging.DEBUG if ctx.meta[VERBOSE] > 1 else logging.INFO)


VERBOSITY_OPTIONS = (
    click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_set_verbose,
                 help="More detail on stderr: per-task counts and timings, library log lines (-vv: debug)."),
    click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_set_quiet,
                 help="Only results and errors: no progress bars or status lines."),
)


def with_verbosity(command: click.Command) -> click.Command:
    """Give `command` (and a group's subcommands) -v/--verbose and -q/--quiet, once: every xbench command takes
    them, whichever module defines it."""
    if not any(p.name in ("verbose", "quiet") for p in command.params):
        command.params.extend(VERBOSITY_OPTIONS)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_verbosity(sub)
    return command


def _meta() -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    return ctx.meta if ctx is not None else {}


def is_quiet() -> bool:
    return bool(_meta().get(QUIET))


def verbosity() -> int:
    """-1 with -q, else the number of -v given."""
    return -1 if is_quiet() else int(_meta().get(VERBOSE, 0))


def status(message: str) -> None:
    """A status line (what is being done, where it went) on stderr, so stdout holds only results; -q drops it."""
    if not is_quiet():
        click.echo(message, err=True)


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document on stdout instead of the table (for scripts).")


def echo_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, default=str))


def out_path(**kwargs: Any) -> click.Path:
    """A file option where `-` means stdout (`--out -`)."""
    return click.Path(path_type=Path, allow_dash=True, **kwargs)  # a folder there: write_atomic's clean error


def write_out(out: Path, text: str) -> None:
    """`text` into `out` atomically, or on stdout when `out` is `-`."""
    if str(out) == "-":
        click.echo(text, nl=False)
    else:
        write_atomic(out, text)


def table(header: Sequence[str], rows: Sequence[Sequence[object]], right: Collection[str] = ()) -> str:
    """A plain-text table: columns two spaces apart, those named in `right` (numbers) right-aligned. Plain text
    rather than pandas, so listing commands stay fast to start."""
    cells = [list(header), *[["-" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if name in right else cell.ljust(w)
                       for cell, w, name in zip(row, widths, header)).rstrip() for row in cells]
    return "\n".join(lines)


class CommaList(click.ParamType):
    """`a,b,c` -> ("a", "b", "c"), blanks dropped; with `choices`, every item must be one of them."""

    name = "LIST"

    def __init__(self, choices: Sequence[str] | None = None, metavar: str = "X,X...") -> None:
        self.choices = tuple(choices) if choices is not None else None
        self.metavar = metavar

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return self.metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        items = tuple(v.strip() for v in str(value).split(",") if v.strip())
        if self.choices is not None:
            bad = [v for v in items if v not in self.choices]
            if bad or not items:
                self.fail(f"{value}: unknown {bad}; use a comma-separated subset of {self.choices}.", param, ctx)
        return items


class TaskPath(click.ParamType):
    """`TASK=PATH` -> (TASK, PATH)."""

    name = "TASK=PATH"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, Path]:
        if isinstance(value, tuple):
            return value
        name, sep, path = str(value).partition("=")
        if not sep or not name or not path:
            self.fail(f"{value}: expected TASK=PATH, e.g. --data-dir miracl=/data/miracl.", param, ctx)
        return name, Path(path)


tasks_dir_option = click.option("--tasks-dir", "tasks_dirs", multiple=True, type=click.Path(path_type=Path),
                                help="Extra folder of YAML task specs (repeatable).")
cache_option = click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                            help="Embedding and model cache (default $XBENCH_CACHE or ~/.cache/xbench).")
device_option = click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
threads_option = click.option("--threads", type=click.IntRange(min=1), default=None,
                              help="CPU threads for torch (on a busy machine 1 can be much faster than 2).")
resamples_option = click.option("--resamples", type=click.IntRange(min=100), default=2000, show_default=True,
                                help="Resamples for the bootstrap CIs, and for the randomization tests where units "
                                     "are too few for the t-test.")
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the resampling.")


def check_writable(folder: Path) -> None:
    """Fail before any work when the output folder cannot take files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise XbenchError(f"{folder}: results folder is not writable ({exc.strerror}); "
                          "pass a writable --output.") from None
