"""The `xbench` command line: one thin module per command group over the library. Every user error is one
paragraph on stderr and exit code 2."""

from __future__ import annotations

import os
import sys

import click

from xbench.cli.analysis import compare_cmd, report_cmd, robustness_cmd, seeds_cmd
from xbench.cli.data import data_cmd, export_mteb_cmd
from xbench.cli.results import schema_cmd, submit_cmd, validate_cmd
from xbench.cli.run import models_cmd, run_cmd, tasks_cmd
from xbench.cli.training import experiment_cmd, train_cmd

COMMANDS = (tasks_cmd, models_cmd, run_cmd, validate_cmd, schema_cmd, report_cmd, submit_cmd, compare_cmd,
            train_cmd, experiment_cmd, robustness_cmd, seeds_cmd, data_cmd, export_mteb_cmd)


@click.group()
@click.version_option(package_name="xbench")
def main() -> None:
    """xbench: zero-shot cross-lingual retrieval (mono / cross / multi), language bias and robustness."""


for _command in COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
