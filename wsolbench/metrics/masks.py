"""Pixel-level localisation: PxAP and PIoU from score histograms pooled over a split.

Reference: Choe et al., CVPR 2020, wsolevaluation ``MaskEvaluator``; the
conventions are listed in :mod:`wsolbench.metrics.protocol`. The state is two
fixed-size histograms, so accumulators over disjoint halves merge into the whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wsolbench.errors import MetricInputError
from wsolbench.metrics.protocol import pixel_curves, pxap, score_histograms
from wsolbench.metrics.validate import check_masks, check_scoremaps, check_thresholds


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array)
    array.setflags(write=False)
    return array


def _json_list(array: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in array.tolist()]


@dataclass(frozen=True, eq=False)
class MaskResult:
    """PxAP, PIoU and the pixel precision/recall curves.

    Attributes:
        thresholds: ``(T,)`` CAM thresholds, ascending.
        count: number of images evaluated.
        foreground_pixels: foreground pixels pooled over the split.
        background_pixels: background pixels (ignore pixels excluded).
        pxap: pixel average precision, percent.
        piou: best pixel IoU over the CAM thresholds, percent.
        piou_threshold: the CAM threshold attaining ``piou`` (first on ties).
        precision: ``(T,)`` precision of pixels scoring ``>= thresholds[i]``
            (NaN where no pixel does), fraction in [0, 1].
        recall: ``(T,)`` recall of pixels scoring ``>= thresholds[i]``, fraction.
        iou: ``(T,)`` pixel IoU ``tp / (tp + fp + fn)``, fraction.
    """

    thresholds: np.ndarray
    count: int
    foreground_pixels: int
    background_pixels: int
    pxap: float
    piou: float
    piou_threshold: float
    precision: np.ndarray
    recall: np.ndarray
    iou: np.ndarray

    def to_dict(self) -> dict:
        """JSON-ready summary (NaN precision values become None)."""
        return {
            "count": int(self.count),
            "foreground_pixels": int(self.foreground_pixels),
            "background_pixels": int(self.background_pixels),
            "pxap": float(self.pxap),
            "piou": float(self.piou),
            "piou_threshold": float(self.piou_threshold),
            "thresholds": self.thresholds.tolist(),
            "precision": _json_list(self.precision),
            "recall": _json_list(self.recall),
            "iou": _json_list(self.iou),
        }


class MaskAccumulator:
    """Foreground/background score histograms pooled over every image.

    Args:
        thresholds: ``(T,)`` CAM thresholds; the histogram bin edges are
            ``np.append(thresholds, [1.0, 2.0, 3.0])``.

    State (fixed size):
        count: images seen.
        fg_hist, bg_hist: int64 ``(T + 2,)`` score histograms of foreground and
            background pixels (ignore pixels excluded).
    """

    def __init__(self, thresholds: np.ndarray):
        self.thresholds = check_thresholds(thresholds)
        self.thresholds.setflags(write=False)
        self.reset()

    def reset(self) -> None:
        """Forget every image."""
        self.count = 0
        self.fg_hist = np.zeros(len(self.thresholds) + 2, dtype=np.int64)
        self.bg_hist = np.zeros(len(self.thresholds) + 2, dtype=np.int64)

    def update(self, scoremaps: np.ndarray, masks: np.ndarray, image_ids: Sequence[str]) -> None:
        """Add a batch.

        Args:
            scoremaps: ``(B, H, W)`` float in ``[0, 1]`` (not quantised).
            masks: ``(B, H, W)`` uint8, 0 background, 1 foreground, 255 ignore.
            image_ids: ``B`` ids, named in error messages.
        """
        maps = check_scoremaps(scoremaps, image_ids)
        masks = check_masks(masks, image_ids, maps.shape)
        fg_hist, bg_hist = score_histograms(maps, masks, self.thresholds)
        self.fg_hist += fg_hist
        self.bg_hist += bg_hist
        self.count += maps.shape[0]

    def merge(self, other: MaskAccumulator) -> MaskAccumulator:
        """Add the histograms of ``other`` (same thresholds); returns self."""
        if not isinstance(other, MaskAccumulator):
            raise ValueError(f"cannot merge a MaskAccumulator with {type(other).__name__}")
        if not np.array_equal(self.thresholds, other.thresholds):
            raise ValueError("cannot merge mask accumulators with different thresholds")
        self.count += other.count
        self.fg_hist += other.fg_hist
        self.bg_hist += other.bg_hist
        return self

    def compute(self) -> MaskResult:
        """PxAP, PIoU and curves from the pooled histograms."""
        if self.count == 0:
            raise MetricInputError("no images were evaluated")
        if self.fg_hist.sum() == 0:
            raise MetricInputError(
                f"no foreground pixel (mask value 1) was counted in the {self.count} evaluated images: "
                "PxAP is undefined"
            )
        curves = pixel_curves(self.fg_hist, self.bg_hist)
        best = int(np.argmax(curves.iou))
        return MaskResult(
            thresholds=_frozen(self.thresholds),
            count=self.count,
            foreground_pixels=int(self.fg_hist.sum()),
            background_pixels=int(self.bg_hist.sum()),
            pxap=pxap(self.fg_hist, self.bg_hist),
            piou=float(curves.iou[best] * 100),
            piou_threshold=float(self.thresholds[best]),
            precision=_frozen(curves.precision),
            recall=_frozen(curves.recall),
            iou=_frozen(curves.iou),
        )
