"""The report in a real browser: headless Chromium (the system's; skipped where it is not installed) opens the page
from a file:// URL with every host name unresolvable, and a probe script added to a copy of the page acts as a
reader would (clicks headers, folds, run details, copy buttons, filters) and writes what it saw into the DOM as JSON,
which `--dump-dom` hands back. The probe also records console errors, uncaught exceptions and every resource the
page loaded: each test asserts there were none."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from xbench.analysis.cache import SignificanceCache
from xbench.analysis.page import page, pages
from xbench.analysis.report import Report, build, read
from xbench.analysis.summary import Selection, summarise

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: `apt-get install -y chromium` "
                                                         "(Debian) to run the browser test")

# Before the page's own script: keep console errors and uncaught exceptions, and stand in for the clipboard.
RECORD = """<script>
window.__seen = {errors: [], copied: []};
addEventListener("error", (e) => __seen.errors.push("uncaught: " + e.message));
const __error = console.error;
console.error = (...args) => { __seen.errors.push(args.join(" ")); __error(...args); };
Object.defineProperty(navigator, "clipboard", {configurable: true,
  value: {writeText: (text) => { __seen.copied.push(text); return Promise.resolve(); }}});
</script>"""
# After it: the steps (an async function body) run once the page has loaded; then the record goes into the DOM.
PROBE = """<script>
addEventListener("load", async () => {
  const seen = __seen;
  const wait = (ms) => new Promise((done) => setTimeout(done, ms));
  const order = (id) => Array.from(document.getElementById(id).tBodies, (b) => b.rows[0].cells[0].dataset.k);
  const header = (id, name) => Array.from(document.getElementById(id).tHead.rows[0].cells)
    .find((th) => th.textContent.trim() === name);
  const tbody = (id, label) => Array.from(document.getElementById(id).tBodies)
    .find((b) => b.rows[0].cells[0].dataset.k === label);
  try { STEPS } catch (err) { seen.errors.push("probe: " + err.stack); }
  seen.resources = performance.getEntriesByType("resource").map((r) => r.name);
  if (window.parent !== window) { parent.postMessage(JSON.stringify(seen), "*"); return; }
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
});
</script>"""
# Chromium's windows are at least 500 pixels wide: a narrower viewport is an iframe, whose probe posts its record.
FRAME = """<!doctype html><html><body style="margin:0"><iframe src="SRC" width="WIDTH" height="844" style="border:0">
</iframe><script>addEventListener("message", (e) => {
  const out = document.createElement("pre"); out.id = "probe"; out.textContent = e.data; document.body.appendChild(out);
});</script></body></html>"""


def chromium(profile: Path, *args: str) -> str:
    """Headless Chromium with no network (every host name unresolvable), sync or first-run work; its stdout."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def probe(file: Path, steps: str, tmp_path: Path, width: int = 1280) -> dict:
    """Run `steps` in a copy of the page `file` (beside it, so relative links hold) in a viewport `width` pixels
    wide; what the probe recorded, once it is checked that the page logged no error and loaded nothing."""
    text = file.read_text(encoding="utf-8")
    text = text.replace("<head>", "<head>" + RECORD, 1).replace("</body>", PROBE.replace("STEPS", steps) + "</body>", 1)
    copy = file.with_name(f"probe-{file.name}")
    copy.write_text(text, encoding="utf-8")
    if width < 500:
        copy = copy.with_name(f"frame-{file.name}")
        copy.write_text(FRAME.replace("SRC", f"probe-{file.name}").replace("WIDTH", str(width)), encoding="utf-8")
    dom = chromium(tmp_path / "profile", "--window-size=1280,900", "--virtual-time-budget=10000", "--dump-dom",
                   copy.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["errors"] == [] and seen["resources"] == []
    return seen


@pytest.fixture(scope="module")
def site(seeded_dirs, tmp_path_factory) -> tuple[Report, dict[str, Path]]:
    """The report, written as one page and as a folder of pages."""
    folder = tmp_path_factory.mktemp("browser")
    report = build(read(seeded_dirs), 200, cache=SignificanceCache(folder / "cache"))
    (folder / "index.html").write_text(page(report), encoding="utf-8")
    for name, text in pages(report).items():
        (folder / "site" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "site" / name).write_text(text, encoding="utf-8")
    return report, {"page": folder / "index.html", "index": folder / "site" / "index.html",
                    "task": folder / "site" / "tasks" / "tiny.html"}


def _sorted(rows, at: int, reverse: bool, current: list[str]) -> list[str]:
    """Row labels by one column, as the page sorts them: stable from the `current` order, missing values last
    whichever the direction."""
    key = {r.label: r.cells[at].sort for r in rows}
    present = [label for label in current if key[label] is not None]
    return (sorted(present, key=lambda label: key[label], reverse=reverse)
            + [label for label in current if key[label] is None])


def test_headers_sort_both_ways_best_first_and_by_name_from_the_url(site, tmp_path):
    report, files = site
    seen = probe(files["page"], """
      seen.initial = order("board-tiny");
      seen.buttons = Array.from(document.querySelectorAll("table.sortable thead th"))
        .every((th) => th.querySelector("button") !== null && th.querySelector("button").tabIndex === 0);
      const click = (name) => header("board-tiny", name).querySelector("button").click();
      click("multi map");
      seen.first = [order("board-tiny"), header("board-tiny", "multi map").getAttribute("aria-sort")];
      click("multi map");
      seen.second = [order("board-tiny"), header("board-tiny", "multi map").getAttribute("aria-sort")];
      click("multi rank_distance");
      seen.lower = [order("board-tiny"), header("board-tiny", "multi rank_distance").getAttribute("aria-sort")];
      location.hash = "#sort=board-tiny:cross%20map:asc";
      await wait(100);
      seen.hashed = [order("board-tiny"), header("board-tiny", "cross map").getAttribute("aria-sort")];
      seen.opened = document.getElementById("board-tiny").closest("details").open;
    """, tmp_path)
    board = next(t for t in report.sections[0].tables if t.id == "board-tiny")
    rows, names = board.rows(), [c.name for c in board.columns]
    assert seen["buttons"]  # every header is a button: reached with Tab, pressed with Enter or Space
    assert seen["initial"] == [r.label for r in rows]
    expected = _sorted(rows, names.index("multi map"), True, seen["initial"])
    assert seen["first"] == [expected, "descending"]  # best first
    expected = _sorted(rows, names.index("multi map"), False, expected)
    assert seen["second"] == [expected, "ascending"]
    expected = _sorted(rows, names.index("multi rank_distance"), False, expected)
    assert seen["lower"] == [expected, "ascending"]  # lower is better: the first click puts the least biased first
    expected = _sorted(rows, names.index("cross map"), False, expected)
    assert seen["hashed"] == [expected, "ascending"]  # #sort= names the column
    assert seen["opened"]  # the folded task section opened to show the table


def test_seeds_unfold_run_details_span_the_table_and_commands_copy(site, tmp_path):
    report, files = site
    seen = probe(files["page"], """
      const body = tbody("board-tiny", "hybrid-a0.5");
      const members = () => Array.from(body.querySelectorAll("tr.member"), (r) => [r.cells[0].textContent, r.hidden]);
      seen.folded = members();
      body.querySelector("button.fold").click();
      seen.unfolded = [members(), body.querySelector("button.fold").getAttribute("aria-expanded")];
      body.querySelector("button.fold").click();
      seen.refolded = members();
      document.getElementById("board-tiny").closest("details").open = true;
      body.querySelector("button.more").click();
      const details = body.querySelector("tr.details");
      const columns = document.getElementById("board-tiny").tHead.rows[0].cells.length;
      const width = (element) => Math.round(element.getBoundingClientRect().width);
      seen.details = [details.hidden, details.cells[0].colSpan, columns, width(details), width(body)];
      const copy = details.querySelector("button.copy");
      seen.command = copy.dataset.copy;
      copy.click();
      await wait(10);
      seen.copiedLabel = copy.textContent;
      seen.copyButtons = document.querySelectorAll("#board-tiny button.copy").length;
    """, tmp_path)
    runs = report.sections[0].runs
    assert seen["folded"] == [["hybrid-a0.5-s0", True], ["hybrid-a0.5-s1", True]]
    assert seen["unfolded"] == [[["hybrid-a0.5-s0", False], ["hybrid-a0.5-s1", False]], "true"]
    assert seen["refolded"] == seen["folded"]
    hidden, span, columns, width, table = seen["details"]
    assert not hidden and span == columns and width == table  # one full-width row under the configuration
    assert seen["command"] == runs["hybrid-a0.5-s0"].result.run.command
    assert seen["copied"] == [seen["command"]] and seen["copiedLabel"] == "Copied"
    assert seen["copyButtons"] == len(runs)  # a copy button on every run's command


def _summary_cells(seen_rows: list[dict], column: str) -> dict[str, float | None]:
    return {row["run"]: (float(row["v"][column]) if row["v"][column] != "" else None)
            for row in seen_rows if row["run"]}


SUMMARY_ROWS = """
  const summaryRows = () => Array.from(document.getElementById("summary").tBodies).flatMap((b) => Array.from(b.rows,
    (r) => ({run: r.dataset.run || null, group: b.dataset.group, head: r.classList.contains("head"),
             v: Object.fromEntries(Array.from(document.getElementById("summary").tHead.rows[0].cells)
                  .map((th, i) => [th.textContent.trim(), r.cells[i].dataset.v ?? r.cells[i].textContent.trim()]))})));
"""


def test_filters_recompute_the_summary_as_python_does_and_hide_tasks_and_columns(site, tmp_path):
    report, files = site
    steps = SUMMARY_ROWS + """
      const uncheck = (name, value) => {
        const box = document.querySelector(`#filters input[name="${name}"][value="${value}"]`);
        box.checked = false;
        box.dispatchEvent(new Event("change", {bubbles: true}));
      };
      uncheck("domain", "sport");
      seen.selection = document.getElementById("selection").textContent;
      seen.sportHidden = [document.getElementById("task-tiny.sport").hidden,
                          document.querySelector('#task-list tr[data-domain="sport"]').hidden];
      seen.general = summaryRows();
      document.querySelector('#filters button.none[data-name="lang"]').click();
      uncheck("domain", "general");
      document.querySelector('#filters input[name="domain"][value="sport"]').click();
      document.querySelector('#filters input[name="lang"][value="de"]').click();
      seen.sportDe = summaryRows();
      uncheck("setting", "mono");
      seen.monoShown = getComputedStyle(header("summary", "mono map")).display;
      seen.monoBoard = getComputedStyle(header("board-tiny", "mono map")).display;
    """
    seen = probe(files["page"], steps, tmp_path)
    assert seen["selection"] == "1 of 2 tasks selected." and seen["sportHidden"] == [True, True]
    for rows, selection in ((seen["general"], Selection(domains=frozenset({"general"}))),
                            (seen["sportDe"], Selection(domains=frozenset({"sport"}), languages=frozenset({"de"})))):
        frame, ranks = summarise(report.summary_data, selection)
        for column in ("mono map", "cross map", "multi map", "multi rank_distance", "tasks"):
            expected = {run: None if value != value else float(value) for run, value in frame[column].items()}
            assert _summary_cells(rows, column) == expected, column  # the same float, to the last bit
        heads = {row["group"]: row["v"]["rank (Borda)"] for row in rows if row["head"]}
        assert {g: int(float(v)) for g, v in heads.items() if v != ""} == ranks  # "": nothing to rank
    assert seen["monoShown"] == "none" and seen["monoBoard"] == "none"


@pytest.mark.parametrize("which", ["page", "task"])
def test_no_horizontal_overflow_at_390_pixels_with_everything_open(site, tmp_path, which):
    _, files = site
    seen = probe(files[which], """
      document.querySelectorAll("details").forEach((d) => { d.open = true; });
      document.querySelectorAll("button.fold, button.more").forEach((b) => b.click());
      await wait(50);
      seen.widths = [document.documentElement.scrollWidth, window.innerWidth];
    """, tmp_path, width=390)
    page_width, window = seen["widths"]
    assert window == 390 and page_width <= window


def test_folder_pages_link_to_each_other(site, tmp_path):
    report, files = site
    index = probe(files["index"], """
      seen.tasks = Array.from(document.querySelectorAll("#task-list a"), (a) => a.getAttribute("href"));
    """, tmp_path)
    task = probe(files["task"], """
      seen.cards = Array.from(document.querySelectorAll(".run a"), (a) => a.getAttribute("href"));
      seen.home = document.querySelector("header h1 a").getAttribute("href");
    """, tmp_path)
    assert index["tasks"] == ["tasks/tiny.html", "tasks/tiny.sport.html"]
    anchors = {r.anchor for r in report.sections[0].runs.values()}
    assert {href.split("#")[1] for href in task["cards"]} == anchors and task["home"] == "../index.html"
    assert all(href.startswith("../index.html#") for href in task["cards"])


def test_screenshot(site, tmp_path):
    shot = tmp_path / "shot.png"
    chromium(tmp_path / "profile", "--hide-scrollbars", "--window-size=1280,900", f"--screenshot={shot}",
             site[1]["page"].as_uri())
    with Image.open(shot) as image:
        assert image.size == (1280, 900)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50  # text and tables, not blank
