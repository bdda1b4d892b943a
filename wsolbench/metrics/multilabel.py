"""Multi-label classification: mean average precision (mAP) over classes (PASCAL VOC).

Where an image has several labels, top-1 accuracy against one of them does not
say how well the classifier ranks the image's classes. mAP does: for each class
``c``, the average precision of the scores ``p_c`` of every image against
whether ``c`` is in the image's label set, and the mean over the classes with at
least one positive image. AP is the area under the precision-recall curve
without interpolation, ``sum_n (R_n - R_{n-1}) P_n`` over the distinct scores
(scikit-learn's ``average_precision_score``; VOC 2010+ uses the interpolated
area, which can only be higher). Scores are the predicted class probabilities.

AP needs every score (it sorts them), so the state is the per-image scores and
label sets, concatenated on merge; a split of N images holds ``N x K`` floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from wsolbench.errors import MetricInputError
from wsolbench.metrics.base import Accumulator, PerImage, concat, frozen


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Non-interpolated AP of one class, in [0, 1]: ``sum_n (R_n - R_{n-1}) P_n`` over distinct scores,
    highest first. ``scores`` (N,) float, ``positive`` (N,) bool with at least one True."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(np.asarray(positive, dtype=bool), np.asarray(scores, dtype=np.float64)))


@dataclass(frozen=True)
class MultiLabelResult:
    """Attributes: ``count`` images; ``ap`` (K,) percent, NaN for a class without positives; ``present``
    (K,) bool; ``map`` the mean of ``ap`` over present classes, percent."""

    count: int
    ap: np.ndarray
    present: np.ndarray
    map: float

    def to_dict(self) -> dict:
        return {"count": int(self.count), "mAP": float(self.map),
                "ap": {str(c): float(self.ap[c]) for c in np.flatnonzero(self.present)}}


class MultiLabelAccumulator(Accumulator):
    """Scores ``(N, K)`` and label sets ``(N, K)`` of every image; :meth:`compute` gives mAP.

    Args:
        num_classes: ``K >= 2``.
    """

    label: ClassVar[str] = "multi-label accumulators"
    config: ClassVar[dict[str, str]] = {"num_classes": "numbers of classes"}
    state: ClassVar[dict] = {"_scores": PerImage(), "_labels": PerImage(), "_ids": PerImage()}

    def __init__(self, num_classes: int) -> None:
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.per_image = True
        self.reset()

    def update(self, scores: np.ndarray, labels: np.ndarray, image_ids: Sequence[str]) -> None:
        """Add a batch: ``scores`` (B, K) float (class probabilities), ``labels`` (B, K) multi-hot (any
        non-zero value is a positive), ``image_ids`` B ids (named in errors)."""
        scores = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(labels) != 0
        b, k = len(image_ids), self.num_classes
        if scores.shape != (b, k) or labels.shape != (b, k):
            raise MetricInputError(f"scores and labels must be ({b}, {k}), got {scores.shape} and {labels.shape}")
        bad = ~np.isfinite(scores).all(axis=1)
        if bad.any():
            raise MetricInputError(f"image {list(image_ids)[int(np.argmax(bad))]!r} has a non-finite score")
        self._scores.append(scores)
        self._labels.append(labels)
        self._ids.extend(image_ids)

    def arrays(self) -> dict[str, np.ndarray]:
        """Per-image rows for a record's outcome file: ``multilabel.image_ids`` (N,), ``multilabel.scores``
        (N, K) float64, ``multilabel.labels`` (N, K) bool, in update order."""
        k = self.num_classes
        return {"multilabel.image_ids": np.asarray(self._ids, dtype=str),
                "multilabel.scores": concat(self._scores, np.zeros((0, k))),
                "multilabel.labels": concat(self._labels, np.zeros((0, k), dtype=bool))}

    def compute(self) -> MultiLabelResult:
        if not self._ids:
            raise MetricInputError("no images were evaluated")
        k = self.num_classes
        scores = concat(self._scores, np.zeros((0, k)))
        labels = concat(self._labels, np.zeros((0, k), dtype=bool))
        present = labels.any(axis=0)
        if not present.any():
            raise MetricInputError(f"no image of the {len(self._ids)} has a label: mAP is undefined")
        ap = np.full(k, np.nan)
        for c in np.flatnonzero(present):
            ap[c] = 100.0 * average_precision(scores[:, c], labels[:, c])
        return MultiLabelResult(count=len(self._ids), ap=frozen(ap), present=frozen(present),
                                map=float(ap[present].mean()))
