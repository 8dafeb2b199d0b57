"""The `xbench` command line: one thin module per command group over the library. Every user error is one
paragraph on stderr and exit code 2. Every command takes -h/--help, -v/--verbose and -q/--quiet.

Commands are imported when invoked (click's lazy-group pattern), so `xbench --help`, `xbench tasks` or shell
completion never pay for torch, sentence-transformers or matplotlib, which only some commands need.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import textwrap

import click
from click.shell_completion import CompletionItem

from xbench.cli.common import VERBOSITY_OPTIONS, be_quiet, with_verbosity

# command name -> ("module:function" inside xbench.cli, the first line of its docstring, which `xbench --help`
# shows without importing it; tests/cli/test_cli.py checks each against the command)
COMMANDS = {
    "tasks": ("tasks:tasks_cmd",
        "List every registered task, its size and whether its data is here."),
    "models": ("run:models_cmd",
        "List the built-in models and whether each is ready (`xbench models build NAME` prepares one)."),
    "run": ("run:run_cmd",
        "Evaluate one model on the chosen tasks; writes OUTPUT/<model>/<task>.json."),
    "validate": ("results:validate_cmd",
        "Check results files against the schema and their aggregates against their per-query ranks."),
    "schema": ("results:schema_cmd",
        "Print the results JSON Schema (generated from the pydantic model)."),
    "submit": ("results:submit_cmd",
        "Check results files (schema, aggregates, task spec, data sha256, clashes) and add them all, or none."),
    "merge": ("results:merge_cmd",
        "Merge results files of one model and task run language by language into one file with the macro average."),
    "report": ("analysis:report_cmd",
        "Render the results folders (default: results/) into one static HTML page, or its tables."),
    "compare": ("analysis:compare_cmd",
        "Paired significance test of A vs B (results files or model names) and per-language differences."),
    "robustness": ("analysis:robustness_cmd",
        "Domain robustness per model: general vs domain scores, drop, worst domain, spread (seeds averaged)."),
    "seeds": ("analysis:seeds_cmd",
        "Per training configuration and task: mono/cross/multi mAP, rank distance and training time, mean ± std over"),
    "train": ("training:train_cmd",
        "Fine-tune an encoder with hybrid batches; writes OUT with its card (xbench_card.json)."),
    "experiment": ("training:experiment_cmd",
        "Train and evaluate every run of an experiment grid, skipping what is done."),
    "data": ("data:data_cmd",
        "Fetch task data that cannot ship with xbench (online, once) to where its task finds it."),
    "export-mteb": ("data:export_mteb_cmd",
        "Write TASK as mteb retrieval tasks (one per setting, one subset per language slice) that mteb can load."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click documents this pattern for large CLIs)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(f"xbench.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        return with_verbosity(command)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                             list[str]]:
        """A command's own -q, seen before its module (and tqdm) is imported, turns progress bars off too."""
        given = args[1:args.index("--")] if "--" in args else args[1:]
        if any(arg == "--quiet" or re.fullmatch(r"-[hv]*q[hqv]*", arg) for arg in given):
            be_quiet(ctx.meta)
        return super().resolve_command(ctx, args)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Command names complete from the table, without importing every command."""
        return [CompletionItem(name, help=first_line) for name, (_, first_line) in COMMANDS.items()
                if name.startswith(incomplete)] + click.Command.shell_complete(self, ctx, incomplete)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
            formatter.write_dl([(name, textwrap.shorten(first_line, limit, placeholder="..."))
                                for name, (_, first_line) in COMMANDS.items()])


@click.group(cls=LazyGroup, params=list(VERBOSITY_OPTIONS), context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Shell completion (bash; zsh and fish likewise): eval \"$(_XBENCH_COMPLETE=bash_source xbench)\"")
@click.version_option(package_name="xbench")
def main() -> None:
    """xbench: zero-shot cross-lingual retrieval (mono / cross / multi), language bias and robustness."""


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
