"""The report in a real browser: headless Chromium opens the page from a file:// URL, offline, and its inline JS
sorts the tables (on load from `#sort=...`, and on header clicks)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import BOARD, html_tables
from PIL import Image

from xbench.analysis.report import render

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: `apt-get install -y chromium` "
                                                         "(Debian) to run the browser test")


def chromium(profile: Path, *args: str) -> str:
    """Run headless Chromium with no network, sync or first-run work; returns stdout (the DOM with --dump-dom)."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def page_file(report_dirs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "index.html"
    render(report_dirs, out, n_resamples=200)
    return out


def _value(cell: str) -> float:
    return float(cell) if cell else float("inf")


def test_sorts_on_load_from_the_url(page_file, tmp_path):
    column = 1 + BOARD.index("multi map")  # the model column comes first
    static = html_tables(page_file.read_text())["board-tiny"]
    dom = chromium(tmp_path / "profile", "--dump-dom", f"{page_file.as_uri()}#sort=board-tiny:{column}:asc")
    board = html_tables(dom)["board-tiny"]
    assert 'aria-sort="ascending">multi map' in dom
    values = [float(v) for v in board["multi map"]]
    assert values == sorted(values) and values != [float(v) for v in static["multi map"]]  # it moved rows
    assert board.sort_index().equals(static.sort_index())  # same rows, same rendered values


def test_header_clicks_sort(page_file, tmp_path):
    clicks = ('<script>document.addEventListener("DOMContentLoaded", () => { const th = document.querySelector('
              '"#lang-tiny-cross thead th:nth-child(3)"); th.click(); th.click(); });</script></body>')
    clicked = tmp_path / "clicked.html"
    clicked.write_text(page_file.read_text().replace("</body>", clicks))
    static = html_tables(page_file.read_text())["lang-tiny-cross"]
    dom = chromium(tmp_path / "profile", "--dump-dom", clicked.as_uri())
    table = html_tables(dom)["lang-tiny-cross"]
    column = static.columns[1]  # nth-child(3): after the model column
    # first click sorts descending, the second ascending; JS sort is stable, like Python's
    expected = sorted(static.index, key=lambda label: _value(static.loc[label, column]))
    assert list(table.index) == expected
    assert f'aria-sort="ascending">{column}</th>' in dom


def test_screenshot(page_file, tmp_path):
    shot = tmp_path / "shot.png"
    chromium(tmp_path / "profile", "--hide-scrollbars", "--window-size=1280,900", f"--screenshot={shot}",
             page_file.as_uri())
    with Image.open(shot) as image:
        assert image.size == (1280, 900)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50  # text, tables and plots, not blank
