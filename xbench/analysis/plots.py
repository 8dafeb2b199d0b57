"""The report's plots as inline SVG, drawn from the numbers themselves: a few kilobytes each (a PNG of the same
plot is ~50 kB), sharp at any zoom, searchable text, and a tooltip (`<title>`) on every bar. Titles and
legends are HTML around the SVG, so they wrap instead of being cut off. Every user string is escaped.
"""

from __future__ import annotations

import math

import pandas as pd
from markupsafe import Markup, escape

# 24 colours told apart on white, in order of contrast with those before (Kelly's 1965 sequence of maximum contrast,
# without white and black, then four more); series beyond 24 repeat them, and the legend and each bar's tooltip name
# the series.
PALETTE = ("#875692", "#f38400", "#0067a5", "#be0032", "#008856", "#f3c300", "#848482", "#a1caf1", "#c2b280",
           "#e68fac", "#604e97", "#f99379", "#f6a600", "#b3446c", "#dcd300", "#882d17", "#8db600", "#654522",
           "#e25822", "#2b3d26", "#222222", "#009e9e", "#1b2a6b", "#d100d1")
# viridis at 0, 1/8, ..., 1: dark for low scores, yellow for high ones, readable in grey and by colour-blind readers
_VIRIDIS = ((68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140), (40, 174, 128),
            (94, 201, 98), (173, 220, 48), (253, 231, 37))
CELL, LABEL, FONT = 30, 30, 11


def colours(names: list[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def viridis(value: float) -> str:
    """The colour of a value in [0, 1] (clipped), linearly between the _VIRIDIS stops."""
    x = min(max(value, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(x), len(_VIRIDIS) - 2)
    a, b = _VIRIDIS[i], _VIRIDIS[i + 1]
    return "#" + "".join(f"{round(p + (q - p) * (x - i)):02x}" for p, q in zip(a, b))


def _svg(width: float, height: float, label: str, body: list[str]) -> Markup:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" width="{width:g}" '
            f'height="{height:g}" role="img" aria-label="{escape(label)}" font-size="{FONT}">')
    return Markup(head + "".join(body) + "</svg>")


def heatmap(matrix: dict[str, dict[str, float]], label: str) -> Markup:
    """Query language (rows) x candidate language (columns) mAP, each cell coloured and annotated (two decimals
    without the leading zero: .51; no tooltip, the value is written in it)."""
    rows = sorted(matrix)
    cols = sorted({c for by_col in matrix.values() for c in by_col})
    body = [f'<text x="{LABEL + CELL * (j + 0.5):g}" y="{LABEL - 8}" text-anchor="middle">{escape(c)}</text>'
            for j, c in enumerate(cols)]
    for i, q in enumerate(rows):
        y = LABEL + CELL * i
        body.append(f'<text x="{LABEL - 6}" y="{y + CELL / 2 + 4:g}" text-anchor="end">{escape(q)}</text>')
        for j, c in enumerate(cols):
            value = matrix[q].get(c, math.nan)
            if math.isnan(value):
                continue
            x = LABEL + CELL * j
            text = f"{value:.2f}".removeprefix("0") if 0 <= value < 1 else f"{value:.1f}"
            body.append(f'<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="{viridis(value)}"/>'
                        f'<text x="{x + CELL / 2:g}" y="{y + CELL / 2 + 4:g}" text-anchor="middle" '
                        f'fill="{"#fff" if value < 0.5 else "#000"}" pointer-events="none">{text}</text>')
    return _svg(LABEL + CELL * len(cols) + 2, LABEL + CELL * len(rows) + 2, label, body)


def _ticks(top: float) -> list[float]:
    """Four round steps up to at least `top`."""
    if top <= 0:
        return [0.0, 1.0]
    step = 10 ** math.floor(math.log10(top / 4))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step * 4 >= top)
    return [step * k for k in range(5)]


def bars(frame: pd.DataFrame, palette: dict[str, str], label: str, decimals: int) -> Markup:
    """Grouped bars: query languages (index) along x, one bar per series (columns) in its palette colour."""
    frame = frame.sort_index()
    width, height, left, bottom = 14, 140, 46, 22
    group = width * len(frame.columns) + 10
    ticks = _ticks(float(frame.max().max()) if frame.notna().any().any() else 0.0)
    scale = height / ticks[-1]
    body = []
    for t in ticks:
        y = 8 + height - t * scale
        body.append(f'<line x1="{left}" x2="{left + group * len(frame)}" y1="{y:g}" y2="{y:g}" stroke="#ddd"/>'
                    f'<text x="{left - 4}" y="{y + 4:g}" text-anchor="end">{t:g}</text>')
    for i, (lang, values) in enumerate(frame.iterrows()):
        x0 = left + group * i + 5
        body.append(f'<text x="{x0 + width * len(frame.columns) / 2:g}" y="{8 + height + 16}" '
                    f'text-anchor="middle">{escape(lang)}</text>')
        for k, (series, value) in enumerate(values.items()):
            if pd.isna(value):
                continue
            h = value * scale
            body.append(f'<rect x="{x0 + width * k}" y="{8 + height - h:.2f}" width="{width - 2}" height="{h:.2f}" '
                        f'fill="{palette[str(series)]}"><title>{escape(series)}, {escape(lang)}: '
                        f'{value:.{decimals}f}</title></rect>')
    return _svg(left + group * len(frame) + 4, 8 + height + bottom, label, body)
