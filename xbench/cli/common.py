"""What every command shares: the error boundary, comma-list and TASK=PATH parameter types, common options."""

from __future__ import annotations

import functools
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from xbench.errors import XbenchError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped with Ctrl-C


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
