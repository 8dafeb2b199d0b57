"""Ragged per-query rows (ranks, grades, positions of relevant candidates) as padded arrays.

A cross-lingual task has ~10^5 (query, slice) rows of one to a dozen entries each, so rows travel from the
retrieval core to the results as one padded array with their lengths (`Ragged`), and conversions from and to
lists work on one flat array, never looping in Python over the entries.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence, Sized
from dataclasses import dataclass
from typing import Any

import numpy as np


def pad(rows: Sequence[Sequence[Any] | np.ndarray], fill: Any, dtype: Any = None) -> np.ndarray:
    """Ragged rows (lists or arrays) -> (len(rows), longest row) array, short rows filled with `fill`."""
    lengths = _lengths(rows)
    if len(rows) and isinstance(rows[0], np.ndarray):  # arrays: no per-entry loop
        flat = np.concatenate(rows)
        flat = flat if dtype is None else flat.astype(dtype, copy=False)
    else:
        flat = np.array(list(itertools.chain.from_iterable(rows)), dtype=dtype)
    out = np.full((len(rows), int(lengths.max(initial=0))), fill, dtype=flat.dtype)  # strings: the longest's width
    out[np.arange(out.shape[1]) < lengths[:, None]] = flat
    return out


def _lengths(rows: Sequence[Sized]) -> np.ndarray:
    return np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))


@dataclass(frozen=True)
class Ragged:
    """Rows of different lengths: row i is `values[i, :lengths[i]]`; what lies past a row's length is padding."""

    values: np.ndarray  # (rows, width)
    lengths: np.ndarray  # (rows,) int64

    @classmethod
    def of(cls, rows: Sequence[Sequence[Any] | np.ndarray], fill: Any = 0, dtype: Any = np.int64) -> Ragged:
        """From ragged rows (lists or arrays)."""
        return cls(pad(rows, fill, dtype), _lengths(rows))

    @classmethod
    def grouped(cls, values: np.ndarray, row_of: np.ndarray, n_rows: int, fill: Any = 0) -> Ragged:
        """From flat `values` and their row numbers (`row_of`, ascending): each row keeps its values in order."""
        lengths = np.bincount(row_of, minlength=n_rows).astype(np.int64)
        place = np.arange(len(row_of)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out = np.full((n_rows, int(lengths.max(initial=0))), fill, dtype=values.dtype)
        out[row_of, place] = values
        return cls(out, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, rows: slice | np.ndarray) -> Ragged:
        """The given rows (a slice, or row numbers), as wide as these."""
        return Ragged(self.values[rows], self.lengths[rows])

    @property
    def valid(self) -> np.ndarray:
        """(rows, width) True where an entry is a row's own, False on padding."""
        return np.arange(self.values.shape[1]) < self.lengths[:, None]

    def like(self, values: np.ndarray) -> Ragged:
        """Other values (same shape) with these rows' lengths."""
        return Ragged(values, self.lengths)

    def filled(self, fill: Any) -> np.ndarray:
        """The values with padding set to `fill`."""
        return np.where(self.valid, self.values, fill)

    def rows(self) -> list[np.ndarray]:
        """Each row as its own array (views)."""
        return [row[:n] for row, n in zip(self.values, self.lengths.tolist())]
