"""Leakage guard: a trained model must not be evaluated, unflagged, on texts it was trained on.

Training records a hash of every training text (normalised: NFKC, case-folded, punctuation, symbols and
spacing collapsed) in the model folder (`xbench_train_hashes.npy`, 64-bit prefixes of sha256, sorted).
Before `xbench run` evaluates such a model, every query and candidate text of the task is normalised and
hashed the same way; any overlap refuses the evaluation unless `--allow-overlap` is given, and the overlap
count goes into the results file (`run.counts.train_overlap_texts`). Texts shorter than MIN_CHARS after
normalisation ("yes", "1990", "Paris") are ignored: sharing them is no sign of contamination.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xbench.errors import XbenchError
from xbench.tasks.taskdata import TaskData

HASHES_FILE = "xbench_train_hashes.npy"
MIN_CHARS = 16


class Contaminated(XbenchError):
    """The task shares texts with the model's training data."""


def normalise(text: str) -> str:
    """Compatibility-normalised, case-folded, punctuation and symbols to spaces, whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join("".join(" " if unicodedata.category(c)[0] in "PSZ" else c for c in folded).split())


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def text_hashes(texts: Iterable[str]) -> np.ndarray:
    """Sorted unique uint64 hashes of the normalised texts that are long enough to count."""
    keys = {normalise(t) for t in texts}
    return np.unique(np.array([_hash(k) for k in keys if len(k) >= MIN_CHARS], dtype=np.uint64))


def write_hashes(folder: Path, texts: Iterable[str]) -> int:
    hashes = text_hashes(texts)
    np.save(folder / HASHES_FILE, hashes, allow_pickle=False)
    return len(hashes)


@dataclass(frozen=True)
class Overlap:
    texts: int  # distinct task texts long enough to count
    overlapping: int
    examples: list[str]


def overlap(train_hashes: np.ndarray, data: TaskData, n_examples: int = 3) -> Overlap:
    """How many distinct task texts (queries and candidates) occur, normalised, in the training texts."""
    texts = pd.unique(pd.concat([data.queries["text"], data.candidates["text"]], ignore_index=True))
    keys = [normalise(t) for t in texts]
    counted = [(t, k) for t, k in zip(texts, keys) if len(k) >= MIN_CHARS]
    hashes = np.array([_hash(k) for _, k in counted], dtype=np.uint64)
    hit = np.isin(hashes, train_hashes)
    return Overlap(len(counted), int(hit.sum()), [counted[i][0] for i in np.flatnonzero(hit)[:n_examples]])


def guard(name: str, card: dict[str, Any], data: TaskData, task: str, allow: bool) -> int | None:
    """Overlap count for a model trained by xbench (None for any other model); refuses a contaminated task
    unless `allow`. The model folder is the card's `source`, where the training hashes live."""
    if "training" not in card:
        return None
    path = Path(card.get("source", "")) / HASHES_FILE
    if not path.is_file():
        if allow:
            return None
        raise Contaminated(f"model {name}: its card says it was trained by xbench, but {path} (the hashes of its "
                           f"training texts) is missing, so task {task} cannot be checked for leakage. Restore the "
                           "model folder, or pass --allow-overlap to evaluate unchecked.")
    found = overlap(np.load(path, allow_pickle=False), data)
    if found.overlapping and not allow:
        raise Contaminated(
            f"task {task}: {found.overlapping} of its {found.texts} texts occur (normalised) in the training data "
            f"of model {name}, e.g. {found.examples[0]!r}; the evaluation would not be zero-shot. Evaluate on a "
            "task held out from training, or pass --allow-overlap (the results file then records the overlap in "
            "run.counts.train_overlap_texts)."
        )
    return found.overlapping
