"""The dense retriever: its embeddings are checked once per matrix, so the core skips the per-block finiteness
check only where no score can overflow, and a run whose scores would overflow still fails with a clear error."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_tiny_task

from xbench.evaluation.kernel import run_slice
from xbench.models.base import DenseRetriever, ModelInfo
from xbench.tasks.registry import discover
from xbench.tasks.settings import slices


class ScaledEncoder:
    """Every text as a fixed unit-norm direction times `scale` (what a model without normalisation may return)."""

    def __init__(self, scale: float) -> None:
        self.info = ModelInfo(name=f"scaled-{scale:g}", kind="test", fingerprint=f"scaled-{scale:g}")
        self.scale = scale

    def encode(self, texts: list[str], role: str) -> np.ndarray:
        raw = np.array([[len(t) % 7 + 1.0, sum(map(ord, t)) % 11 + 1.0, 3.0] for t in texts])
        return (self.scale * raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def tiny(tmp_path):
    task = discover((write_tiny_task(tmp_path / "t"),))["tiny"]
    return task, task.load()


@pytest.mark.parametrize(("scale", "finite"), [(1.0, True), (1e18, True), (1e19, False), (1e20, False)])
def test_scores_are_vouched_finite_only_below_the_float32_limit(tiny, tmp_path, scale, finite):
    """Norms s and s: scores up to s^2, so 1e18 (1e36) is safe, 1e19 (1e38) is too close to float32's 3.4e38."""
    _, data = tiny
    retriever = DenseRetriever(ScaledEncoder(scale), tmp_path / "cache")
    assert not retriever.finite_scores  # nothing is vouched for before the embeddings are read
    retriever.prepare(data)
    assert retriever.finite_scores is finite


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_overflowing_scores_are_still_refused(tiny, tmp_path):
    task, data = tiny
    retriever = DenseRetriever(ScaledEncoder(1e20), tmp_path / "cache")  # scores of 1e40: inf in float32
    retriever.prepare(data)
    first = next(iter(slices(data, task.spec, ["multi"])))
    with pytest.raises(FloatingPointError, match="NaN or infinite scores"):
        run_slice(retriever, data, first, ["map"])
