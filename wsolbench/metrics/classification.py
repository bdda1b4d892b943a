"""Classification accuracy and predictive entropy.

Top-1 accuracy (argmax, first on ties) and the mean Shannon entropy of the
predicted distribution, in nats and normalised by ``log K`` (so a uniform
prediction has normalised entropy 1). Used by the entropy study to relate
calibration-type regularisers to localisation.

The entropy sum is kept exactly (:class:`~wsolbench.metrics.base.ExactSum`), so
the mean entropy of a split is the correctly rounded mean of the per-image
entropies, the same whatever the batching and merging, and the same as
recomputed from per-image outcomes (``per_image=True``,
:class:`ClassificationOutcomes`) for any subset of images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from wsolbench.errors import MetricInputError
from wsolbench.metrics.base import Accumulator, ExactSum, exact_add, Outcomes, PerImage, Summed, concat, exact_value
from wsolbench.metrics.protocol import entropy
from wsolbench.metrics.validate import check_image_ids, check_probs


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


def classification_result(num_classes: int, count: int, correct: int, entropy_sum: float) -> ClassificationResult:
    """Top-1 accuracy (percent) and mean entropies from the sums (pure; shared with the outcomes).

    Args:
        num_classes: ``K``.
        count: images counted.
        correct: images whose argmax is the label.
        entropy_sum: sum of the per-image entropies, nats (correctly rounded).
    """
    if count == 0:
        raise MetricInputError("no images were evaluated")
    return ClassificationResult(
        count=int(count),
        top1=int(correct) * 100.0 / count,
        mean_entropy=entropy_sum / count,
        mean_normalized_entropy=entropy_sum / math.log(num_classes) / count,
    )


@dataclass(frozen=True, eq=False)
class ClassificationOutcomes(Outcomes):
    """Per-image classification outcomes, in update order (``ClassificationAccumulator(per_image=True)``).

    Attributes:
        num_classes: ``K``.
        image_ids: ``(N,)`` str.
        label: ``(N,)`` int64 ground-truth class.
        predicted: ``(N,)`` int64 argmax class (first on ties).
        entropy: ``(N,)`` float64 ``H(p)`` in nats.
    """

    kind: ClassVar[str] = "classification"
    rows: ClassVar[tuple[str, ...]] = ("image_ids", "label", "predicted", "entropy")

    num_classes: int
    image_ids: np.ndarray
    label: np.ndarray
    predicted: np.ndarray
    entropy: np.ndarray

    def _check(self) -> None:
        object.__setattr__(self, "num_classes", int(self.num_classes))
        for name in ("label", "predicted"):
            if not np.issubdtype(getattr(self, name).dtype, np.integer):
                raise MetricInputError(f"classification outcomes: {name} must be integer, got {getattr(self, name).dtype}")
        if self.entropy.dtype != np.float64:
            raise MetricInputError(f"classification outcomes: entropy must be float64, got {self.entropy.dtype}")


class ClassificationAccumulator(Accumulator):
    """Running top-1 count and entropy sum.

    Args:
        num_classes: ``K >= 2``.
        per_image: also keep each image's label, prediction and entropy
            (:meth:`outcomes`); ``update`` then needs the image ids.

    State (fixed size): ``count``, ``correct`` (ints), the exact entropy sum
    (read ``entropy_sum`` and ``normalized_entropy_sum``).
    """

    label: ClassVar[str] = "classification accumulators"
    config: ClassVar[dict[str, str]] = {"num_classes": "numbers of classes"}
    state: ClassVar[dict] = {
        "count": Summed(lambda acc: 0),
        "correct": Summed(lambda acc: 0),
        "_entropy": ExactSum(),
        "_image_ids": PerImage(),
        "_label": PerImage(),
        "_predicted": PerImage(),
        "_entropies": PerImage(),
    }

    def __init__(self, num_classes: int, per_image: bool = False):
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.per_image = bool(per_image)
        self.reset()

    @property
    def entropy_sum(self) -> float:
        """Sum of the per-image entropies, nats, correctly rounded."""
        return exact_value(self._entropy)

    @property
    def normalized_entropy_sum(self) -> float:
        """``entropy_sum / log K``."""
        return self.entropy_sum / math.log(self.num_classes)

    def update(self, probs: np.ndarray, labels: np.ndarray, image_ids: Sequence[str] | None = None) -> None:
        """Add a batch.

        Args:
            probs: ``(B, K)`` float class probabilities, rows summing to 1.
            labels: ``(B,)`` int ground-truth classes in ``[0, K)``.
            image_ids: ``B`` ids; needed with ``per_image``, else optional.
        """
        p, y = check_probs(probs, labels, self.num_classes)
        if image_ids is not None:
            ids = check_image_ids(image_ids, p.shape[0], what="probability rows")
        elif self.per_image:
            raise MetricInputError("per-image classification outcomes need the image ids: pass image_ids")
        h = entropy(p)
        predicted = np.argmax(p, axis=1)
        self.count += p.shape[0]
        self.correct += int((predicted == y).sum())
        exact_add(self._entropy, h.tolist())
        if self.per_image and p.shape[0]:
            self._image_ids.extend(ids)
            self._label.append(y)
            self._predicted.append(predicted.astype(np.int64))
            self._entropies.append(h)

    def merge(self, other: ClassificationAccumulator) -> ClassificationAccumulator:
        """Add the state (and per-image outcomes) of ``other``, same number of classes; returns self."""
        return super().merge(other)

    def compute(self) -> ClassificationResult:
        """Top-1 accuracy (percent) and mean entropies."""
        return classification_result(self.num_classes, self.count, self.correct, self.entropy_sum)

    def outcomes(self) -> ClassificationOutcomes:
        """Every image's outcomes, in update order (needs ``per_image=True``)."""
        self._require_per_image()
        ints = np.zeros(0, dtype=np.int64)
        return ClassificationOutcomes(
            num_classes=self.num_classes,
            image_ids=np.array(self._image_ids, dtype=str),
            label=concat(self._label, ints),
            predicted=concat(self._predicted, ints),
            entropy=concat(self._entropies, np.zeros(0, dtype=np.float64)),
        )
