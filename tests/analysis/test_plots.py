"""SVG plots: one shape per value at the position and colour the value gives, user text escaped, and a palette whose
24 colours are told apart (CIE76 distance in Lab, computed here from the sRGB definition)."""

from __future__ import annotations

import itertools
import math
import re

import pandas as pd
import pytest

from xbench.analysis.plots import CELL, LABEL, PALETTE, bars, colours, heatmap, viridis


def _lab(colour: str) -> tuple[float, float, float]:
    srgb = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in srgb)
    xyz = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047, 0.2126 * r + 0.7152 * g + 0.0722 * b, \
        (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    fx, fy, fz = (t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116 for t in xyz)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def test_palette_tells_24_models_apart():
    assert len(set(PALETTE)) == 24
    assert min(math.dist(_lab(a), _lab(b)) for a, b in itertools.combinations(PALETTE, 2)) > 15
    assert all(_lab(c)[0] < 85 for c in PALETTE)  # none too pale for a white page
    assert colours([f"m{i}" for i in range(26)])["m25"] == PALETTE[1]  # the 25th on: legend and tooltips tell


def test_viridis_ends_and_midpoint():
    assert (viridis(0.0), viridis(1.0), viridis(0.5), viridis(-3.0)) == ("#440154", "#fde725", "#21918c", "#440154")


def test_heatmap_draws_every_value_and_escapes_labels():
    svg = str(heatmap({"en": {"en": 0.81, "<b>": 0.25}, "<b>": {"en": 0.5}}, 'model "x" & <y>'))
    rects = re.findall(r'<rect x="(\d+)" y="(\d+)" width="30" height="30" fill="(#[0-9a-f]{6})"/>', svg)
    # rows and columns sorted: "<b>" before "en"; three values, the missing (<b>, <b>) cell left empty
    assert rects == [(str(LABEL + CELL), str(LABEL), viridis(0.5)), (str(LABEL), str(LABEL + CELL), viridis(0.25)),
                     (str(LABEL + CELL), str(LABEL + CELL), viridis(0.81))]
    assert ">.81</text>" in svg and ">.25</text>" in svg
    assert 'aria-label="model &#34;x&#34; &amp; &lt;y&gt;"' in svg and "<b>" not in svg and "&lt;b&gt;" in svg


def test_bars_heights_follow_the_values_on_round_ticks():
    frame = pd.DataFrame({"a": {"de": 10.0, "en": 30.0}, "<b>": {"de": 40.0, "en": float("nan")}})
    svg = str(bars(frame, colours(list(frame.columns)), "rank distance", 1))
    heights = [float(h) for h in re.findall(r'height="([\d.]+)" fill=', svg)]
    assert heights == pytest.approx([140 * 10 / 40, 140 * 40 / 40, 140 * 30 / 40])  # ticks 0..40; NaN: no bar
    assert re.findall(r'text-anchor="end">([\d.]+)</text>', svg) == ["0", "10", "20", "30", "40"]
    assert "<title>&lt;b&gt;, de: 40.0</title>" in svg
