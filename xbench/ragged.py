"""Ragged per-query rows (ranks, grades, positions of relevant candidates) to and from padded arrays.

A cross-lingual task has ~10^5 (query, slice) rows of one to a dozen entries each, so both directions work on
one flat array and never loop in Python over the entries.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np


def pad(rows: Sequence[Sequence[Any] | np.ndarray], fill: Any, dtype: Any = None) -> np.ndarray:
    """Ragged rows (lists or arrays) -> (len(rows), longest row) array, short rows filled with `fill`."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    if len(rows) and isinstance(rows[0], np.ndarray):  # the retrieval core's rows: no per-entry loop
        flat = np.concatenate(rows)
        flat = flat if dtype is None else flat.astype(dtype, copy=False)
    else:
        flat = np.array(list(itertools.chain.from_iterable(rows)), dtype=dtype)
    out = np.full((len(rows), int(lengths.max(initial=0))), fill, dtype=flat.dtype)  # strings: the longest's width
    out[np.arange(out.shape[1]) < lengths[:, None]] = flat
    return out


def split_rows(values: np.ndarray, row_of: np.ndarray, n_rows: int) -> list[np.ndarray]:
    """`values` grouped by their ascending `row_of` into `n_rows` arrays: views by plain slicing (np.split costs
    microseconds per piece)."""
    bounds = np.searchsorted(row_of, np.arange(n_rows + 1)).tolist()
    return [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
