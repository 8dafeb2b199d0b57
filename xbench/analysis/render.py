"""Where a report goes: one file, a folder of pages, or standard output, in any format (`FORMATS`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from xbench.analysis.cache import SignificanceCache
from xbench.analysis.exports import EXPORTS
from xbench.analysis.page import page, pages
from xbench.analysis.report import Report, build, read
from xbench.io import write_atomic

log = logging.getLogger(__name__)

FORMATS = {"html": "html", **{name: extension for name, (extension, _) in EXPORTS.items()}}  # --format -> extension


def text(report: Report, fmt: str) -> str:
    """The report as one text in `fmt` (html: the self-contained page)."""
    return page(report) if fmt == "html" else EXPORTS[fmt][1](report.tables())


def files(report: Report, fmt: str) -> dict[str, str]:
    """The report as a folder: relative path -> text (html: index.html and a page per task; else index.<ext>)."""
    return pages(report) if fmt == "html" else {f"index.{FORMATS[fmt]}": text(report, fmt)}


def save(report: Report, fmt: str, out: Path, folder: bool = False) -> None:
    """Write the report to the file `out`, or with `folder`, into the folder `out` (`files`)."""
    if folder:
        for name, content in files(report, fmt).items():
            write_atomic(out / name, content)
    else:
        write_atomic(out, text(report, fmt))


def render(dirs: list[Path], out: Path, fmt: str = "html", n_resamples: int = 2000, seed: int = 0,
           strict: bool = False, on_skip: Callable[[str], None] = log.warning, cache_dir: Path | None = None,
           folder: bool = False) -> int:
    """Write the report of the results under `dirs` to `out` (see `save`); returns the number of results files
    read. `cache_dir`: the cache root whose `significance/` keeps the tests (default $XBENCH_CACHE or
    ~/.cache/xbench)."""
    results = read(dirs, strict, on_skip)
    save(build(results, n_resamples, seed, SignificanceCache(cache_dir)), fmt, out, folder)
    return len(results)
