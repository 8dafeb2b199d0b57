"""What the retrieval core needs from a model, as protocols: scores for any (queries x pool) block, and (for
FAISS search) the vectors themselves. Models implement them; the core never imports a model."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from xbench.retrieval.exact import ScoreFn


class Scorer(Protocol):
    """Optionally, an attribute `finite_scores = True` tells the core that every score is finite, so it skips
    checking each block (a dense retriever sets it once its embedding matrices are checked)."""

    def scorer(self, query_rows: np.ndarray, cand_rows: np.ndarray) -> ScoreFn:
        """Scores of the given query rows against the given candidate rows (task positions), in blocks of rows."""
        ...


@runtime_checkable
class VectorScorer(Scorer, Protocol):
    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """(query, candidate) embedding matrices, rows aligned with the task's data."""
        ...
