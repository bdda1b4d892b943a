"""Classification accuracy and predictive entropy.

Top-1 accuracy (argmax, first on ties) and the mean Shannon entropy of the
predicted distribution, in nats and normalised by ``log K`` (so a uniform
prediction has normalised entropy 1). Used by the entropy study to relate
calibration-type regularisers to localisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wsolbench.errors import MetricInputError
from wsolbench.metrics.protocol import entropy
from wsolbench.metrics.validate import check_probs


@dataclass(frozen=True)
class ClassificationResult:
    """Top-1 accuracy and mean predictive entropy.

    Attributes:
        count: number of images evaluated.
        top1: top-1 accuracy, percent.
        mean_entropy: mean ``H(p)`` in nats.
        mean_normalized_entropy: mean ``H(p) / log K``, in [0, 1].
    """

    count: int
    top1: float
    mean_entropy: float
    mean_normalized_entropy: float

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "count": int(self.count),
            "top1": float(self.top1),
            "mean_entropy": float(self.mean_entropy),
            "mean_normalized_entropy": float(self.mean_normalized_entropy),
        }


class ClassificationAccumulator:
    """Running top-1 count and entropy sums.

    Args:
        num_classes: ``K >= 2``.

    State (fixed size): ``count``, ``correct`` (ints), ``entropy_sum`` and
    ``normalized_entropy_sum`` (floats).
    """

    def __init__(self, num_classes: int):
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.reset()

    def reset(self) -> None:
        """Forget every image."""
        self.count = 0
        self.correct = 0
        self.entropy_sum = 0.0
        self.normalized_entropy_sum = 0.0

    def update(self, probs: np.ndarray, labels: np.ndarray) -> None:
        """Add a batch.

        Args:
            probs: ``(B, K)`` float class probabilities, rows summing to 1.
            labels: ``(B,)`` int ground-truth classes in ``[0, K)``.
        """
        p, y = check_probs(probs, labels, self.num_classes)
        h = entropy(p)
        self.count += p.shape[0]
        self.correct += int((np.argmax(p, axis=1) == y).sum())
        self.entropy_sum += float(h.sum())
        self.normalized_entropy_sum += float(h.sum() / math.log(self.num_classes))

    def merge(self, other: ClassificationAccumulator) -> ClassificationAccumulator:
        """Add the state of ``other`` (same number of classes); returns self."""
        if not isinstance(other, ClassificationAccumulator):
            raise ValueError(f"cannot merge a ClassificationAccumulator with {type(other).__name__}")
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge classification accumulators with {self.num_classes} and {other.num_classes} classes"
            )
        self.count += other.count
        self.correct += other.correct
        self.entropy_sum += other.entropy_sum
        self.normalized_entropy_sum += other.normalized_entropy_sum
        return self

    def compute(self) -> ClassificationResult:
        """Top-1 accuracy (percent) and mean entropies."""
        if self.count == 0:
            raise MetricInputError("no images were evaluated")
        return ClassificationResult(
            count=self.count,
            top1=self.correct * 100.0 / self.count,
            mean_entropy=self.entropy_sum / self.count,
            mean_normalized_entropy=self.normalized_entropy_sum / self.count,
        )
