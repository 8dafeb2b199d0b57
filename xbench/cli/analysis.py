"""`xbench report`, `compare`, `robustness`, `seeds`: tables and pages from results folders."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import pandas as pd

from xbench.analysis.cache import SignificanceCache
from xbench.analysis.compare import compare
from xbench.analysis.render import FORMATS, save, text
from xbench.analysis.report import build, read
from xbench.analysis.robustness import robustness_table
from xbench.analysis.seeds import seed_table, with_std
from xbench.cli.common import CommaList, resamples_option, seed_option, user_errors
from xbench.errors import XbenchError
from xbench.io import write_atomic
from xbench.results.store import collect
from xbench.tasks.spec import SETTINGS

significance_cache_option = click.option(
    "--cache-dir", type=click.Path(path_type=Path), default=None,
    help="Cache root; significance tests are kept in its significance/ folder, so that every report format and "
         "rerun, and a repeated compare, computes them once (default $XBENCH_CACHE or ~/.cache/xbench).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the table as JSON instead.")


@click.command("report")
@click.argument("results_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", default=None, metavar="FILE|DIR/|-",
              help="Output file (default reports/index.<html|md|csv|tex>); a path ending in / is a folder of pages "
                   "(index.html and tasks/<task>.html); - writes to standard output.")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="html",
              show_default=True, help="html: the static leaderboard page; md/csv/latex: its tables.")
@resamples_option
@seed_option
@significance_cache_option
@click.option("--strict", is_flag=True, help="Stop at an unreadable results file (default: skip it, naming it).")
@user_errors
def report_cmd(results_dirs: tuple[Path, ...], out: str | None, fmt: str, resamples: int, seed: int,
               cache_dir: Path | None, strict: bool) -> None:
    """Render the results folders (default: results/) into one static HTML page, or its tables.

    `--out DIR/` writes a folder of pages instead, `--out -` standard output."""
    results = read(list(results_dirs) or [Path("results")], strict,
                   on_skip=lambda message: click.echo(f"warning: {message}", err=True))
    report = build(results, resamples, seed, SignificanceCache(cache_dir))
    if out == "-":
        click.echo(text(report, fmt), nl=False)
        return
    target = Path(out) if out else Path("reports") / f"index.{FORMATS[fmt]}"
    save(report, fmt, target, folder=out is not None and out.endswith(("/", os.sep)))
    click.echo(f"wrote {target} ({len(results)} results files)")


@click.command("compare")
@click.argument("a")
@click.argument("b")
@click.option("--task", "task_name", required=True, help="The task both results are on.")
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
              help="Where model names (rather than files) are looked up.")
@click.option("--resamples", type=click.IntRange(min=100), default=9999, show_default=True,
              help="Resamples for the bootstrap CI, and for the randomization test where units are too few "
                   "for the t-test.")
@seed_option
@significance_cache_option
@json_option
@user_errors
def compare_cmd(a: str, b: str, task_name: str, results_dir: Path, resamples: int, seed: int,
                cache_dir: Path | None, as_json: bool) -> None:
    """Paired significance test of A vs B (results files or model names) and per-language differences."""
    comparison = compare(a, b, task_name, results_dir, resamples, seed, SignificanceCache(cache_dir))
    click.echo(json.dumps(comparison.to_dict(), indent=1) if as_json else comparison.text(), nl=not as_json)


def _write_tables(table: pd.DataFrame, shown: pd.DataFrame, csv_out: Path | None, md_out: Path | None,
                  as_json: bool) -> None:
    """The table on stdout (as JSON records of the raw values with `as_json`), and as CSV (raw values) and Markdown
    (as shown) where asked."""
    if as_json:
        json.dump(json.loads(table.to_json(orient="records", double_precision=15)), sys.stdout, indent=1)
        click.echo()
    else:
        click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if csv_out is not None:
        write_atomic(csv_out, table.to_csv(index=False))
    if md_out is not None:
        cells = shown.astype(object).where(shown.notna(), None)  # tabulate shows None, not NaN, as missing
        write_atomic(md_out, cells.to_markdown(index=False, floatfmt=".3f", missingval="") + "\n")


csv_option = click.option("--csv", "csv_out", type=click.Path(path_type=Path), default=None,
                          help="Also write the table as CSV.")
markdown_option = click.option("--markdown", "md_out", type=click.Path(path_type=Path), default=None,
                               help="Also write the table as Markdown.")


@click.command("robustness")
@click.argument("results_dir", required=False, type=click.Path(path_type=Path), default=Path("results"))
@click.option("--setting", type=click.Choice(list(SETTINGS)), default="multi", show_default=True)
@click.option("--metric", default="map", show_default=True, help="A metric the tasks compute (map, recall@10, ...).")
@csv_option
@markdown_option
@json_option
@user_errors
def robustness_cmd(results_dir: Path, setting: str, metric: str, csv_out: Path | None, md_out: Path | None,
                   as_json: bool) -> None:
    """Domain robustness per model: general vs domain scores, drop, worst domain, spread (seeds averaged)."""
    table = robustness_table(collect([results_dir]), setting=setting, metric=metric)
    if table.empty:
        raise XbenchError(f"{results_dir}: no results of a domain task (a task with `general`, e.g. xquad-r.sports); "
                          "run `xbench run --model M --tasks all` first.")
    _write_tables(table, table, csv_out, md_out, as_json)


@click.command("seeds")
@click.argument("results_dir", required=False, type=click.Path(path_type=Path), default=Path("results"))
@click.option("--tasks", "task_names", type=CommaList(metavar="NAME,NAME..."), default="",
              help="Comma-separated task names (default: every task).")
@csv_option
@markdown_option
@json_option
@user_errors
def seeds_cmd(results_dir: Path, task_names: tuple[str, ...], csv_out: Path | None, md_out: Path | None,
              as_json: bool) -> None:
    """Per training configuration and task: mono/cross/multi mAP, rank distance and training time, mean ± std over
    seeds (e.g. an `xbench experiment` folder's results/)."""
    wanted = list(task_names) or None
    table = seed_table(collect([results_dir]), tasks=wanted)
    if table.empty:
        raise XbenchError(f"{results_dir}: no results" + (f" for tasks {', '.join(wanted)}" if wanted else "")
                          + "; pass an `xbench experiment` folder's results/ or drop --tasks.")
    _write_tables(table, with_std(table), csv_out, md_out, as_json)
