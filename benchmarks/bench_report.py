"""`xbench report` and `xbench compare` wall time and page size (prints figures; asserts nothing).

Each measurement is the CLI in a fresh process (imports included), as a user runs it. Cold: an empty significance
cache, so every paired test and bootstrap is computed; warm: the cache the cold run filled. Targets (2 cores): the
336-file grid of experiments/results/paper-cpu cold in under 2 minutes with a page under 3 MB; `compare` warm
under 5 s. The load average before and after each run says how much else the cores were doing.

    python benchmarks/bench_report.py                     # committed results/, the grid, compare
    python benchmarks/bench_report.py --skip-grid         # results/ and compare only
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
GRID = ROOT / "experiments" / "results" / "paper-cpu" / "results"


def child_env(pycache: Path) -> dict[str, str]:
    """The children's environment: bytecode cached (in `pycache`, not in the installed packages), as an installed
    xbench has it; without it every run would compile scipy and pandas from source first."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(pycache)}


def timed(args: list[str], cache: Path, env: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall seconds, child CPU seconds, load average at the start, and the last output line of `xbench ARGS`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "xbench", *args, "--cache-dir", str(cache)], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, load, (done.stdout.strip().splitlines() or [""])[-1]


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-grid", action="store_true", help="Leave out the 336-file grid.")
    parser.add_argument("--resamples", type=int, default=2000, help="Report resamples (the CLI default).")
    parser.add_argument("--keep", type=Path, default=None, help="Write the pages and caches here and keep them.")
    args = parser.parse_args()
    print(f"cpu cores: {os.cpu_count()}; python {sys.version.split()[0]}")
    print(f"{'case':<46} {'wall s':>8} {'cpu s':>8} {'load':>5} {'output':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        out, report = args.keep or Path(tmp), ["--resamples", str(args.resamples)]
        for old in out.glob("cache-*"):
            shutil.rmtree(old)  # cold means an empty cache
        env = child_env(out / "pycache")
        subprocess.run([sys.executable, "-c", "import xbench.cli.analysis"], cwd=ROOT, env=env, check=True)

        def row(case: str, command: list[str], cache: Path, target: Path | None = None) -> None:
            wall, cpu, load, _ = timed(command, cache, env)
            shown = f"{size(target) / 2**20:.2f} MB" if target is not None else ""
            print(f"{case:<46} {wall:8.1f} {cpu:8.1f} {load:5.1f} {shown:>10}", flush=True)

        cache = out / "cache-results"
        page = out / "results.html"
        row("results/ (6 files) html, cold", ["report", str(RESULTS), "--out", str(page), *report], cache, page)
        row("results/ html, warm", ["report", str(RESULTS), "--out", str(page), *report], cache, page)
        for fmt, ext in (("md", "md"), ("csv", "csv"), ("latex", "tex")):
            target = out / f"results.{ext}"
            row(f"results/ {fmt}, warm", ["report", str(RESULTS), "--format", fmt, "--out", str(target), *report],
                cache, target)
        pair = ["compare", "me5-small", "use-m3", "--task", "xquad-r", "--results-dir", str(RESULTS)]
        row("compare me5-small use-m3 xquad-r, cold", pair, out / "cache-compare")
        row("compare me5-small use-m3 xquad-r, warm", pair, out / "cache-compare")
        if not args.skip_grid:
            cache, page, site = out / "cache-grid", out / "grid.html", out / "grid-site"
            row("grid (336 files) html, cold", ["report", str(GRID), "--out", str(page), *report], cache, page)
            row("grid html, warm", ["report", str(GRID), "--out", str(page), *report], cache, page)
            row("grid folder of pages (--out DIR/), warm", ["report", str(GRID), "--out", f"{site}/", *report],
                cache, site)
            row("grid md, warm", ["report", str(GRID), "--format", "md", "--out", str(out / "grid.md"), *report],
                cache, out / "grid.md")


if __name__ == "__main__":
    main()
