"""Bias plots for the report, as base64 PNG strings that embed in a self-contained page.

Figures are built on `matplotlib.figure.Figure` (Agg canvas, no pyplot state) with math text off, so a model
name holding `$` or `_` is drawn as written. Languages come from the data, in sorted order.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType  # matplotlib >= 3.10; only the type checker reads it

_STYLE: dict[RcKeyType, Any] = {"text.parse_math": False, "font.size": 9}


def _png(fig: Figure) -> str:
    """Base64 PNG without a Software stamp, so the same results give the same page."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer, metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def heatmap(matrix: dict[str, dict[str, float]], title: str) -> str:
    """Query language (rows) x candidate language (columns) mAP, each cell annotated."""
    frame = pd.DataFrame(matrix).T.sort_index().sort_index(axis=1)
    with matplotlib.rc_context(_STYLE):
        size = 1.0 + 0.42 * max(frame.shape)
        fig = Figure(figsize=(size + 1.2, size), layout="constrained")
        ax = fig.add_subplot()
        image = ax.imshow(frame.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(frame.shape[1]), frame.columns)
        ax.set_yticks(range(frame.shape[0]), frame.index)
        ax.set_xlabel("candidate language")
        ax.set_ylabel("query language")
        ax.set_title(title)
        for (i, j), value in np.ndenumerate(frame.to_numpy(dtype=float)):
            if np.isnan(value):
                continue
            ax.text(j, i, f"{value:.2f}"[1:] if 0 <= value < 1 else f"{value:.1f}", ha="center", va="center",
                    fontsize=6.5, color="white" if value < 0.5 else "black")
        fig.colorbar(image, ax=ax, shrink=0.8, label="mAP")
        return _png(fig)


def grouped_bars(frame: pd.DataFrame, title: str, ylabel: str) -> str:
    """Languages (index) on the x axis, one bar per model (columns)."""
    frame = frame.sort_index()
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(max(5.0, 0.35 * len(frame) * max(1, len(frame.columns)) + 1.5), 3.2),
                     layout="constrained")
        ax = fig.add_subplot()
        width = 0.8 / max(1, len(frame.columns))
        for k, model in enumerate(frame.columns):
            ax.bar(np.arange(len(frame)) + (k - (len(frame.columns) - 1) / 2) * width, frame[model], width,
                   label=str(model))
        ax.set_xticks(range(len(frame)), frame.index)
        ax.set_xlabel("query language")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _png(fig)
